"""keras-hub backbones: the size table gives the published sizes; presets load from a folder; errors name the fix."""

import numpy as np
import pytest

from modeling.backbones import hub_backbone

pytestmark = pytest.mark.multibackend


def vit_parameters(hidden, layers, mlp, patch=16, channels=3, tokens=197):
    """ViT encoder parameters from its layout (timm's count without the classifier head)."""
    patch_embedding = patch * patch * channels * hidden + hidden
    positions_and_class_token = tokens * hidden + hidden
    attention = 4 * (hidden * hidden + hidden)
    mlp_block = hidden * mlp + mlp + mlp * hidden + hidden
    block = attention + mlp_block + 2 * 2 * hidden  # two LayerNorms
    return patch_embedding + positions_and_class_token + layers * block + 2 * hidden  # final LayerNorm


@pytest.mark.parametrize(
    "size, hidden, layers, mlp, timm_millions",
    [("tiny", 192, 12, 768, 5.52), ("small", 384, 12, 1536, 21.67), ("base", 768, 12, 3072, 85.80)],
)
def test_vit_sizes_have_timms_dimensions_and_parameter_counts(size, hidden, layers, mlp, timm_millions):
    backbone = hub_backbone("vit", size)
    expected = vit_parameters(hidden, layers, mlp)
    assert backbone.count_params() == expected
    assert round(expected / 1e6, 2) == timm_millions  # timm vit_*_patch16_224 with num_classes=0
    assert backbone.output.shape == (None, 197, hidden)


def test_bert_mini_matches_its_layout():
    backbone = hub_backbone("bert", "mini")
    hidden, inner, layers, vocab, positions = 256, 1024, 4, 30522, 512
    embeddings = (vocab + positions + 2) * hidden + 2 * hidden  # token, position, segment + LayerNorm
    block = 4 * (hidden * hidden + hidden) + 2 * hidden + hidden * inner + inner + inner * hidden + hidden + 2 * hidden
    pooler = hidden * hidden + hidden
    assert backbone.count_params() == embeddings + layers * block + pooler


def test_a_saved_preset_folder_loads_with_its_weights(tmp_path):
    backbone = hub_backbone("vit", "tiny", image_shape=(32, 32, 3), num_layers=1)
    backbone.save_to_preset(str(tmp_path / "vit_preset"))
    loaded = hub_backbone("vit", weights=tmp_path / "vit_preset")
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), backbone.predict(images, verbose=0), atol=1e-6)


def test_unknown_names_and_unreachable_presets_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match=r"choose one of \['bert', 'deit', 'distilbert', 'vit'\]"):
        hub_backbone("swin")
    with pytest.raises(ValueError, match=r"Unknown size 'huge' for vit; choose one of"):
        hub_backbone("vit", "huge")
    with pytest.raises(ValueError, match="Could not load the local preset directory .*weights=None"):
        hub_backbone("vit", weights=tmp_path)

"""Backbone factory errors, local weight files, and real unfreezing."""

import keras
import numpy as np
import pytest

from modeling.backbones import BACKBONE_MAP, build_backbone, unfreeze_backbone_layers
from modeling.boneage import attn_sex_model
from tests.checkers import tiny_backbone

pytestmark = pytest.mark.multibackend


def test_unknown_backbone_lists_the_names():
    with pytest.raises(ValueError, match="Unknown backbone 'vit_b16'.*xception, resnet50.*convnext_large"):
        build_backbone("vit_b16", (64, 64, 3))
    with pytest.raises(ValueError, match="a name .* or a callable"):
        build_backbone(42, (64, 64, 3))


@pytest.mark.parametrize("backbone, minimum", [("xception", 71), ("resnet50v2", 32), ("convnext_tiny", 32)])
def test_too_small_image_names_the_minimum(backbone, minimum):
    with pytest.raises(ValueError, match=f"'{backbone}' needs images of at least {minimum}x{minimum}"):
        build_backbone(backbone, (minimum - 1, minimum - 1, 3))


@pytest.mark.parametrize("img_dims", [(64, 64), (64, 64, 3, 1), (64, -1, 3), "64x64", (64.5, 64, 3)])
def test_wrong_img_dims(img_dims):
    with pytest.raises(ValueError, match="img_dims"):
        build_backbone("mobilenet_v2", img_dims)


def test_missing_weights_file():
    with pytest.raises(ValueError, match="no such file"):
        build_backbone("mobilenet_v2", (64, 64, 3), weights="/nonexistent/weights.h5")


def test_imagenet_download_failure_is_explained(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception(
            "URL fetch failure on https://example.invalid/w.h5: None -- [Errno -2] Name or service not known"
        )

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(RuntimeError, match="weights=None .* local copy"):
        build_backbone("mobilenet_v2", (64, 64, 3), weights="imagenet")


def test_local_weights_file_is_loaded(tmp_path):
    source = BACKBONE_MAP["mobilenet_v2"](include_top=False, weights=None, input_shape=(64, 64, 3))
    path = tmp_path / "mobilenet_v2_notop.weights.h5"
    source.save_weights(path)
    loaded = build_backbone("mobilenet_v2", (64, 64, 3), weights=str(path))
    for expected, actual in zip(source.weights, loaded.weights, strict=False):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(expected), keras.ops.convert_to_numpy(actual))
    assert loaded.name == "backbone" and loaded.trainable is False


def test_unfreeze_backbone_layers_really_trains_the_last_layers():
    model = attn_sex_model((32, 32, 3), backbone=tiny_backbone, weights=None, dense_units=8, gender_units=4)
    backbone = model.get_layer("backbone")
    assert backbone.trainable_weights == []
    # Weighted layers of the tiny backbone: conv, BN, conv, conv. With BN kept frozen
    # the last two are the two last convolutions (kernel + bias each).
    assert unfreeze_backbone_layers(model, n_layers=2) == 4
    assert [w.path for w in backbone.trainable_weights] == [
        f"{backbone.layers[-2].name}/kernel",
        f"{backbone.layers[-2].name}/bias",
        f"{backbone.layers[-1].name}/kernel",
        f"{backbone.layers[-1].name}/bias",
    ]
    bn = backbone.layers[2]
    assert isinstance(bn, keras.layers.BatchNormalization) and bn.trainable is False

    model.compile(optimizer="adam", loss="mae")
    before = [keras.ops.convert_to_numpy(w).copy() for w in backbone.weights]
    rng = np.random.default_rng(0)
    model.train_on_batch([rng.normal(size=(5, 32, 32, 3)), np.ones((5, 1))], rng.normal(size=(5, 1)))
    changed = {
        w.path
        for b, w in zip(before, backbone.weights, strict=False)
        if not np.array_equal(b, keras.ops.convert_to_numpy(w))
    }
    assert changed == {w.path for w in backbone.trainable_weights}

    assert unfreeze_backbone_layers(model, n_layers=0) == 0
    # more layers than the backbone has (but fewer than twice as many): all of them
    assert unfreeze_backbone_layers(model, n_layers=5) == 6
    assert unfreeze_backbone_layers(model, n_layers=99, freeze_batchnorm=False) == len(backbone.weights) - 2

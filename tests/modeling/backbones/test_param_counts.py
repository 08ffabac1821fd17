"""Parameter counts equal the original's, for every builder and every backbone.

Head formulas come from the original's layer list (C channels and H x W spatial
size of the backbone output, D dense units, G sex units); totals add the frozen
backbone. Each backbone is built once and shared by the five builders.
"""

import pytest

from modeling import create_model
from modeling.backbones import BACKBONE_MAP

pytestmark = pytest.mark.multibackend

# Backbone parameter counts of keras.applications with include_top=False (reference table).
BACKBONE_PARAMS = {
    "xception": 20_861_480,
    "resnet50": 23_587_712,
    "resnet101": 42_658_176,
    "resnet152": 58_370_944,
    "resnet50v2": 23_564_800,
    "resnet101v2": 42_626_560,
    "resnet152v2": 58_331_648,
    "mobilenet": 3_228_864,
    "mobilenet_v2": 2_257_984,
    "mobilenet_v3_small": 939_120,
    "mobilenet_v3_large": 2_996_352,
    "convnext_tiny": 27_820_128,
    "convnext_small": 49_454_688,
    "convnext_base": 87_566_464,
    "convnext_large": 196_230_336,
}


def head_trainable(name, C, H, W, D, G):
    """Trainable parameters of each head, from the original's layers."""
    attention = 130 * C + 9_424 + 17 * H * W  # BN gamma/beta, 128/64/16 convs, locally connected
    if name == "baseline":
        return C * D + 2 * D + 1
    if name == "sex":
        return C * D + 513 * D + 514 * G + 526_337
    if name == "attn":
        return attention + C * D + 2 * D * D + 4 * D + 1
    if name == "attn_sex":
        return attention + C * D + 2 * D * D + G * D + 4 * D + 2 * G + 1
    if name == "attn_sex_improved":
        # BN + convs 256 (1x1), 128 (3x3), 64, 16 + LC; cross-attention; gated fusion; D, D/2 head
        return 258 * C + 304_593 + 17 * H * W + C * D + 9 * D * D // 2 + 3 * G * D + 10 * D + 7 * G + 4 * G * G
    raise KeyError(name)


HEAD_NON_TRAINABLE = {"baseline": 0, "sex": 0, "attn": 3, "attn_sex": 3, "attn_sex_improved": 3}  # x C


@pytest.mark.parametrize("backbone", sorted(BACKBONE_MAP))
def test_every_builder_on_every_backbone(backbone):
    size = 75  # the smallest size every backbone accepts, rounded up
    base = BACKBONE_MAP[backbone](include_top=False, weights=None, input_shape=(size, size, 3))
    assert base.count_params() == BACKBONE_PARAMS[backbone]
    _, H, W, C = base.output.shape
    D, G = 64, 8
    for name in ("baseline", "sex", "attn", "attn_sex", "attn_sex_improved"):
        kwargs = {"dense_units": D} | ({"gender_units": G} if name in ("sex", "attn_sex", "attn_sex_improved") else {})
        model = create_model(
            f"boneage/{name}", img_dims=(size, size, 3), backbone=lambda **_: base, weights=None, **kwargs
        )
        trainable = _count(model.trainable_weights)
        assert trainable == head_trainable(name, C, H, W, D, G), name
        assert model.count_params() == BACKBONE_PARAMS[backbone] + trainable + HEAD_NON_TRAINABLE[name] * C, name


def _count(weights):
    total = 0
    for weight in weights:
        size = 1
        for dim in weight.shape:
            size *= dim
        total += size
    return total


# Totals the reference verified against the original's saved model summaries (500 x 500 input).
VERIFIED = [
    ("baseline", "xception", {"dense_units": 500}, 21_886_481, 1_025_001),
    ("sex", "xception", {}, 24_026_729, 3_165_249),
    ("attn", "xception", {}, 22_722_553, 1_854_929),
    ("attn_sex", "xception", {}, 22_730_777, 1_863_153),
    ("attn_sex", "xception", {"dense_units": 500, "gender_units": 32}, 22_689_705, 1_822_081),
    ("attn_sex", "resnet101v2", {"dense_units": 500, "gender_units": 32}, 44_454_785, 1_822_081),
    ("attn_sex_improved", "xception", {}, 23_964_009, 3_096_385),
    ("attn_sex_improved", "xception", {"dense_units": 500, "gender_units": 32}, 23_911_273, 3_043_649),
]


@pytest.mark.parametrize("name, backbone, kwargs, total, trainable", VERIFIED)
def test_verified_totals_at_500_pixels(name, backbone, kwargs, total, trainable):
    model = create_model(f"boneage/{name}", img_dims=(500, 500, 3), backbone=backbone, weights=None, **kwargs)
    assert model.count_params() == total
    assert _count(model.trainable_weights) == trainable

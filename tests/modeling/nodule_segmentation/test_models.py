"""Nodule-segmentation models and layers: exact upsampled convolution, freezing, errors, saving."""

import keras
import numpy as np
import pytest

from modeling.nodule_segmentation import OUTPUT_NAMES, check_image_size, improved_model, lightweight_model
from modeling.nodule_segmentation.layers import (
    AttentionModulation,
    MinMaxSigmoid,
    SpatialSoftmaxNormalization,
    UpsampledConv2D,
)
from tests.checkers import gradient_of, run_serialization_test
from tests.modeling.nodule_segmentation import tiny

pytestmark = pytest.mark.multibackend


def test_exact_upsampled_conv_equals_conv_after_bilinear_upsampling():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 2, 5)).astype("float32")
    layer = UpsampledConv2D(4, 3, scale=4)
    got = keras.ops.convert_to_numpy(layer(x))
    up = keras.layers.UpSampling2D(4, interpolation="bilinear")(x)
    expected = keras.ops.convert_to_numpy(keras.ops.conv(up, layer.kernel, padding="same") + layer.bias)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    approximate = UpsampledConv2D(4, 3, scale=4, mode="conv_first")
    approximate.build(x.shape)
    approximate.set_weights(layer.get_weights())
    assert not np.allclose(keras.ops.convert_to_numpy(approximate(x)), expected, atol=1e-3)


def test_spatial_softmax_normalization_by_hand():
    x = np.zeros((1, 2, 2, 1), "float32")
    x[0, 0, 0, 0] = 1.0
    # softmax of x / 0.5: e^2 / (e^2 + 3) at the peak, 1 / (e^2 + 3) elsewhere; x 0.1 * 4; clip; ** 0.8
    peak, rest = np.e**2 / (np.e**2 + 3), 1 / (np.e**2 + 3)
    expected = np.clip(np.array([peak, rest, rest, rest]) * 0.4, 0, 1) ** 0.8
    got = keras.ops.convert_to_numpy(SpatialSoftmaxNormalization()(x)).ravel()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_attention_modulation_pools_by_hand():
    """A 2x2 nodule on an 8x8 map, 2x2 grid: bilinear reads only pixels 1-2 and 5-6 of each axis."""
    features = np.full((1, 2, 2, 1), 2.0, "float32")
    attention = np.zeros((1, 8, 8, 1), "float32")
    attention[0, 2:4, 2:4] = 1.0  # in the first 4x4 patch, half-covering its sampled pixels 1-2
    got = {
        pooling: keras.ops.convert_to_numpy(AttentionModulation(0.5, pooling)([features, attention]))[0, :, :, 0]
        for pooling in ("bilinear", "average", "max")
    }
    # bilinear at (1.5, 1.5): mean of pixels (1..2, 1..2) = 1/4 covered; 2 * (1 + 0.5 * 0.25)
    np.testing.assert_allclose(got["bilinear"], [[2.25, 2.0], [2.0, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(got["average"], [[2.25, 2.0], [2.0, 2.0]], rtol=1e-6)  # 4 of 16 pixels
    np.testing.assert_allclose(got["max"], [[3.0, 2.0], [2.0, 2.0]], rtol=1e-6)
    attention = np.roll(attention, 1, axis=(1, 2))  # nodule at 3..4: off the sampled pixels' reach
    shifted = AttentionModulation(0.5, "bilinear")([features, attention])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(shifted)[0, 0, 0, 0], 2.0 * (1 + 0.5 * 0.0), rtol=1e-6)
    one_cell = AttentionModulation(0.5, "max")([features[:, :1, :1], attention])  # a 32 px model's 1x1 grid
    np.testing.assert_allclose(keras.ops.convert_to_numpy(one_cell).ravel(), [3.0], rtol=1e-6)
    with pytest.raises(ValueError, match="pooling"):
        AttentionModulation(0.5, "area")
    for build in (improved_model, lightweight_model):
        model = build(64, backbone=None, feature_channels=8, attention_pooling="max")
        assert model.get_layer("attention_modulation").pooling == "max"
    detached = improved_model(64, backbone=None, feature_channels=8, detach_fused_attention=True)
    assert detached.get_layer("attention_modulation").detach_attention
    with pytest.raises(ValueError, match="supervised attention"):
        improved_model(64, backbone=None, feature_channels=8, attention="anatomical", detach_fused_attention=True)


def test_a_detached_attention_gets_no_gradient_through_the_modulation():
    features = np.full((1, 2, 2, 1), 2.0, "float32")
    attention = np.full((1, 8, 8, 1), 0.5, "float32")
    for detach, expected in ((False, 2.0 * 0.5 / 16), (True, 0.0)):  # d sum(f (1 + 0.5 mean A)) / dA_ij
        layer = AttentionModulation(0.5, "average", detach_attention=detach)
        gradient = gradient_of(lambda a, layer=layer: keras.ops.sum(layer([features, a])), attention)
        np.testing.assert_allclose(gradient, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "layer",
    [
        UpsampledConv2D(4, 3, scale=2, mode="conv_first"),
        SpatialSoftmaxNormalization(0.7),
        MinMaxSigmoid(),
        AttentionModulation(0.2),
        AttentionModulation(0.2, pooling="max", detach_attention=True),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layers_serialize(layer):
    run_serialization_test(layer)


@pytest.mark.parametrize("size", [0, 48, 100, True])
def test_image_sizes_the_head_cannot_upsample_to_are_refused(size):
    with pytest.raises(ValueError, match="multiple of 32"):
        check_image_size(size)


def test_resnet50_keeps_only_its_last_stage_trainable_and_has_the_originals_head_size():
    model = improved_model(64, backbone="resnet50", weights=None)
    backbone = model.get_layer("backbone")
    trainable = {layer.name for layer in backbone.layers if layer.trainable and layer.weights}
    assert trainable and all(name.startswith("conv5_") for name in trainable)
    assert not any(layer.trainable for layer in backbone.layers if layer.name.startswith("conv4_"))
    head = sum(int(np.prod(w.shape)) for w in model.trainable_weights if not w.path.startswith("conv5_"))
    assert head == 6074226  # the original's parameters after the backbone (A_improved_model sidecar)
    assert set(model.output) == set(OUTPUT_NAMES)


def test_lightweight_attention_range_is_the_originals():
    model = lightweight_model(64, backbone=None, feature_channels=8)
    rng = np.random.default_rng(1)
    out = model([rng.normal(size=(2, 2, 2, 8)), rng.uniform(-1024, 1024, size=(2, 64, 64, 1))], training=False)
    attention = keras.ops.convert_to_numpy(out["attention"])
    assert attention.min() == pytest.approx(0.5, abs=1e-6) and attention.max() == pytest.approx(0.7311, abs=1e-4)


@pytest.mark.parametrize("prior, expected", [(0.01, 0.01), (None, 0.5)])
def test_sigmoid_outputs_start_at_the_prior(prior, expected):
    """With the last kernels zeroed, segmentation and attention are sigmoid(bias): the prior (or 0.5)."""
    model = improved_model(64, backbone=None, feature_channels=8, output_bias_prior=prior)
    last = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and layer.filters == 1]
    assert sorted(layer.name for layer in last) == ["segmentation_head_17", "spatial_attention_output_layer_3"]
    for layer in last:
        layer.kernel.assign(np.zeros(layer.kernel.shape))
    rng = np.random.default_rng(0)
    out = model([rng.normal(size=(2, 2, 2, 8)), rng.uniform(-1024, 1024, size=(2, 64, 64, 1))], training=False)
    segmentation = 1 / (1 + np.exp(-keras.ops.convert_to_numpy(out["segmentation"]).astype("float64")))
    np.testing.assert_allclose(segmentation, expected, rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out["attention"]), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="output_bias_prior"):
        improved_model(64, backbone=None, feature_channels=8, output_bias_prior=1.0)


@pytest.mark.parametrize("name", ["nodule_segmentation/improved"])  # the registry test covers the others
def test_keras_round_trip_with_the_loss_in_safe_mode(name, tmp_path):
    model = tiny.build(name)
    inputs, masks = tiny.batch(model, size=2, seed=3)
    model.train_on_batch(inputs, masks)
    expected = model.predict(inputs, verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    keras.tree.map_structure(np.testing.assert_array_equal, reloaded.predict(inputs, verbose=0), expected)
    assert type(reloaded.loss[0]).__name__ == "ImprovedCombinedLoss"

"""Each custom layer against hand-computed values, plus its serialisation."""

import keras
import numpy as np
import pytest

from modeling.backbones import BACKBONE_PREPROCESSING
from modeling.layers import (
    AttentionBroadcast,
    AttentionWeightedPooling,
    Denormalization,
    GatedSum,
    ImagePreprocessing,
    LocallyConnected2D,
)
from tests.checkers import run_serialization_test

pytestmark = pytest.mark.multibackend


def numpy_locally_connected(x, kernel, bias, kernel_size, strides):
    """Reference: a loop over output positions, each with its own kernel slice."""
    (k_rows, k_cols), (s_rows, s_cols) = kernel_size, strides
    batch, rows, cols, _ = x.shape
    out_rows, out_cols = (rows - k_rows) // s_rows + 1, (cols - k_cols) // s_cols + 1
    out = np.zeros((batch, out_rows, out_cols, kernel.shape[-1]))
    for i in range(out_rows):
        for j in range(out_cols):
            patch = x[:, i * s_rows : i * s_rows + k_rows, j * s_cols : j * s_cols + k_cols, :]
            out[:, i, j, :] = patch.reshape(batch, -1) @ kernel[i * out_cols + j] + bias[i, j]
    return out


@pytest.mark.parametrize("filters", [1, 3])  # one filter (the attention maps) takes its own path
@pytest.mark.parametrize(
    "shape, kernel_size, strides",
    [
        ((4, 4, 16), (1, 1), (1, 1)),
        ((5, 6, 3), (2, 3), (1, 1)),
        ((7, 7, 2), (3, 3), (2, 2)),
        ((6, 5, 4), (2, 2), (2, 1)),
    ],
)
def test_locally_connected_matches_numpy_loop(shape, kernel_size, strides, filters):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, *shape)).astype("float32")
    layer = LocallyConnected2D(filters, kernel_size, strides=strides)
    layer.build((None, *shape))
    layer.bias.assign(rng.normal(size=tuple(layer.bias.shape)).astype("float32"))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    out = keras.ops.convert_to_numpy(layer(x))
    expected = numpy_locally_connected(x, kernel, bias, kernel_size, strides)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_locally_connected_weight_shapes_are_keras2_implementation_1():
    layer = LocallyConnected2D(2, (3, 3), strides=(2, 2))
    layer.build((None, 9, 11, 4))
    # output 4 x 5 positions; kernel (positions, 3*3*4, filters); bias (4, 5, filters)
    assert [tuple(w.shape) for w in layer.weights] == [(20, 36, 2), (4, 5, 2)]
    assert layer.count_params() == 20 * 36 * 2 + 4 * 5 * 2


def test_locally_connected_one_by_one_has_seventeen_params_per_position():
    layer = LocallyConnected2D(1, 1, activation="tanh")
    layer.build((None, 16, 16, 16))
    assert layer.count_params() == 17 * 16 * 16  # the original's 4,352


def test_locally_connected_activation_and_serialization():
    layer = LocallyConnected2D(1, 1, activation="tanh", use_bias=False, kernel_initializer="ones")
    x = np.full((1, 2, 2, 4), 0.25, "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), np.tanh(1.0), rtol=1e-6)
    revived = run_serialization_test(layer)
    assert revived.activation is keras.activations.tanh


def test_locally_connected_bad_arguments():
    with pytest.raises(ValueError, match="padding='valid'"):
        LocallyConnected2D(1, 1, padding="same")
    with pytest.raises(ValueError, match="known spatial input size"):
        LocallyConnected2D(1, 1).build((None, None, None, 3))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        LocallyConnected2D(1, 3).build((None, 2, 2, 3))


def test_attention_broadcast_is_the_frozen_ones_convolution():
    layer = AttentionBroadcast(5)
    x = np.arange(8, dtype="float32").reshape(2, 2, 2, 1)
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(out, np.repeat(x, 5, axis=-1))
    assert [tuple(w.shape) for w in layer.non_trainable_weights] == [(1, 1, 1, 5)]
    assert not layer.trainable_weights
    # With another kernel it computes what a bias-free 1x1 conv would.
    kernel = np.array([1, -2, 0.5, 3, 0], "float32").reshape(1, 1, 1, 5)
    layer.set_weights([kernel])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), x * kernel.reshape(5))
    run_serialization_test(layer)


def test_attention_weighted_pooling_hand_computed():
    features = np.array([[[[1.0, 10.0], [2.0, 20.0]], [[3.0, 30.0], [4.0, 40.0]]]], "float32")
    attention = np.array([[[[0.5], [0.0]], [[0.25], [0.25]]]], "float32")
    # channel 0: (0.5*1 + 0.25*3 + 0.25*4) / (0.5 + 0.25 + 0.25) = 2.25
    out = keras.ops.convert_to_numpy(AttentionWeightedPooling()([features, np.repeat(attention, 2, -1)]))
    np.testing.assert_allclose(out, [[2.25, 22.5]], rtol=1e-6)
    # A one-channel map broadcasts over the channels and gives the same result.
    out_single = keras.ops.convert_to_numpy(AttentionWeightedPooling()([features, attention]))
    np.testing.assert_allclose(out_single, out, rtol=1e-6)


def test_attention_weighted_pooling_guards_only_tiny_denominators():
    features = np.ones((3, 1, 2, 1), "float32")
    # denominators (means of attention): 0.0, -1e-8 (tiny), -0.25 (normal, negative)
    attention = np.array([[0.0, 0.0], [-2e-8, 0.0], [-0.5, 0.0]], "float32").reshape(3, 1, 2, 1)
    layer = AttentionWeightedPooling(epsilon=1e-6)
    out = keras.ops.convert_to_numpy(layer([features, attention]))
    numerators = (features * attention).mean(axis=(1, 2))
    np.testing.assert_allclose(out[0], numerators[0] / 1e-6)
    np.testing.assert_allclose(out[1], numerators[1] / -1e-6, rtol=1e-6)
    np.testing.assert_allclose(out[2], [1.0], rtol=1e-6)  # exact division, unchanged
    assert np.all(np.isfinite(out))
    assert run_serialization_test(layer).epsilon == 1e-6


def test_gated_sum_is_convex_combination():
    gate = np.array([[0.0, 0.5, 1.0]], "float32")
    first = np.array([[2.0, 2.0, 2.0]], "float32")
    second = np.array([[-1.0, -1.0, -1.0]], "float32")
    out = keras.ops.convert_to_numpy(GatedSum()([gate, first, second]))
    np.testing.assert_allclose(out, [[-1.0, 0.5, 2.0]])
    run_serialization_test(GatedSum(name="fusion_sum"))


def test_layers_train_inside_a_model():
    """Gradients reach the locally connected kernel through the pooling."""
    features = keras.Input((3, 3, 4))
    attention = LocallyConnected2D(1, 1, activation="tanh")(features)
    pooled = AttentionWeightedPooling()([features, AttentionBroadcast(4)(attention)])
    model = keras.Model(features, keras.layers.Dense(1)(pooled))
    model.compile("sgd", "mse")
    rng = np.random.default_rng(1)
    before = keras.ops.convert_to_numpy(model.layers[1].kernel).copy()
    model.train_on_batch(rng.normal(size=(4, 3, 3, 4)).astype("float32"), np.ones((4, 1), "float32"))
    assert not np.allclose(before, keras.ops.convert_to_numpy(model.layers[1].kernel))


@pytest.mark.parametrize(
    "backbone, reference",
    [
        ("xception", keras.applications.xception.preprocess_input),
        ("resnet50", keras.applications.resnet.preprocess_input),
        ("mobilenet_v2", keras.applications.mobilenet_v2.preprocess_input),
        ("convnext_tiny", keras.applications.convnext.preprocess_input),
    ],
)
def test_image_preprocessing_matches_keras_applications(backbone, reference):
    pixels = np.random.default_rng(0).uniform(0, 255, size=(2, 4, 4, 3)).astype("float32")
    layer = ImagePreprocessing(BACKBONE_PREPROCESSING[backbone])
    expected = keras.ops.convert_to_numpy(reference(pixels.copy()))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(pixels)), expected, rtol=1e-5, atol=1e-4)
    assert run_serialization_test(layer).mode == layer.mode
    with pytest.raises(ValueError, match="Unknown preprocessing mode 'torch'"):
        ImagePreprocessing("torch")


def test_denormalization():
    layer = Denormalization(mean=127.0, std=40.0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(np.array([[-1.0], [0.25]], "float32"))), [[87.0], [137.0]]
    )
    assert run_serialization_test(layer).get_config()["std"] == 40.0
    with pytest.raises(ValueError, match="std"):
        Denormalization(0.0, 0.0)

"""FusedBatchNormalization computes what keras.layers.BatchNormalization computes, on every backend."""

import keras
import numpy as np
import pytest

from modeling.backbones import build_backbone
from modeling.layers import FusedBatchNormalization, fuse_batch_normalization
from tests.checkers import run_serialization_test

pytestmark = pytest.mark.multibackend


def twin_layers(shape, seed=0, **kwargs):
    """A plain and a fused layer with the same random (non-default) weights."""
    rng = np.random.default_rng(seed)
    plain, fused = keras.layers.BatchNormalization(**kwargs), FusedBatchNormalization(**kwargs)
    plain.build(shape)
    fused.build(shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in plain.weights]
    weights[-1] = np.abs(weights[-1]) + 0.5  # a positive moving variance
    plain.set_weights(weights)
    fused.set_weights(weights)
    return plain, fused


def numpy_batch_norm_step(x, gamma, beta, moving_mean, moving_var, momentum, epsilon):
    """Training-mode output and updated moving statistics (biased batch variance), by the formula."""
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    out = (x - mean) / np.sqrt(var + epsilon) * gamma + beta
    return out, moving_mean * momentum + mean * (1 - momentum), moving_var * momentum + var * (1 - momentum)


@pytest.mark.parametrize("epsilon", [1e-3, 1.001e-5])
def test_training_step_matches_the_formula_and_the_plain_layer(epsilon):
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(4, 5, 6, 3)).astype("float32")
    plain, fused = twin_layers(x.shape, momentum=0.9, epsilon=epsilon)
    gamma, beta, moving_mean, moving_var = (w.copy() for w in fused.get_weights())
    expected, expected_mean, expected_var = numpy_batch_norm_step(x, gamma, beta, moving_mean, moving_var, 0.9, epsilon)
    out_fused = keras.ops.convert_to_numpy(fused(x, training=True))
    out_plain = keras.ops.convert_to_numpy(plain(x, training=True))
    np.testing.assert_allclose(out_fused, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out_fused, out_plain, atol=2e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused.moving_mean), expected_mean, rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused.moving_variance), expected_var, rtol=1e-5)


def test_inference_uses_the_moving_statistics():
    x = np.random.default_rng(2).normal(size=(2, 3, 3, 4)).astype("float32")
    plain, fused = twin_layers(x.shape)
    gamma, beta, moving_mean, moving_var = fused.get_weights()
    expected = (x - moving_mean) / np.sqrt(moving_var + 1e-3) * gamma + beta
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused(x, training=False)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fused(x, training=False)), keras.ops.convert_to_numpy(plain(x)), atol=1e-5
    )


def test_gradients_equal_the_plain_layers():
    x = np.random.default_rng(3).normal(size=(3, 4, 4, 2)).astype("float32")
    target = np.random.default_rng(4).normal(size=(3, 4, 4, 2)).astype("float32")
    grads = []
    for layer in twin_layers(x.shape):
        model = keras.Sequential([keras.Input(x.shape[1:]), layer])
        model.compile(keras.optimizers.SGD(1.0), "mse")
        before = [w.copy() for w in model.get_weights()]
        model.train_on_batch(x, target)
        grads.append([b - a for b, a in zip(before, model.get_weights()[:2], strict=False)])
    for plain, fused in zip(*grads, strict=True):
        np.testing.assert_allclose(fused, plain, atol=1e-5)


def test_inputs_the_kernel_cannot_take_fall_back_to_keras():
    x = np.random.default_rng(5).normal(size=(6, 3)).astype("float32")  # 2D: no fused kernel
    plain, fused = twin_layers(x.shape, epsilon=1e-6)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fused(x, training=True)), keras.ops.convert_to_numpy(plain(x, training=True)), 1e-6
    )


def test_bfloat16_policy_keeps_float32_statistics_like_the_plain_layer():
    x = np.random.default_rng(6).normal(size=(2, 4, 4, 3)).astype("float32")
    fused, plain = (
        FusedBatchNormalization(dtype="mixed_bfloat16"),
        keras.layers.BatchNormalization(dtype="mixed_bfloat16"),
    )
    out = fused(x, training=True)
    plain(x, training=True)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(fused.moving_mean.dtype) == "float32"
    for ours, theirs in zip(fused.non_trainable_weights, plain.non_trainable_weights, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs), rtol=1e-5)


def test_config_round_trip():
    run_serialization_test(FusedBatchNormalization(momentum=0.9, epsilon=1.001e-5, center=False))


def test_backbones_get_the_fused_layer_with_unchanged_names_and_weights():
    fused = build_backbone("mobilenet_v2", (32, 32, 3))
    plain = build_backbone("mobilenet_v2", (32, 32, 3), fused_batch_norm=False)
    norms = [layer for layer in fused.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 52 and all(type(layer) is FusedBatchNormalization for layer in norms)
    assert not any(type(layer) is FusedBatchNormalization for layer in plain.layers)
    assert [w.path for w in fused.weights] == [w.path for w in plain.weights]
    assert fuse_batch_normalization(fused) == 0  # nothing left to switch

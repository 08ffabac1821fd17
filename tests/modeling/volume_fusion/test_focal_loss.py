"""Focal loss and weighted BCE against Keras' focal loss and NumPy formulas."""

import keras
import numpy as np
import pytest

from modeling.losses import FocalLoss, WeightedBinaryCrossentropy
from tests.checkers import run_serialization_test

pytestmark = pytest.mark.multibackend

RNG = np.random.default_rng(0)
Y = (RNG.uniform(size=(16, 1)) < 0.25).astype("float32")
Z = RNG.normal(scale=3.0, size=(16, 1)).astype("float32")


def value(loss, y=Y, z=Z):
    return keras.ops.convert_to_numpy(loss(y, z))


def numpy_focal(y, z, gamma, alpha, smoothing):
    y, z = y.astype("float64"), z.astype("float64")
    soft = y * (1 - smoothing) + 0.5 * smoothing
    p = 1 / (1 + np.exp(-z))
    p_t = soft * p + (1 - soft) * (1 - p)
    alpha_t = soft * alpha + (1 - soft) * (1 - alpha)
    bce = -(soft * np.log(p) + (1 - soft) * np.log(1 - p))
    return (alpha_t * (1 - p_t) ** gamma * bce).mean(axis=-1)


@pytest.mark.parametrize("alpha, gamma, smoothing", [(0.25, 2.0, 0.0), (0.75, 1.5, 0.1), (0.5, 0.0, 0.05)])
def test_fixed_alpha_equals_keras_binary_focal_crossentropy(alpha, gamma, smoothing):
    ours = FocalLoss(gamma=gamma, alpha=alpha, label_smoothing=smoothing)
    keras_loss = keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=alpha, gamma=gamma, label_smoothing=smoothing, from_logits=True
    )
    np.testing.assert_allclose(value(ours), value(keras_loss), rtol=1e-5)


def test_dynamic_alpha_equals_the_numpy_rule():
    alpha = np.clip(1 - Y.mean(), 0.05, 0.95)  # 1 - positive fraction, clipped (the reconstruction)
    expected = numpy_focal(Y, Z, 2.0, alpha, 0.1)
    got = value(FocalLoss(gamma=2.0, alpha="dynamic", label_smoothing=0.1, reduction="none"))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # the clip: a batch of positives only gets alpha 0.05
    ones = np.ones((4, 1), "float32")
    got = value(FocalLoss(alpha="dynamic", reduction="none"), ones, Z[:4])
    np.testing.assert_allclose(got, numpy_focal(ones, Z[:4], 2.0, 0.05, 0.0), rtol=1e-5)


def test_gamma_zero_alpha_half_is_half_the_bce():
    bce = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1)
    np.testing.assert_allclose(value(FocalLoss(gamma=0.0, alpha=0.5, label_smoothing=0.1)), 0.5 * value(bce), rtol=1e-5)


def test_reductions():
    per_case = value(FocalLoss(reduction="none"))
    assert per_case.shape == (16,)
    np.testing.assert_allclose(value(FocalLoss(reduction="sum")), per_case.sum(), rtol=1e-5)
    np.testing.assert_allclose(value(FocalLoss(reduction="mean")), per_case.mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="`reduction` must be one of"):
        FocalLoss(reduction="max")
    with pytest.raises(ValueError, match="`alpha` must be in"):
        FocalLoss(alpha=1.5)


def test_weighted_bce_equals_pytorch_pos_weight_formula():
    soft = Y * 0.99 + 0.005
    p = 1 / (1 + np.exp(-Z.astype("float64")))
    expected = -(3.0 * soft * np.log(p) + (1 - soft) * np.log(1 - p)).mean()
    np.testing.assert_allclose(value(WeightedBinaryCrossentropy(3.0, label_smoothing=0.01)), expected, rtol=1e-5)
    unweighted = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.01)
    np.testing.assert_allclose(value(WeightedBinaryCrossentropy(1.0, 0.01)), value(unweighted), rtol=1e-5)


def test_losses_serialize():
    for loss in (FocalLoss(gamma=1.0, alpha="dynamic", label_smoothing=0.1), WeightedBinaryCrossentropy(2.0, 0.1)):
        revived = run_serialization_test(loss)
        np.testing.assert_allclose(value(revived), value(loss), rtol=1e-6)

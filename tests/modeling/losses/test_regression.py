"""Regression losses against their formulas, computed by hand."""

import keras
import numpy as np
import pytest

from modeling.losses import LOSS_NAMES, Huber, ScaledMeanSquaredError, SmoothL1, Wing, get_loss_function
from tests.checkers import run_serialization_test

pytestmark = pytest.mark.multibackend

Y_TRUE = np.array([[0.0, 0.0, 0.0, 0.0]], "float32")
Y_PRED = np.array([[0.2, -0.9, 1.5, -12.0]], "float32")


def test_smooth_l1_formula():
    # sigma = 2: quadratic where |d| < 0.25 -> 0.5*4*d^2; else |d| - 0.125
    expected = np.mean([0.5 * 4 * 0.04, 0.9 - 0.125, 1.5 - 0.125, 12 - 0.125])
    assert float(SmoothL1(sigma=2.0)(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-6)


def test_wing_formula():
    w, eps = 10.0, 2.0
    c = w - w * np.log(1 + w / eps)  # -7.9176
    assert c == pytest.approx(-7.917595, rel=1e-6)
    expected = np.mean([w * np.log(1 + 0.2 / eps), w * np.log(1 + 0.9 / eps), w * np.log(1 + 1.5 / eps), 12 - c])
    assert float(Wing(w, eps)(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-6)


def test_huber_matches_the_original_formula():
    delta = 1.0
    d = np.abs(Y_PRED[0])
    expected = np.mean(np.where(d < delta, 0.5 * d**2, delta * d - 0.5 * delta**2))
    assert float(get_loss_function("huber", huber_delta=delta)(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-6)
    assert float(Huber(delta)(Y_TRUE, Y_PRED)) == pytest.approx(float(keras.losses.Huber(delta)(Y_TRUE, Y_PRED)))


def test_get_loss_function_names_and_parameters():
    assert LOSS_NAMES == ("mae", "mse", "huber", "smooth_l1", "wing")
    assert float(get_loss_function("mae")(Y_TRUE, Y_PRED)) == pytest.approx(np.abs(Y_PRED).mean())
    assert float(get_loss_function("mse")(Y_TRUE, Y_PRED)) == pytest.approx((Y_PRED**2).mean(), rel=1e-6)
    wing = get_loss_function("wing", wing_w=5.0, wing_epsilon=1.0, huber_delta=3.0)
    assert (wing.width, wing.curvature) == (5.0, 1.0)
    assert get_loss_function("smooth_l1", smooth_l1_sigma=3.0).sigma == 3.0
    with pytest.raises(ValueError, match="Unknown loss 'hinge'. Choose one of: mae, mse, huber, smooth_l1, wing"):
        get_loss_function("hinge")
    with pytest.raises(ValueError, match="wing_width"):
        get_loss_function("wing", wing_width=5.0)


def test_scaled_mse_formula_and_unit_scale():
    y_true = np.array([[10.0, 4.0], [8.0, 3.5]], "float32")
    y_pred = np.array([[12.0, 3.3], [8.5, 3.5]], "float32")
    # rows: ((2/2)^2 + (0.7/0.5)^2) / 2 = 1.48 and ((0.5/2)^2 + 0) / 2 = 0.03125; batch mean 0.755625
    loss = ScaledMeanSquaredError(scale=[2.0, 0.5])
    assert float(loss(y_true, y_pred)) == pytest.approx(0.755625, rel=1e-6)
    unit = float(ScaledMeanSquaredError(scale=[1.0, 1.0])(y_true, y_pred))
    assert unit == pytest.approx(float(keras.losses.MeanSquaredError()(y_true, y_pred)), rel=1e-6)
    with pytest.raises(ValueError, match="one positive value per target"):
        ScaledMeanSquaredError(scale=[1.0, 0.0])


@pytest.mark.parametrize(
    "loss", [Huber(delta=0.5), SmoothL1(sigma=0.5), Wing(width=4.0, curvature=0.5), ScaledMeanSquaredError([2.0] * 4)]
)
def test_losses_serialize(loss):
    revived = run_serialization_test(loss)
    assert float(revived(Y_TRUE, Y_PRED)) == pytest.approx(float(loss(Y_TRUE, Y_PRED)))

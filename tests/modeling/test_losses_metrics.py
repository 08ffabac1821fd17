"""Losses, the months metric, the optimizer factory and small utilities, against hand-computed values."""

import keras
import numpy as np
import pandas as pd
import pytest

from modeling import (
    LOSS_NAMES,
    Huber,
    MAEMonths,
    SmoothL1,
    Wing,
    boneage_mean_std,
    get_loss_function,
    mae_months,
    optimizer,
    plot_history,
)
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


@pytest.mark.parametrize("loss", [Huber(delta=0.5), SmoothL1(sigma=0.5), Wing(width=4.0, curvature=0.5)])
def test_losses_serialize(loss):
    revived = run_serialization_test(loss)
    assert float(revived(Y_TRUE, Y_PRED)) == pytest.approx(float(loss(Y_TRUE, Y_PRED)))


def test_mae_months_and_metric():
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(mae_months([[1.0], [-1.0]], [[0.5], [0.0]], boneage_mean=130.0, boneage_std=28.0)),
        [14.0, 28.0],
    )
    metric = MAEMonths(boneage_mean=130.0, boneage_std=28.0)
    metric.update_state([[1.0], [-1.0]], [[0.5], [0.0]])
    metric.update_state([[0.0]], [[0.0]])
    assert float(metric.result()) == pytest.approx((14 + 28 + 0) / 3)
    revived = run_serialization_test(metric)
    assert (revived.boneage_mean, revived.boneage_std) == (130.0, 28.0)
    with pytest.raises(ValueError, match="boneage_std"):
        MAEMonths(130.0, 0.0)


def test_optimizer_is_clipped_adam_and_decay_becomes_inverse_time():
    plain = optimizer(1e-3, 0.9, 0.999, 1e-7, 0.0)
    assert isinstance(plain, keras.optimizers.Adam)
    assert (plain.clipnorm, plain.global_clipnorm) == (1.0, None)
    assert float(plain.learning_rate) == pytest.approx(1e-3)

    decayed = optimizer(1e-3, 0.9, 0.999, 1e-7, 0.01)
    schedule = decayed._learning_rate
    for step in (0, 1, 10, 1000):  # Keras 2 legacy: lr / (1 + decay * iterations)
        assert float(schedule(step)) == pytest.approx(1e-3 / (1 + 0.01 * step), rel=1e-6)
    with pytest.raises(ValueError, match="decay"):
        optimizer(1e-3, 0.9, 0.999, 1e-7, -1.0)


def test_clipnorm_clips_each_gradient_separately():
    """Keras 2's clipnorm (and Keras 3's) clips per variable, not globally."""
    a, b = keras.Variable([0.0, 0.0]), keras.Variable([0.0])
    opt = keras.optimizers.SGD(learning_rate=1.0, clipnorm=1.0)
    opt.apply_gradients([(np.array([3.0, 4.0], "float32"), a), (np.array([0.5], "float32"), b)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(a), [-0.6, -0.8], rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(b), [-0.5], rtol=1e-6)


def test_boneage_mean_std_averages_the_two_splits():
    train = pd.DataFrame({"boneage": [100.0, 120.0, 140.0]})  # mean 120, sd 20
    val = pd.DataFrame({"boneage": [90.0, 110.0]})  # mean 100, sd 14.142
    mean, std = boneage_mean_std(train, val)
    assert mean == pytest.approx(110.0)
    assert std == pytest.approx((20.0 + np.sqrt(200.0)) / 2)
    with pytest.raises(ValueError, match="df_val has no 'boneage' column"):
        boneage_mean_std(train, pd.DataFrame({"age": [1.0]}))


def test_plot_history_returns_the_two_figures():
    history = {"loss": [3.0, 2.0, 1.5], "val_loss": [3.5, 2.5, 2.0], "mae": [2.0, 1.0, 0.9], "val_mae": [2.2, 1.4, 1.2]}
    mae_figure, loss_figure = plot_history(history)
    assert mae_figure.axes[0].get_title() == "Training and validation MAE"
    assert loss_figure.axes[0].get_title() == "Training and validation loss"
    validation_line = loss_figure.axes[0].get_lines()[1]
    np.testing.assert_array_equal(validation_line.get_ydata(), [3.5, 2.5, 2.0])
    with pytest.raises(ValueError, match="no 'loss' key"):
        plot_history({"mae": [1.0]})

"""The original's optimizer factory, target statistics and learning-curve plots."""

import keras
import numpy as np
import pandas as pd
import pytest

from modeling.boneage import boneage_mean_std, optimizer, plot_history

pytestmark = pytest.mark.multibackend


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

"""Cyclical learning rate: the original's formulas, reset between phases, serialisation, use in fit."""

import keras
import numpy as np
import pytest

from callbacks import CyclicalLearningRate, CyclicalSchedule
from tests.checkers import run_serialization_test

# base 0.1, max 0.5, step size 4 (a cycle is 8 iterations); values worked out by hand.
HAND_COMPUTED = {
    "triangular": {0: 0.1, 1: 0.2, 2: 0.3, 4: 0.5, 6: 0.3, 8: 0.1, 10: 0.3, 12: 0.5},
    # The amplitude halves each cycle: 0.4 / 2 at it=12 (cycle 2), 0.4 / 4 at it=20 (cycle 3).
    "triangular2": {0: 0.1, 2: 0.3, 4: 0.5, 10: 0.2, 12: 0.3, 20: 0.2},
    # gamma = 0.5: amplitude * 0.5**it, e.g. it=2: 0.1 + 0.4 * 0.5 * 0.25 = 0.15.
    "exp_range": {0: 0.1, 1: 0.15, 2: 0.15, 4: 0.125, 6: 0.1 + 0.4 * 0.5 * 0.5**6},
}


@pytest.mark.parametrize("mode", sorted(HAND_COMPUTED))
def test_schedule_matches_the_formulas(mode):
    schedule = CyclicalSchedule(base_lr=0.1, max_lr=0.5, step_size=4, mode=mode, gamma=0.5)
    for step, expected in HAND_COMPUTED[mode].items():
        assert float(keras.ops.convert_to_numpy(schedule(step))) == pytest.approx(expected, rel=1e-6), step


def test_schedule_round_trips_alone_and_inside_an_optimizer():
    schedule = CyclicalSchedule(base_lr=1e-4, max_lr=1e-3, step_size=50, mode="exp_range", gamma=0.99)
    run_serialization_test(schedule)
    optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(keras.optimizers.Adam(schedule)))
    revived = optimizer._learning_rate
    assert isinstance(revived, CyclicalSchedule) and revived.get_config() == schedule.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"base_lr": 1e-2, "max_lr": 1e-3}, "must not be below"),
        ({"mode": "cosine"}, "Unknown mode 'cosine'"),
        ({"step_size": 0}, "step_size"),
        ({"gamma": 1.5}, "gamma"),
        ({"base_lr": 0.0}, "base_lr"),
    ],
)
def test_bad_arguments_fail(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CyclicalSchedule(**kwargs)
    with pytest.raises(ValueError, match=message):
        CyclicalLearningRate(**kwargs)


def test_a_flat_cycle_warns():
    with pytest.warns(UserWarning, match="constant"):
        CyclicalLearningRate(base_lr=1e-4, max_lr=1e-4)


def linear_probe(optimizer):
    """w <- w + lr at every step: one weight, input 1, target 100, MAE, plain SGD."""
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(inputs))
    model.compile(optimizer=optimizer, loss="mae")
    return model, np.ones((3, 1), "float32"), np.full((3, 1), 100.0, "float32")


class KernelPerEpoch(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.values = []

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(float(keras.ops.convert_to_numpy(self.model.weights[0])[0, 0]))


@pytest.mark.multibackend
def test_callback_sets_the_rate_every_batch_and_reset_starts_a_new_cycle():
    model, x, y = linear_probe(keras.optimizers.SGD(1.0))
    clr = CyclicalLearningRate(base_lr=0.1, max_lr=0.3, step_size=2)
    kernel = KernelPerEpoch()
    history = model.fit(x, y, batch_size=1, epochs=2, shuffle=False, verbose=0, callbacks=[clr, kernel])
    used = [0.1, 0.2, 0.3, 0.2, 0.1, 0.2]
    np.testing.assert_allclose(clr.history["lr"], used, rtol=1e-6)
    assert clr.history["iterations"] == [1, 2, 3, 4, 5, 6]
    # The weight moved by the rates actually applied, batch by batch.
    np.testing.assert_allclose(kernel.values, [sum(used[:3]), sum(used)], rtol=1e-5)
    np.testing.assert_allclose(history.history["learning_rate"], [0.3, 0.2], rtol=1e-6)

    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0, callbacks=[clr])
    np.testing.assert_allclose(clr.history["lr"][6:], [0.3, 0.2, 0.1], rtol=1e-6)  # carried over
    clr.reset()
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0, callbacks=[clr])
    np.testing.assert_allclose(clr.history["lr"][9:], [0.1, 0.2, 0.3], rtol=1e-6)  # new cycle
    assert len(clr.history["lr"]) == 12


@pytest.mark.multibackend
def test_schedule_drives_the_optimizer_directly():
    schedule = CyclicalSchedule(base_lr=0.1, max_lr=0.3, step_size=2)
    model, x, y = linear_probe(keras.optimizers.SGD(schedule))
    kernel = KernelPerEpoch()
    model.fit(x, y, batch_size=1, epochs=2, shuffle=False, verbose=0, callbacks=[kernel])
    np.testing.assert_allclose(kernel.values, [0.6, 1.1], rtol=1e-5)


def test_callback_refuses_an_optimizer_with_a_schedule():
    model, x, y = linear_probe(keras.optimizers.SGD(CyclicalSchedule(0.1, 0.3, 2)))
    with pytest.raises(ValueError, match="float learning rate"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[CyclicalLearningRate(0.1, 0.3, 2)])

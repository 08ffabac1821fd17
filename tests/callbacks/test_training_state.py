"""Exact resume: N epochs straight and N epochs killed after k then resumed give the same training.

Each case trains a tiny model (a nested "backbone", dropout, Adam) in two phases as the training
commands do: phase 1 with the backbone frozen, phase 2 recompiled, with the callbacks of the case.
The kill is an exception right after the state of epoch k was saved; a fresh model, fresh
callbacks and a fresh optimizer then run the same phases again. The weights, the optimizer's
variables, the learning rate of every step and the callbacks' counters must agree.
"""

import keras
import numpy as np
import pytest

from callbacks import (
    BackboneFreezer,
    CyclicalLearningRate,
    LearningRateLogger,
    TrainingStateBackup,
    with_training_state,
)

PHASE1, PHASE2 = 3, 4
X = np.random.default_rng(0).normal(size=(24, 4)).astype("float32")
Y = (X @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")).astype("float32")


def build():
    keras.utils.set_random_seed(1)
    backbone = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(8, activation="relu")],
        name="backbone",
    )
    inputs = keras.Input((4,))
    x = keras.layers.Dropout(0.2)(backbone(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    backbone.trainable = False
    model.compile(keras.optimizers.Adam(0.01), "mse", run_eagerly=True)
    return model


class Kill(Exception):
    pass


class KillAfter(keras.callbacks.Callback):
    """Raises after epoch ``epoch`` (0-based) of the phase with ``phase_epochs`` epochs."""

    def __init__(self, phase_epochs, epoch):
        super().__init__()
        self.phase_epochs, self.epoch = phase_epochs, epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.params["epochs"] == self.phase_epochs and epoch == self.epoch:
            raise Kill()


class StepRecorder(keras.callbacks.Callback):
    """The learning rate each step used (read after the step, from whichever optimizer is current)."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


PHASE2_CALLBACKS = {
    "plateau": lambda: [
        keras.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=1, cooldown=1, min_delta=10.0),
        keras.callbacks.EarlyStopping("loss", patience=50, restore_best_weights=True),
    ],
    "cyclical": lambda: [CyclicalLearningRate(1e-3, 1e-2, step_size=5, mode="triangular2")],
    "unfreeze": lambda: [
        BackboneFreezer({1: 1, 2: 1.0}, lr_multiplier=0.5),
        keras.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=1, min_delta=10.0),
    ],
}


def train(folder, case, recorder, kill=None):
    """Both phases; ``kill`` = (phase, epoch) raises `Kill` after that epoch's state is saved."""
    model = build()
    finished = {}
    for phase, epochs in (("phase1", PHASE1), ("phase2", PHASE2)):
        callbacks = [LearningRateLogger()]
        if phase == "phase2":
            model.get_layer("backbone").trainable = case != "unfreeze"
            model.compile(keras.optimizers.Adam(0.01), "mse", run_eagerly=True)
            callbacks += PHASE2_CALLBACKS[case]()
        callbacks = with_training_state(callbacks, folder / phase, delete_checkpoint=False)
        done = TrainingStateBackup.saved_epoch(folder / phase)
        if done == epochs:  # the phase finished before the kill: the next phase's start is its state
            model.load_weights(folder / phase / f"epoch_{done:05d}.weights.h5")
            continue
        callbacks.append(recorder)
        if kill is not None and kill[0] == phase:
            callbacks.append(KillAfter(epochs, kill[1]))
        history = model.fit(X, Y, batch_size=8, epochs=epochs, shuffle=False, callbacks=callbacks, verbose=0)
        finished[phase] = (history.history, callbacks)
    return model, finished


@pytest.mark.parametrize(
    "case, kill",
    [("plateau", ("phase1", 1)), ("plateau", ("phase2", 1)), ("cyclical", ("phase2", 2)), ("unfreeze", ("phase2", 0))],
)
def test_a_resumed_run_continues_exactly(tmp_path, case, kill):
    straight_rates = StepRecorder()
    straight, straight_phases = train(tmp_path / "straight", case, straight_rates)

    resumed_rates = StepRecorder()
    with pytest.raises(Kill):
        train(tmp_path / "killed", case, resumed_rates, kill=kill)
    resumed, resumed_phases = train(tmp_path / "killed", case, resumed_rates)

    np.testing.assert_allclose(resumed_rates.rates, straight_rates.rates, rtol=1e-7)
    if case != "unfreeze":  # the case tests something: the rate really moves in phase 2
        assert len(set(straight_rates.rates[PHASE1 * 3 :])) > 2
    else:  # the freezer really rebuilt the optimizer, with moments for the unfrozen backbone
        assert len(straight.trainable_variables) == 6
        assert len(straight.optimizer.variables) == 2 + 2 * 6
    for a, b in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert len(resumed.optimizer.variables) == len(straight.optimizer.variables)
    for a, b in zip(resumed.optimizer.variables, straight.optimizer.variables, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7, err_msg=a.path)
    # the phase-2 callbacks end with the same counters
    history, callbacks = resumed_phases["phase2"]
    straight_history, straight_callbacks = straight_phases["phase2"]
    for mine, theirs in zip(callbacks, straight_callbacks, strict=True):
        for name in ("wait", "cooldown_counter", "best", "best_epoch", "iteration", "submodel_changes"):
            assert getattr(mine, name, None) == getattr(theirs, name, None), (type(mine).__name__, name)
    # every epoch logs its learning rate, the resumed ones too
    epochs_after_kill = PHASE2 - (kill[1] + 1 if kill[0] == "phase2" else 0)
    assert len(history["learning_rate"]) == epochs_after_kill
    np.testing.assert_allclose(history["learning_rate"], straight_history["learning_rate"][-epochs_after_kill:])


def test_a_backup_with_other_callbacks_is_refused(tmp_path):
    model = build()
    plateau = keras.callbacks.ReduceLROnPlateau("loss")
    model.fit(X, Y, epochs=1, callbacks=with_training_state([plateau], tmp_path, delete_checkpoint=False), verbose=0)
    with pytest.raises(ValueError, match="holds the state of 1 callbacks but 0 are tracked"):
        model.fit(X, Y, epochs=2, callbacks=with_training_state([], tmp_path), verbose=0)


def test_only_one_consistent_state_is_kept(tmp_path):
    model = build()
    model.fit(X, Y, epochs=3, callbacks=with_training_state([], tmp_path, delete_checkpoint=False), verbose=0)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["epoch_00003.weights.h5", "training_state.json"]
    assert TrainingStateBackup.saved_epoch(tmp_path) == 3
    model.fit(X, Y, epochs=3, callbacks=with_training_state([], tmp_path), verbose=0)  # finished: deleted
    assert not tmp_path.exists()

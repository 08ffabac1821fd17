"""Exact resume after a kill: `TrainingStateBackup` keeps the weights, the optimizer and the callbacks' state.

Keras' `BackupAndRestore` restores the weights, the optimizer variables and the epoch, but not the
random state of dropout layers (their seed generators are variables but not weights), nor what
the callbacks count: a cyclical learning rate's position, ReduceLROnPlateau's wait, cooldown and
best value, EarlyStopping's counters, ModelCheckpoint's best value. And when `BackboneFreezer` has
rebuilt the optimizer for more trainable weights, a fresh run's optimizer has fewer variables, so
Keras skips loading it ("Skipping variable loading for optimizer"), resetting the iteration count
and Adam's moments. `TrainingStateBackup` saves, after every epoch, the weights (optimizer
included) and one JSON file with the epoch, the seed generators' states and every tracked
callback's state; at the start of
``fit`` it first lets callbacks that change the trainable set (the freezer) restore it, then loads
the weights, then the other callbacks' counters.

What a callback's state is:

* a callback with ``get_state()`` / ``set_state(state)`` (JSON types) keeps its own;
  ``restore_before_weights = True`` marks one whose state decides the optimizer's variables;
* ReduceLROnPlateau, EarlyStopping (with ``best_weights``) and ModelCheckpoint are known here;
* other callbacks have none.

The files are written atomically: a new weights file under a new name, then the JSON file that
names it replaces the old one (a rename), then the old weights file is deleted; a kill at any
moment leaves one consistent state.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

STATE_FILE = "training_state.json"
# Plain attributes of Keras' own callbacks that `on_train_begin` resets.
KERAS_CALLBACK_STATE = {
    keras.callbacks.ReduceLROnPlateau: ("wait", "cooldown_counter", "best"),
    keras.callbacks.EarlyStopping: ("wait", "stopped_epoch", "best", "best_epoch"),
    keras.callbacks.ModelCheckpoint: ("best",),
}


class TrainingStateBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that also restores the optimizer after a rebuild and the callbacks' counters.

    Put it **last** in the callback list: Keras' callbacks reset their counters in
    ``on_train_begin``, so the restore must come after theirs (`with_training_state` does that).
    State is saved at the end of every epoch; ``backup_dir`` is removed when ``fit`` finishes,
    unless ``delete_checkpoint=False``.

    Args:
        backup_dir: folder of this run's backup (not shared with anything else).
        callbacks: the callbacks whose state is kept (those without state are ignored).
        delete_checkpoint: delete ``backup_dir`` at the end of a completed ``fit``.

    Example:

    >>> import tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile("adam", "mse")
    >>> plateau = keras.callbacks.ReduceLROnPlateau("loss", patience=1)
    >>> backup = TrainingStateBackup(tempfile.mkdtemp(), [plateau], delete_checkpoint=False)
    >>> _ = model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=2, callbacks=[plateau, backup], verbose=0)
    >>> TrainingStateBackup.saved_epoch(backup.backup_dir)
    2
    """

    def __init__(self, backup_dir, callbacks=(), delete_checkpoint=True):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=delete_checkpoint)
        self.tracked = [callback for callback in callbacks if _has_state(callback)]

    @staticmethod
    def saved_epoch(backup_dir):
        """The number of epochs the backup in ``backup_dir`` has finished (0 when there is none)."""
        state = _read_state(backup_dir)
        return 0 if state is None else int(state["epoch"])

    def on_train_begin(self, logs=None):
        state = _read_state(self.backup_dir)
        self.model._initial_epoch = None  # Keras never resets it: a resumed fit would skip epochs of the next
        if state is None:
            return
        saved = state["callbacks"]
        if len(saved) != len(self.tracked):
            raise ValueError(
                f"The backup in {self.backup_dir} holds the state of {len(saved)} callbacks but "
                f"{len(self.tracked)} are tracked now; resume with the callbacks the run started with."
            )
        pairs = list(zip(self.tracked, saved, strict=True))
        for callback, callback_state in pairs:
            if getattr(callback, "restore_before_weights", False):
                _set_state(callback, callback_state, self.backup_dir)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(Path(self.backup_dir) / state["weights"])
        for variable, value in zip(_random_states(self.model), state["random"], strict=True):
            variable.assign(np.asarray(value, variable.dtype))
        for callback, callback_state in pairs:
            if not getattr(callback, "restore_before_weights", False):
                _set_state(callback, callback_state, self.backup_dir)
        self.model._initial_epoch = int(state["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._save_model()

    def _save_model(self):
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        tag = f"epoch_{self._current_epoch:05d}"
        weights = f"{tag}.weights.h5"
        temporary = folder / f"tmp_{weights}"
        self.model.save_weights(temporary, overwrite=True)
        os.replace(temporary, folder / weights)
        states = [_get_state(callback, folder, f"{tag}_{index}") for index, callback in enumerate(self.tracked)]
        random_states = [np.asarray(variable).tolist() for variable in _random_states(self.model)]
        payload = {"epoch": self._current_epoch, "weights": weights, "random": random_states, "callbacks": states}
        _write_json(folder / STATE_FILE, payload)
        for path in folder.iterdir():  # what the previous state named
            if path.is_file() and path.name != STATE_FILE and not path.name.startswith(tag):
                path.unlink()

    def on_train_end(self, logs=None):
        self.model._initial_epoch = None
        if self.delete_checkpoint and os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)


def with_training_state(callbacks, backup_dir, delete_checkpoint=True):
    """``callbacks`` followed by a `TrainingStateBackup` that keeps their state.

    Example:

    >>> callbacks = with_training_state([keras.callbacks.EarlyStopping(patience=2)], "/tmp/backup")
    >>> type(callbacks[-1]).__name__
    'TrainingStateBackup'
    """
    callbacks = list(callbacks)
    return callbacks + [TrainingStateBackup(backup_dir, callbacks, delete_checkpoint=delete_checkpoint)]


def _random_states(model):
    """The model's variables that are not weights: the seed generators' states (dropout, noise)."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def _has_state(callback):
    return hasattr(callback, "get_state") or isinstance(callback, tuple(KERAS_CALLBACK_STATE))


def _keras_attributes(callback):
    for kind, attributes in KERAS_CALLBACK_STATE.items():
        if isinstance(callback, kind):
            return attributes
    return ()


def _get_state(callback, folder, tag):
    if hasattr(callback, "get_state"):
        return callback.get_state()
    state = {name: _plain(getattr(callback, name, None)) for name in _keras_attributes(callback)}
    best_weights = getattr(callback, "best_weights", None)
    if best_weights is not None:
        name = f"{tag}_best_weights.npz"
        np.savez(folder / f"tmp_{name}", *best_weights)
        os.replace(folder / f"tmp_{name}", folder / name)
        state["best_weights"] = name
    return state


def _set_state(callback, state, folder):
    if hasattr(callback, "set_state"):
        callback.set_state(state)
        return
    for name in _keras_attributes(callback):
        setattr(callback, name, state[name])
    if state.get("best_weights"):
        with np.load(Path(folder) / state["best_weights"]) as arrays:
            callback.best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "numpy"):
        return np.asarray(value).item()
    return value


def _read_state(backup_dir):
    path = Path(backup_dir) / STATE_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _write_json(path, payload):
    """Atomic JSON (infinite ``best`` values stay ``Infinity``)."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(payload, handle)
    os.replace(handle.name, path)

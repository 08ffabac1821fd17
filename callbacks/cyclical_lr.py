"""Cyclical learning rate (Smith, 2017): a schedule for the optimizer and a per-batch callback.

With ``it`` the iteration count and ``s`` the step size (half a cycle):

* ``cycle = floor(1 + it / (2 s))``
* ``x = |it / s - 2 cycle + 1|``
* ``scale = max(0, 1 - x)``
* triangular: ``lr = base + (max - base) * scale``
* triangular2: the amplitude ``(max - base) * scale`` is halved each cycle,
  i.e. divided by ``2 ** (cycle - 1)``
* exp_range: the amplitude is multiplied by ``gamma ** it``

These are the formulas of the original code. `CyclicalSchedule` holds the one
implementation; `CyclicalLearningRate` evaluates it once per batch.
"""

import warnings

import keras
from keras import ops

CLR_MODES = ("triangular", "triangular2", "exp_range")


@keras.saving.register_keras_serializable(package="medfusion")
class CyclicalSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Cyclical learning rate as a `LearningRateSchedule`, to hand to an optimizer.

    The optimizer calls it with its own iteration count, so the cycle runs on
    across ``fit`` calls for as long as the optimizer lives. To start a new
    cycle for a new training phase, use `CyclicalLearningRate` and its
    ``reset()`` (or a new optimizer).

    Args:
        base_lr: lower bound of the cycle (> 0).
        max_lr: upper bound; must be >= ``base_lr`` (equal gives a constant
            rate and a warning: the original's default made its cycle flat).
        step_size: iterations per half cycle (a positive integer).
        mode: "triangular", "triangular2" or "exp_range".
        gamma: per-iteration decay of the amplitude in "exp_range", in (0, 1].

    Example:

    >>> schedule = CyclicalSchedule(base_lr=0.1, max_lr=0.5, step_size=4)
    >>> [round(float(schedule(step)), 4) for step in (0, 2, 4, 6, 8)]
    [0.1, 0.3, 0.5, 0.3, 0.1]
    >>> optimizer = keras.optimizers.SGD(learning_rate=schedule)
    """

    def __init__(self, base_lr=1e-4, max_lr=1e-2, step_size=2000, mode="triangular", gamma=1.0):
        if not base_lr > 0:
            raise ValueError(f"`base_lr` must be positive; got {base_lr!r}.")
        if max_lr < base_lr:
            raise ValueError(
                f"`max_lr` ({max_lr!r}) must not be below `base_lr` ({base_lr!r}); "
                "the cycle goes from base_lr up to max_lr."
            )
        if max_lr == base_lr:
            warnings.warn(
                f"`max_lr` equals `base_lr` ({base_lr!r}): the cyclical learning rate is constant.",
                UserWarning,
                stacklevel=2,
            )
        if isinstance(step_size, bool) or int(step_size) != step_size or step_size < 1:
            raise ValueError(f"`step_size` must be a positive integer; got {step_size!r}.")
        if mode not in CLR_MODES:
            raise ValueError(f"Unknown mode {mode!r}. Choose one of: {', '.join(CLR_MODES)}.")
        if not 0 < gamma <= 1:
            raise ValueError(f"`gamma` must be in (0, 1]; got {gamma!r}.")
        self.base_lr = float(base_lr)
        self.max_lr = float(max_lr)
        self.step_size = int(step_size)
        self.mode = mode
        self.gamma = float(gamma)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        half_cycle = float(self.step_size)
        cycle = ops.floor(1.0 + step / (2.0 * half_cycle))
        x = ops.abs(step / half_cycle - 2.0 * cycle + 1.0)
        amplitude = (self.max_lr - self.base_lr) * ops.maximum(0.0, 1.0 - x)
        if self.mode == "triangular2":
            amplitude = amplitude / ops.power(2.0, cycle - 1.0)
        elif self.mode == "exp_range":
            amplitude = amplitude * ops.power(self.gamma, step)
        return self.base_lr + amplitude

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "max_lr": self.max_lr,
            "step_size": self.step_size,
            "mode": self.mode,
            "gamma": self.gamma,
        }


class CyclicalLearningRate(keras.callbacks.Callback):
    """Sets the optimizer's learning rate from `CyclicalSchedule` before every batch.

    The iteration count is this callback's own: it carries over from one
    ``fit`` to the next (as the original's did) until ``reset()`` starts a new
    cycle, e.g. before a fine-tuning phase. ``history["lr"]`` holds the rate
    used at every iteration and ``history["iterations"]`` the running batch
    count; the epoch logs get the last rate as ``learning_rate``.

    The optimizer must have a plain (float) learning rate, which this callback
    overwrites; to use the schedule without a callback, give
    `CyclicalSchedule` to the optimizer instead.

    Args: those of `CyclicalSchedule`.

    Example:

    >>> clr = CyclicalLearningRate(base_lr=1e-4, max_lr=1e-3, step_size=500)
    >>> clr.reset()  # call between training phases
    >>> clr.iteration
    0
    """

    def __init__(self, base_lr=1e-4, max_lr=1e-2, step_size=2000, mode="triangular", gamma=1.0):
        super().__init__()
        self.schedule = CyclicalSchedule(base_lr, max_lr, step_size, mode, gamma)
        self.iteration = 0
        self.history = {"lr": [], "iterations": []}

    def reset(self):
        """Start a new cycle at ``base_lr`` (the history is kept)."""
        self.iteration = 0

    def on_train_begin(self, logs=None):
        if not isinstance(self.model.optimizer.learning_rate, keras.Variable):
            raise ValueError(
                "CyclicalLearningRate needs an optimizer with a float learning rate, but "
                f"{type(self.model.optimizer).__name__} uses a schedule; pass "
                "CyclicalSchedule to the optimizer instead of using this callback."
            )

    def on_train_batch_begin(self, batch, logs=None):
        rate = float(ops.convert_to_numpy(self.schedule(self.iteration)))
        # On JAX, reading `self.model` writes the training state back into the
        # variables, so the next step reads the new rate.
        self.model.optimizer.learning_rate.assign(rate)
        self.history["lr"].append(rate)
        self.history["iterations"].append(len(self.history["lr"]))

    def on_train_batch_end(self, batch, logs=None):
        self.iteration += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def get_state(self):
        """The position in the cycle and the history, for `callbacks.TrainingStateBackup`."""
        return {"iteration": self.iteration, "history": {key: list(values) for key, values in self.history.items()}}

    def set_state(self, state):
        """Continue from a `get_state` result: the next batch gets the rate of that iteration."""
        self.iteration = int(state["iteration"])
        self.history = {key: list(values) for key, values in state["history"].items()}

    def get_config(self):
        return self.schedule.get_config()

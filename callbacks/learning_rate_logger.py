"""`LearningRateLogger`: the optimizer's learning rate in every epoch's logs, whatever sets it."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="medfusion")
class LearningRateLogger(keras.callbacks.Callback):
    """Puts ``learning_rate`` into the logs of every epoch: the rate of the epoch's last step.

    Works with a float rate (set by `CyclicalLearningRate`, ReduceLROnPlateau or nothing) and with
    a `LearningRateSchedule`, evaluated at the optimizer's iteration count. Put it before
    `keras.callbacks.CSVLogger` so the CSV file gets the column from its first line.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.05), "mse")
    >>> history = model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, callbacks=[LearningRateLogger()], verbose=0)
    >>> round(history.history["learning_rate"][0], 6)
    0.05
    """

    def get_config(self):
        return {}  # no settings: it reads the optimizer it is attached to

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = current_learning_rate(self.model.optimizer)


def current_learning_rate(optimizer):
    """The learning rate ``optimizer`` uses at its next step, as a Python float."""
    rate = optimizer._learning_rate
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        # the step just taken: the iteration count has already moved on
        rate = rate(ops.maximum(optimizer.iterations - 1, 0))
    return float(ops.convert_to_numpy(rate))

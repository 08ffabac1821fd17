"""Map a z-scored prediction back to its original unit."""

import keras


@keras.saving.register_keras_serializable(package="medfusion")
class Denormalization(keras.layers.Layer):
    """``z * std + mean``: turns a z-score output into months (or any unit).

    Appended to a trained regressor for export, so the saved model predicts in
    the target's unit and carries the training statistics in its config.

    Args:
        mean: the training target's mean.
        std: the training target's standard deviation (positive).
        **kwargs: base `keras.layers.Layer` arguments.

    Example:

    >>> import keras, numpy as np
    >>> keras.ops.convert_to_numpy(Denormalization(120.0, 30.0)(np.array([[0.5]]))).tolist()
    [[135.0]]
    """

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        if not std > 0:
            raise ValueError(f"`std` must be positive; got {std!r}.")
        self.mean = float(mean)
        self.std = float(std)

    def call(self, inputs):
        return keras.ops.cast(inputs, self.compute_dtype) * self.std + self.mean

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}

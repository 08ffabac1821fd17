"""Attention-weighted global average pooling."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="medfusion")
class AttentionWeightedPooling(keras.layers.Layer):
    """Per-channel attention-weighted mean: ``sum(A * f) / sum(A)`` over H and W.

    Called on ``[features, attention]`` with shapes ``(batch, H, W, C)`` and
    ``(batch, H, W, C)`` (or ``(batch, H, W, 1)``, broadcast over channels);
    returns ``(batch, C)``. This is the original's
    ``GAP(A * f) / GAP(A)`` computed in one registered layer instead of a
    ``Lambda``. The original divided without a guard; attention values from a
    ``tanh`` lie in (-1, 1), so the denominator can approach zero. Here a
    denominator whose magnitude is below ``epsilon`` is replaced by
    ``+-epsilon`` (keeping its sign, zero counting as positive); every other
    value is divided exactly as before. The division runs in float32 under
    mixed precision too.

    Args:
        epsilon: smallest magnitude allowed for the denominator.
        **kwargs: base `keras.layers.Layer` arguments.

    Example:

    >>> import keras, numpy as np
    >>> features = np.arange(8, dtype="float32").reshape(1, 2, 2, 2)
    >>> attention = np.array([1, 0, 0, 1], "float32").reshape(1, 2, 2, 1)
    >>> keras.ops.convert_to_numpy(AttentionWeightedPooling()([features, attention])).tolist()
    [[3.0, 4.0]]
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be positive; got {epsilon!r}.")
        self.epsilon = float(epsilon)

    def call(self, inputs):
        # The ratio is computed in float32 even under mixed precision: a small
        # denominator in bfloat16/float16 would lose most of its digits.
        features, attention = (ops.cast(x, "float32") for x in inputs)
        numerator = ops.mean(features * attention, axis=(1, 2))
        denominator = ops.mean(attention, axis=(1, 2))
        sign = ops.where(denominator < 0, -1.0, 1.0)
        guarded = ops.where(ops.abs(denominator) < self.epsilon, sign * self.epsilon, denominator)
        return ops.cast(numerator / guarded, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        features_shape, attention_shape = input_shape
        channels = features_shape[-1] if features_shape[-1] is not None else attention_shape[-1]
        return (features_shape[0], channels)

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config

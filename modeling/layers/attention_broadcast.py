"""Copy a one-channel attention map onto every feature channel."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="medfusion")
class AttentionBroadcast(keras.layers.Layer):
    """Broadcast a ``(batch, H, W, 1)`` map to ``(batch, H, W, channels)``.

    The original model did this with a bias-free 1x1 ``Conv2D(channels)`` whose
    kernel was set to ones and frozen. This layer keeps exactly that weight, a
    non-trainable ``kernel`` of shape ``(1, 1, 1, channels)`` initialised to ones,
    so original weight files load and parameter counts match (``channels``
    non-trainable parameters). The output is ``map * kernel``, i.e. the 1x1
    convolution written as a product.

    Args:
        channels: number of channels to broadcast to.
        **kwargs: base `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> tuple(AttentionBroadcast(3)(np.ones((1, 2, 2, 1), "float32")).shape)
    (1, 2, 2, 3)
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        if int(channels) < 1:
            raise ValueError(f"`channels` must be a positive integer; got {channels!r}.")
        self.channels = int(channels)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: 1})

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(1, 1, 1, self.channels),
            initializer="ones",
            trainable=False,
        )

    def call(self, inputs):
        return inputs * ops.reshape(self.kernel, (self.channels,))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels})
        return config

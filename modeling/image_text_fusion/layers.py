"""`TokenAt`: one position of a token sequence (the CLS token of a transformer backbone)."""

import keras


@keras.saving.register_keras_serializable(package="medfusion")
class TokenAt(keras.layers.Layer):
    """``x[:, index, :]`` of a ``(batch, tokens, width)`` sequence.

    Example:

    >>> import numpy as np
    >>> keras.ops.convert_to_numpy(TokenAt()(np.arange(12, dtype="float32").reshape(1, 3, 4))).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    """

    def __init__(self, index=0, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    def call(self, sequence):
        return sequence[:, self.index, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "index": self.index}

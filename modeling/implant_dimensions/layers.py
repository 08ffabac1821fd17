"""The weight-free operations of the implant-dimension models: the class token, the
attention-weighted concatenation of several sources, and the destandardisation of the head."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="medfusion")
class ClassToken(keras.layers.Layer):
    """The first token of a ``(batch, tokens, width)`` sequence: a ViT's pooled class token.

    Example:

    >>> import numpy as np
    >>> tokens = np.arange(12, dtype="float32").reshape(1, 3, 4)
    >>> keras.ops.convert_to_numpy(ClassToken()(tokens)).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    """

    def call(self, tokens):
        return tokens[:, 0, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="medfusion")
class WeightedConcatenation(keras.layers.Layer):
    """``[w_0 x_0 ; w_1 x_1 ; ...]``: each source scaled by its column of ``weights``, then concatenated.

    Called on ``[weights, x_0, x_1, ...]`` with ``weights`` of shape ``(batch, k)`` (a softmax
    over the ``k`` sources) and each ``x_i`` of shape ``(batch, d_i)``.

    Example:

    >>> import numpy as np
    >>> weights = np.array([[0.25, 0.75]], "float32")
    >>> first, second = np.ones((1, 2), "float32"), np.full((1, 1), 2.0, "float32")
    >>> keras.ops.convert_to_numpy(WeightedConcatenation()([weights, first, second])).tolist()
    [[0.25, 0.25, 1.5]]
    """

    def call(self, inputs):
        weights, *sources = inputs
        return ops.concatenate([weights[:, i : i + 1] * source for i, source in enumerate(sources)], axis=-1)

    def compute_output_shape(self, input_shape):
        _, *sources = input_shape
        widths = [shape[-1] for shape in sources]
        return (sources[0][0], None if None in widths else sum(widths))


@keras.saving.register_keras_serializable(package="medfusion")
class Destandardize(keras.layers.Layer):
    """``x * std + mean`` per column: a head that predicts standardised targets, returned in their units.

    Args:
        mean, std: one value per output column (e.g. the training split's length and diameter in mm).

    Example:

    >>> import numpy as np
    >>> layer = Destandardize(mean=[11.0, 4.0], std=[2.0, 0.5])
    >>> keras.ops.convert_to_numpy(layer(np.array([[1.0, -2.0]], "float32"))).tolist()
    [[13.0, 3.0]]
    """

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError(f"Destandardize needs one mean and one positive std per column; got {mean}, {std}")

    def call(self, inputs):
        return inputs * ops.convert_to_tensor(self.std, inputs.dtype) + ops.convert_to_tensor(self.mean, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}

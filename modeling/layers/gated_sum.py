"""Convex combination of two inputs under a learned gate."""

import keras


@keras.saving.register_keras_serializable(package="medfusion")
class GatedSum(keras.layers.Layer):
    """``gate * first + (1 - gate) * second``, element-wise.

    Called on ``[gate, first, second]`` of one shape (or broadcastable), with the
    gate usually the output of a sigmoid ``Dense`` layer. Kept free of weights so
    that the gate is computed by a separate, named layer whose output callbacks
    can read.

    Example:

    >>> import keras, numpy as np
    >>> gate = np.array([[0.25, 1.0]], "float32")
    >>> first, second = np.ones((1, 2), "float32"), np.zeros((1, 2), "float32")
    >>> keras.ops.convert_to_numpy(GatedSum()([gate, first, second])).tolist()
    [[0.25, 1.0]]
    """

    def call(self, inputs):
        gate, first, second = inputs
        return gate * first + (1.0 - gate) * second

    def compute_output_shape(self, input_shape):
        return input_shape[1]

"""The probability-fusion layer: two logits in, the logit of their averaged probabilities out."""

import keras


@keras.saving.register_keras_serializable(package="medfusion")
class ProbabilityAverage(keras.layers.Layer):
    """``logit((sigmoid(a) + sigmoid(b)) / 2)`` of two logits ``[a, b]``, computed in log space.

    ``log p = logaddexp(log_sigmoid(a), log_sigmoid(b)) - log 2`` and the same for ``1 - p`` with
    ``-a, -b``, so the output stays finite for logits of any size.

    Example:

    >>> import numpy as np
    >>> a, b = np.array([[0.0], [40.0]], "float32"), np.array([[0.0], [-40.0]], "float32")
    >>> np.round(keras.ops.convert_to_numpy(ProbabilityAverage()([a, b])), 5).tolist()
    [[0.0], [0.0]]
    """

    def call(self, inputs):
        first, second = inputs
        log_p = keras.ops.logaddexp(keras.ops.log_sigmoid(first), keras.ops.log_sigmoid(second))
        log_q = keras.ops.logaddexp(keras.ops.log_sigmoid(-first), keras.ops.log_sigmoid(-second))
        return log_p - log_q

    def compute_output_shape(self, input_shape):
        return input_shape[0]

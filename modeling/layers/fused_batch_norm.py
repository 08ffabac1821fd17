"""Batch normalisation that runs TensorFlow's fused kernel on the TensorFlow backend.

Keras 3's `BatchNormalization` computes the moments and the normalisation as separate ops on every
backend; Keras 2 (tf_keras) called TensorFlow's fused batch-norm kernel for 4D inputs, whose forward
and backward passes are one op each. `FusedBatchNormalization` is the same layer (same weights, same
config, same moving-statistics update ``moving = moving * momentum + batch * (1 - momentum)`` with
the biased batch variance) that takes the fused kernel where TensorFlow offers it and Keras' own
computation everywhere else (other backends, masks, renorm, synchronized statistics, 3D or 2D
inputs, a channel axis in the middle, an epsilon below the kernel's minimum).

Example:

>>> import numpy as np
>>> layer = FusedBatchNormalization(momentum=0.9)
>>> out = layer(np.ones((2, 4, 4, 3), "float32"), training=True)
>>> [round(float(v), 3) for v in keras.ops.convert_to_numpy(layer.moving_mean)]
[0.1, 0.1, 0.1]
"""

import keras
from keras import ops

# TensorFlow's fused kernel refuses a smaller epsilon (cuDNN's CUDNN_BN_MIN_EPSILON).
FUSED_MIN_EPSILON = 1.001e-5


@keras.saving.register_keras_serializable(package="medfusion")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` on TensorFlow's fused kernel (TensorFlow backend, NHWC inputs).

    Takes every argument of `keras.layers.BatchNormalization`; weights, config and numerics are the
    same (up to float rounding), so weight files of either layer load into the other.
    """

    def call(self, inputs, training=None, mask=None):
        if not self._can_fuse(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # only reached on the TensorFlow backend

        # Like the parent layer: statistics in float32 (the kernel takes float16/bfloat16 inputs with
        # float32 parameters and returns the inputs' dtype).
        parameter = dict(dtype="float32")
        channels = inputs.shape[-1]
        scale = ops.cast(self.gamma, "float32") if self.scale else tf.ones((channels,), **parameter)
        offset = ops.cast(self.beta, "float32") if self.center else tf.zeros((channels,), **parameter)
        if training and self.trainable:
            outputs, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, scale, offset, epsilon=self.epsilon, data_format="NHWC", is_training=True
            )
            # The kernel returns the Bessel-corrected variance; Keras 3 averages the biased one.
            count = ops.cast(ops.size(inputs) // channels, "float32")
            variance = unbiased_variance * (count - 1.0) / ops.maximum(count, 1.0)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                scale,
                offset,
                mean=ops.cast(self.moving_mean, "float32"),
                variance=ops.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon,
                data_format="NHWC",
                is_training=False,
            )
        return ops.cast(outputs, self.compute_dtype)

    def _can_fuse(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.epsilon >= FUSED_MIN_EPSILON
            and keras.backend.standardize_dtype(inputs.dtype) in ("float16", "bfloat16", "float32")
        )


def fuse_batch_normalization(model):
    """Switch every plain `BatchNormalization` of ``model`` (nested models included) to the fused layer.

    The switch is in place and costs nothing: `FusedBatchNormalization` adds no state to its parent
    class, so each layer keeps its name, config, weights, trainable flag and place in the graph, and
    weight files saved before or after the switch load either way. Call it before compiling.

    Args:
        model: a built `keras.Model` (e.g. a `keras.applications` backbone).

    Returns:
        The number of layers switched.

    Example:

    >>> backbone = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    >>> fuse_batch_normalization(backbone)
    52
    >>> type(backbone.get_layer("bn_Conv1")).__name__
    'FusedBatchNormalization'
    """
    switched = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if type(layer) is keras.layers.BatchNormalization:
            layer.__class__ = FusedBatchNormalization
            switched += 1
    return switched

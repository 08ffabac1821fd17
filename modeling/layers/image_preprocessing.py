"""Backbone input scaling as a layer, so a saved model takes raw pixels."""

import keras
from keras import ops

# ImageNet channel means in BGR order, as keras.applications' "caffe" mode subtracts them.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
MODES = ("tf", "caffe", "none")


@keras.saving.register_keras_serializable(package="medfusion")
class ImagePreprocessing(keras.layers.Layer):
    """Scale RGB pixels in [0, 255] the way a `keras.applications` backbone expects.

    Modes (those of ``keras.applications.*.preprocess_input``):

    - ``"tf"``: ``x / 127.5 - 1`` (Xception, ResNet V2, MobileNet V1/V2; and the
      original project's choice for every backbone);
    - ``"caffe"``: RGB to BGR, then subtract the ImageNet channel means (ResNet V1);
    - ``"none"``: unchanged (ConvNeXt and MobileNet V3 rescale inside the model).

    Args:
        mode: one of ``"tf"``, ``"caffe"``, ``"none"``.
        **kwargs: base `keras.layers.Layer` arguments.

    Example:

    >>> import keras, numpy as np
    >>> keras.ops.convert_to_numpy(ImagePreprocessing("tf")(np.array([[0.0, 127.5, 255.0]]))).tolist()
    [[-1.0, 0.0, 1.0]]
    """

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"Unknown preprocessing mode '{mode}'. Choose one of: {', '.join(MODES)}.")
        self.mode = mode

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return inputs / 127.5 - 1.0
        if self.mode == "caffe":
            return ops.flip(inputs, axis=-1) - ops.convert_to_tensor(_CAFFE_BGR_MEAN, self.compute_dtype)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}

"""Layers of the nodule-segmentation models: upsampled convolution, attention normalisations, modulation.

Each is one operation of the original PyTorch modules written with `keras.ops` (channels last).
"""

import keras
from keras import ops

UPSAMPLED_CONV_MODES = ("exact", "conv_first")


def _resize(images, size):
    """Bilinear resize without antialiasing: torch's ``interpolate(mode="bilinear", align_corners=False)``."""
    return ops.image.resize(images, size, interpolation="bilinear", antialias=False)


@keras.saving.register_keras_serializable(package="medfusion")
class UpsampledConv2D(keras.layers.Layer):
    """A ``same``-padded convolution applied after a bilinear upsampling by ``scale``.

    The original upsamples a feature map (2048 channels at 16x16) by 32 and convolves it at
    512x512, about 2 GiB per sample. Bilinear upsampling is linear and acts on each channel
    alone, so ``conv(up(x)) = sum over kernel offsets of shift(up(x @ K[offset]))``: ``mode="exact"``
    projects to ``filters`` channels per offset at the low resolution, upsamples those and sums
    them shifted (zero outside, like the zero padding), which gives the same numbers with
    ``filters`` instead of ``C`` full-resolution channels. ``mode="conv_first"`` convolves at the
    low resolution and upsamples the result: cheaper still, but a different function (an option).

    Args:
        filters: output channels.
        kernel_size: odd square kernel side.
        scale: integer upsampling factor.
        mode: ``"exact"`` or ``"conv_first"`` (see above).
        **kwargs: base `keras.layers.Layer` arguments.

    The kernel has `keras.layers.Conv2D`'s layout ``(k, k, in, out)`` in both modes.

    Example:

    >>> import numpy as np
    >>> layer = UpsampledConv2D(4, 3, scale=8)
    >>> tuple(layer(np.ones((1, 2, 2, 5), "float32")).shape)
    (1, 16, 16, 4)
    """

    def __init__(self, filters, kernel_size=3, scale=32, mode="exact", **kwargs):
        super().__init__(**kwargs)
        if mode not in UPSAMPLED_CONV_MODES:
            raise ValueError(f"`mode` must be one of {UPSAMPLED_CONV_MODES}; got {mode!r}.")
        if kernel_size % 2 != 1:
            raise ValueError(f"`kernel_size` must be odd (same padding on both sides); got {kernel_size}.")
        self.filters, self.kernel_size, self.scale, self.mode = int(filters), int(kernel_size), int(scale), mode

    def build(self, input_shape):
        k = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel", shape=(k, k, input_shape[-1], self.filters), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs):
        height, width = inputs.shape[1] * self.scale, inputs.shape[2] * self.scale
        if self.mode == "conv_first":
            return _resize(ops.conv(inputs, self.kernel, padding="same") + self.bias, (height, width))
        k, pad = self.kernel_size, self.kernel_size // 2
        output = None
        for row in range(k):
            for col in range(k):
                projected = _resize(ops.einsum("bhwc,cf->bhwf", inputs, self.kernel[row, col]), (height, width))
                padded = ops.pad(projected, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
                shifted = padded[:, row : row + height, col : col + width, :]
                output = shifted if output is None else output + shifted
        return output + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] * self.scale, input_shape[2] * self.scale, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "scale": self.scale,
            "mode": self.mode,
        }


@keras.saving.register_keras_serializable(package="medfusion")
class SpatialSoftmaxNormalization(keras.layers.Layer):
    """The anatomically-aware attention's normalisation of a one-channel map ``(B, H, W, 1)``.

    ``clip(softmax_HW(x / temperature) * scale * H * W, 0, 1) ** power``: a spatial softmax,
    rescaled so that a uniform map gives ``scale``, clamped and sharpened.

    Args:
        temperature: softmax temperature (original: 0.5).
        scale: fraction of ``H * W`` the probabilities are multiplied by (original: 0.1).
        power: exponent after clamping (original: 0.8).

    Example:

    >>> import numpy as np
    >>> out = SpatialSoftmaxNormalization()(np.zeros((1, 4, 4, 1), "float32"))
    >>> round(float(out[0, 0, 0, 0]), 4) == round(0.1**0.8, 4)
    True
    """

    def __init__(self, temperature=0.5, scale=0.1, power=0.8, **kwargs):
        super().__init__(**kwargs)
        self.temperature, self.scale, self.power = float(temperature), float(scale), float(power)

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        flat = ops.reshape(inputs, (-1, height * width))
        weights = ops.softmax(flat / self.temperature, axis=-1) * (self.scale * height * width)
        return ops.reshape(ops.clip(weights, 0.0, 1.0) ** self.power, (-1, height, width, 1))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "scale": self.scale, "power": self.power}


@keras.saving.register_keras_serializable(package="medfusion")
class MinMaxSigmoid(keras.layers.Layer):
    """The lightweight model's attention: per-sample min-max scaling to [0, 1], then a sigmoid.

    The values therefore lie in [0.5, 0.731] whatever the input (why that model's attention
    range is so narrow).

    Example:

    >>> import numpy as np
    >>> out = MinMaxSigmoid()(np.array([[[[0.0], [2.0]]]], "float32"))
    >>> [round(float(v), 3) for v in np.ravel(out)]
    [0.5, 0.731]
    """

    def __init__(self, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        low = ops.min(inputs, axis=(1, 2, 3), keepdims=True)
        high = ops.max(inputs, axis=(1, 2, 3), keepdims=True)
        return ops.sigmoid((inputs - low) / (high - low + self.epsilon))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


POOLINGS = ("bilinear", "average", "max")


def _pool(images, size, pooling):
    """Average or max over each cell of a ``size`` grid: plain pooling when the sides divide (the
    models' case, any Keras 3), Keras' adaptive pooling otherwise (Keras >= 3.13)."""
    (height, width), (rows, cols) = images.shape[1:3], size
    if height % rows == 0 and width % cols == 0:
        window = (height // rows, width // cols)
        pool = ops.average_pool if pooling == "average" else ops.max_pool
        return pool(images, window, strides=window, padding="valid")
    adaptive = ops.adaptive_average_pool if pooling == "average" else ops.adaptive_max_pool
    return adaptive(images, size)


@keras.saving.register_keras_serializable(package="medfusion")
class AttentionModulation(keras.layers.Layer):
    """``features * (1 + alpha * resize(attention, features' size))``, called on ``[features, attention]``.

    ``pooling="bilinear"`` (the original) resizes the attention map ``(B, H, W, 1)`` to the feature
    grid ``(B, h, w, C)`` bilinearly without antialiasing, as torch's ``F.interpolate``: each grid
    cell then reads the 2x2 pixels around one point and ignores the rest of its ``H/h x W/w`` patch
    (at 512 px and a 16x16 grid, 1,024 of 262,144 pixels), so small nodules mostly go unseen.
    ``"average"`` and ``"max"`` pool the whole patch instead.

    Args:
        alpha: strength of the modulation (original: 0.3 improved, 0.1 lightweight).
        pooling: ``"bilinear"`` (original), ``"average"`` or ``"max"``.
        detach_attention: stop the gradient into the attention map here, so that the segmentation
            uses a supervised map without rewriting it (the original: ``False``).

    Example:

    >>> import numpy as np
    >>> attention = np.zeros((1, 8, 8, 1), "float32"); attention[0, 0, 0] = 1
    >>> features = np.ones((1, 2, 2, 3), "float32")
    >>> [float(AttentionModulation(0.5, pooling=p)([features, attention])[0, 0, 0, 0]) for p in POOLINGS]
    [1.0, 1.03125, 1.5]
    """

    def __init__(self, alpha=0.3, pooling="bilinear", detach_attention=False, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}; got {pooling!r}.")
        self.alpha = float(alpha)
        self.pooling = pooling
        self.detach_attention = bool(detach_attention)

    def call(self, inputs):
        features, attention = inputs
        attention = ops.cast(attention, features.dtype)
        if self.detach_attention:
            attention = ops.stop_gradient(attention)
        size = (features.shape[1], features.shape[2])
        if self.pooling == "bilinear":
            resized = _resize(attention, size)
        else:
            resized = _pool(attention, size, self.pooling)
        return features * (1.0 + self.alpha * resized)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "pooling": self.pooling,
            "detach_attention": self.detach_attention,
        }

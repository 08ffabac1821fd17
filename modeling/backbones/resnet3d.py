"""3D ResNets (10/18/34/50/101) in MONAI's layout, channels-last, from native `keras.layers`.

The layout is `monai.networks.nets.ResNet`'s (MedicalNet's checkpoints share it): a ``k^3`` stem
convolution (stride 1 in MONAI's default, 2 in MedicalNet), BatchNorm, ReLU, a 3x3x3 max-pool with
stride 2, four stages of basic (expansion 1) or bottleneck (expansion 4) blocks with strides
1, 2, 2, 2, and global average pooling. Bottleneck blocks carry the stride on their 3x3x3
convolution, basic blocks on their first. The stage widths are ``int(c * widen_factor)`` for
``c`` in 64, 128, 256, 512. Shortcuts where the shape changes are type "B" (1x1x1 convolution,
with a bias when ``bias_downsample``, then BatchNorm) or type "A" (strided subsampling and zero
channels, no weights).

Layers are named after the PyTorch modules with ``.`` replaced by ``_`` (``layer2.0.downsample.0``
is the layer ``layer2_0_downsample_0``), so `modeling.backbones.resnet3d_convert` maps a PyTorch
state dict by name. Strided convolutions and the max-pool pad one voxel on both sides, as PyTorch
does (`ZeroPadding3D` + "valid"; the max-pool follows a ReLU, so zeros are exact there).
BatchNorm uses PyTorch's epsilon 1e-5 and momentum 0.1 (Keras ``momentum=0.9``).
"""

import keras

# depth -> (block kind, blocks per stage), as MONAI's resnet10 ... resnet101.
DEPTHS = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}
BLOCK_INPLANES = (64, 128, 256, 512)
EXPANSION = {"basic": 1, "bottleneck": 4}
SHORTCUT_TYPES = ("A", "B")


@keras.saving.register_keras_serializable(package="medfusion")
class ZeroChannelPadding(keras.layers.Layer):
    """Append zero channels up to ``channels`` (the type "A" shortcut's padding).

    Example:

    >>> import numpy as np
    >>> x = np.ones((1, 2, 2, 2, 3), "float32")
    >>> keras.ops.convert_to_numpy(ZeroChannelPadding(5)(x))[0, 0, 0, 0].tolist()
    [1.0, 1.0, 1.0, 0.0, 0.0]
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)

    def call(self, inputs):
        missing = self.channels - inputs.shape[-1]
        return keras.ops.pad(inputs, [[0, 0]] * (len(inputs.shape) - 1) + [[0, missing]])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return super().get_config() | {"channels": self.channels}


def stage_widths(widen_factor=1.0):
    """The four stages' block widths ``int(c * widen_factor)`` (MONAI's rounding).

    Example:

    >>> stage_widths(0.0625)
    [4, 8, 16, 32]
    """
    return [int(c * widen_factor) for c in BLOCK_INPLANES]


def resnet3d(
    depth=50,
    input_shape=(None, None, None, 1),
    widen_factor=1.0,
    shortcut_type="B",
    stem_kernel=7,
    stem_stride=1,
    max_pool=True,
    bias_downsample=True,
    pooling="avg",
    bn_momentum=0.9,
    name=None,
):
    """A 3D ResNet without classifier (``include_top=False``), channels-last.

    Args:
        depth: 10, 18, 34, 50 or 101 (MONAI's block kinds and counts).
        input_shape: ``(D, H, W, C)``; any size (``None`` allowed) and channel count.
        widen_factor: MONAI's width multiplier of the stage widths.
        shortcut_type: "B" (1x1x1 convolution + BatchNorm) or "A" (subsample + zero channels).
        stem_kernel: the stem convolution's kernel size (MONAI ``conv1_t_size``).
        stem_stride: the stem's stride (MONAI ``conv1_t_stride``: 1; MedicalNet: 2).
        max_pool: the 3x3x3 stride-2 max-pool after the stem (MONAI ``not no_max_pool``).
        bias_downsample: a bias on the type "B" shortcut convolution (MONAI: True, MedicalNet: False).
        pooling: "avg" (global average pool to ``(B, features)``) or None (the last feature map).
        bn_momentum: Keras BatchNorm momentum (0.9 is PyTorch's 0.1).
        name: the model's name (default ``resnet3d_<depth>``).

    Returns:
        A `keras.Model` from the volume to ``(B, widths[3] * expansion)`` features.

    Example:

    >>> model = resnet3d(18, (16, 16, 16, 1), widen_factor=0.0625)
    >>> model.output.shape
    (None, 32)
    """
    if depth not in DEPTHS:
        raise ValueError(f"`depth` must be one of {sorted(DEPTHS)}; got {depth}.")
    if shortcut_type not in SHORTCUT_TYPES:
        raise ValueError(f"`shortcut_type` must be one of {SHORTCUT_TYPES}; got {shortcut_type!r}.")
    if pooling not in ("avg", None):
        raise ValueError(f"`pooling` must be 'avg' or None; got {pooling!r}.")
    kind, blocks = DEPTHS[depth]
    widths = stage_widths(widen_factor)
    if min(widths) < 1:
        raise ValueError(f"`widen_factor` {widen_factor} leaves a stage without channels: {widths}.")
    layers = _Layers(bn_momentum)
    volume = keras.Input(input_shape, name="volume")
    x = layers.conv(volume, widths[0], stem_kernel, stem_stride, "conv1")
    x = keras.layers.ReLU(name="relu")(layers.norm(x, "bn1"))
    if max_pool:
        x = keras.layers.ZeroPadding3D(1, name="maxpool_pad")(x)
        x = keras.layers.MaxPooling3D(3, strides=2, name="maxpool")(x)
    channels = widths[0]
    for stage, (width, count) in enumerate(zip(widths, blocks, strict=True), start=1):
        for index in range(count):
            stride = 1 if stage == 1 or index else 2
            prefix = f"layer{stage}_{index}"
            shortcut = x
            if stride != 1 or channels != width * EXPANSION[kind]:
                shortcut = layers.shortcut(x, width * EXPANSION[kind], stride, shortcut_type, bias_downsample, prefix)
            residual = (
                layers.basic(x, width, stride, prefix)
                if kind == "basic"
                else layers.bottleneck(x, width, stride, prefix)
            )
            x = keras.layers.Add(name=f"{prefix}_add")([residual, shortcut])
            x = keras.layers.ReLU(name=f"{prefix}_out")(x)
            channels = width * EXPANSION[kind]
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling3D(name="avgpool")(x)
    return keras.Model(volume, x, name=name or f"resnet3d_{depth}")


class _Layers:
    """The building blocks, with the BatchNorm settings of one network."""

    def __init__(self, bn_momentum):
        self.bn_momentum = bn_momentum

    def conv(self, x, filters, kernel, stride, name, use_bias=False):
        """A convolution padded ``kernel // 2`` on both sides, as PyTorch's."""
        if stride == 1 and kernel % 2:
            return keras.layers.Conv3D(filters, kernel, padding="same", use_bias=use_bias, name=name)(x)
        if kernel // 2:
            x = keras.layers.ZeroPadding3D(kernel // 2, name=f"{name}_pad")(x)
        return keras.layers.Conv3D(filters, kernel, strides=stride, use_bias=use_bias, name=name)(x)

    def norm(self, x, name):
        return keras.layers.BatchNormalization(epsilon=1e-5, momentum=self.bn_momentum, name=name)(x)

    def conv_norm(self, x, filters, kernel, stride, prefix, index, relu=True):
        x = self.norm(self.conv(x, filters, kernel, stride, f"{prefix}_conv{index}"), f"{prefix}_bn{index}")
        return keras.layers.ReLU(name=f"{prefix}_relu{index}")(x) if relu else x

    def basic(self, x, width, stride, prefix):
        x = self.conv_norm(x, width, 3, stride, prefix, 1)
        return self.conv_norm(x, width, 3, 1, prefix, 2, relu=False)

    def bottleneck(self, x, width, stride, prefix):
        x = self.conv_norm(x, width, 1, 1, prefix, 1)
        x = self.conv_norm(x, width, 3, stride, prefix, 2)
        return self.conv_norm(x, width * 4, 1, 1, prefix, 3, relu=False)

    def shortcut(self, x, channels, stride, shortcut_type, bias, prefix):
        if shortcut_type == "A":
            if stride != 1:
                x = keras.layers.AveragePooling3D(1, strides=stride, name=f"{prefix}_downsample")(x)
            return ZeroChannelPadding(channels, name=f"{prefix}_downsample_pad")(x)
        x = keras.layers.Conv3D(channels, 1, strides=stride, use_bias=bias, name=f"{prefix}_downsample_0")(x)
        return self.norm(x, f"{prefix}_downsample_1")

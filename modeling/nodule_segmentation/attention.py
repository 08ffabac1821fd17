"""The original's two DRR attention modules as functional blocks, and the conv-BN-ReLU unit they share.

Layer names are the original's ``state_dict`` prefixes with ``.`` replaced by ``_`` (e.g.
``attention_net.1`` -> ``attention_net_1``) behind an optional prefix, so
`modeling.nodule_segmentation.convert` can load the original's weights by name.

* `supervised_attention`: `SupervisedAttentionModule` (stem, two residual blocks, sigmoid map).
* `anatomical_attention`: `AnatomicallyAwareAttentionModule` (DRR path + X-ray-feature path,
  fusion, refinement, spatial-softmax normalisation).
"""

import math

import keras

from modeling.nodule_segmentation.layers import SpatialSoftmaxNormalization, UpsampledConv2D

# PyTorch's BatchNorm2d: eps 1e-5, momentum 0.1 (Keras momentum 0.9).
BN_EPSILON = 1e-5


def conv_bn_relu(x, name, index, filters, kernel_size, bn_momentum, dropout=0.0):
    """Conv2D (same) at ``name_index``, BatchNorm at ``index + 1``, ReLU, optional SpatialDropout2D.

    Returns ``(output, next index)``: the next free position of the original ``nn.Sequential``.
    """
    x = keras.layers.Conv2D(filters, kernel_size, padding="same", name=f"{name}_{index}")(x)
    return bn_relu(x, name, index + 1, bn_momentum, dropout)


def bn_relu(x, name, index, bn_momentum, dropout=0.0):
    """BatchNorm at ``name_index``, ReLU, optional SpatialDropout2D; returns ``(output, next index)``."""
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=bn_momentum, name=f"{name}_{index}")(x)
    x = keras.layers.ReLU(name=f"{name}_{index + 1}")(x)
    if dropout:
        return keras.layers.SpatialDropout2D(dropout, name=f"{name}_{index + 2}")(x), index + 3
    return x, index + 2


def prior_bias(prior):
    """Bias initializer of a sigmoid output layer whose outputs start at ``prior`` (RetinaNet's prior
    init: ``log(prior / (1 - prior))``); ``None``: zeros (PyTorch-like, outputs start at 0.5)."""
    if prior is None:
        return "zeros"
    if not 0 < prior < 1:
        raise ValueError(f"`output_bias_prior` must be in (0, 1) or None; got {prior!r}.")
    return keras.initializers.Constant(math.log(prior / (1.0 - prior)))


def supervised_attention(
    drr, prefix="", hidden_channels=32, bn_momentum=0.9, return_logits=False, output_bias_prior=None
):
    """The supervised attention map ``(B, H, W, 1)`` in (0, 1) of a DRR ``(B, H, W, C)``.

    Stem 7x7 conv, BN, ReLU, SpatialDropout 0.1; two residual blocks ``x = relu(x + block(x))``
    with ``block`` = 3x3 conv, BN, ReLU, SpatialDropout 0.1, 3x3 conv, BN; then 3x3 conv to
    ``hidden_channels // 2``, BN, ReLU, 1x1 conv to 1 and a sigmoid.

    Args:
        drr: the DRR tensor (values in [-1024, 1024], as the original feeds it).
        prefix: name prefix (``"spatial_attention_"`` inside the full model).
        hidden_channels: width of the stem and the residual blocks (original: 32).
        bn_momentum: Keras BatchNorm momentum (0.9 is PyTorch's 0.1).
        return_logits: also return the map before the sigmoid.
        output_bias_prior: the map's starting value (see `prior_bias`); ``None``: 0.5.
    """
    x, _ = conv_bn_relu(drr, f"{prefix}attention_net", 0, hidden_channels, 7, bn_momentum, dropout=0.1)
    for block in range(2):
        name = f"{prefix}residual_blocks_{block}"
        y, _ = conv_bn_relu(x, name, 0, hidden_channels, 3, bn_momentum, dropout=0.1)
        y = keras.layers.Conv2D(hidden_channels, 3, padding="same", name=f"{name}_4")(y)
        y = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=bn_momentum, name=f"{name}_5")(y)
        x = keras.layers.ReLU(name=f"{name}_relu")(keras.layers.Add(name=f"{name}_add")([x, y]))
    x, _ = conv_bn_relu(x, f"{prefix}output_layer", 0, hidden_channels // 2, 3, bn_momentum)
    logits = keras.layers.Conv2D(1, 1, bias_initializer=prior_bias(output_bias_prior), name=f"{prefix}output_layer_3")(
        x
    )
    attention = keras.layers.Activation("sigmoid", dtype="float32", name=f"{prefix}attention")(logits)
    return (attention, logits) if return_logits else attention


def anatomical_attention(
    drr, xray_features, prefix="", hidden_channels=32, bn_momentum=0.9, upsampling="exact", return_parts=False
):
    """The anatomically-aware attention map ``(B, H, W, 1)`` of a DRR and the X-ray features.

    DRR path: 7x7 conv, BN, ReLU, Drop 0.1; 5x5 conv to ``hidden/2``, BN, ReLU, Drop 0.1; 3x3 conv
    to 1. X-ray path: the features ``(B, h, w, C)`` upsampled to the DRR size, 3x3 conv, BN,
    ReLU, Drop 0.2; 3x3 conv, BN, ReLU, Drop 0.1; 1x1 conv. Fusion of the two maps (3x3 conv to
    8, BN, ReLU, 1x1 conv) gives F, refinement (5x5 conv to 8, BN, ReLU, 3x3 conv) gives R, and
    F + R goes through `SpatialSoftmaxNormalization` (temperature 0.5, x0.1 HW, clamp, power 0.8).

    Args:
        drr: DRR ``(B, H, W, 1)`` with ``H = s * h`` for an integer ``s``.
        xray_features: backbone features ``(B, h, w, C)``.
        prefix: name prefix (``"spatial_attention_"`` inside the full model).
        hidden_channels: width of the first convolutions (original: 32).
        bn_momentum: Keras BatchNorm momentum.
        upsampling: ``"exact"`` (the original's numbers, upsampling after projecting per kernel
            offset) or ``"conv_first"`` (the cheaper approximation); see `UpsampledConv2D`.
        return_parts: also return the intermediates ``drr_att, xray_att, fused_att, refined_att,
            pre_normalization`` (a dict).

    Raises:
        ValueError: when the DRR size is not an integer multiple of the feature size.
    """
    height, width = drr.shape[1], drr.shape[2]
    h, w = xray_features.shape[1], xray_features.shape[2]
    if height % h or width % w or height // h != width // w:
        raise ValueError(f"The DRR ({height}x{width}) must be the same integer multiple of the features ({h}x{w}).")
    half = hidden_channels // 2
    x, index = conv_bn_relu(drr, f"{prefix}drr_attention", 0, hidden_channels, 7, bn_momentum, dropout=0.1)
    x, index = conv_bn_relu(x, f"{prefix}drr_attention", index, half, 5, bn_momentum, dropout=0.1)
    drr_att = keras.layers.Conv2D(1, 3, padding="same", name=f"{prefix}drr_attention_{index}")(x)

    name = f"{prefix}xray_attention"
    y = UpsampledConv2D(hidden_channels, 3, scale=height // h, mode=upsampling, name=f"{name}_1")(xray_features)
    y, index = bn_relu(y, name, 2, bn_momentum, dropout=0.2)
    y, index = conv_bn_relu(y, name, index, half, 3, bn_momentum, dropout=0.1)
    xray_att = keras.layers.Conv2D(1, 1, name=f"{name}_{index}")(y)

    both = keras.layers.Concatenate(name=f"{prefix}attention_concat")([drr_att, xray_att])
    z, index = conv_bn_relu(both, f"{prefix}attention_fusion", 0, 8, 3, bn_momentum)
    fused = keras.layers.Conv2D(1, 1, name=f"{prefix}attention_fusion_{index}")(z)
    r, index = conv_bn_relu(fused, f"{prefix}attention_refine", 0, 8, 5, bn_momentum)
    refined = keras.layers.Conv2D(1, 3, padding="same", name=f"{prefix}attention_refine_{index}")(r)
    total = keras.layers.Add(name=f"{prefix}pre_normalization")([fused, refined])
    attention = SpatialSoftmaxNormalization(dtype="float32", name=f"{prefix}attention")(total)
    if not return_parts:
        return attention
    parts = dict(drr_att=drr_att, xray_att=xray_att, fused_att=fused, refined_att=refined, pre_normalization=total)
    return attention, parts

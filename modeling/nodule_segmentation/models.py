"""DRR-guided lung-nodule segmentation models: the Keras 3 port of the original's improved and lightweight models.

Inputs are named ``"xray"`` and ``"drr"``, both ``(S, S, 1)`` in the torchxrayvision range
[-1024, 1024] (the original feeds the DRR to both). Outputs are a dict: ``"segmentation"``
(logits ``(S, S, 1)``), ``"attention"`` (probabilities ``(S, S, 1)``) and ``"nodule_features"``
(``(S/32, S/32, 64)``). ``S`` must be a multiple of 32 (the head upsamples x2, x2, x8 from the
ResNet's 1/32 grid). Layer names are the original's ``state_dict`` prefixes (``.`` -> ``_``), so
`modeling.nodule_segmentation.convert` loads the original's weights.

Registered:

* ``nodule_segmentation/improved``: ``ImprovedXrayDRRModel`` with the supervised attention module
  (the default and the seed's "after" model);
* ``nodule_segmentation/anatomical``: the same model with the unsupervised anatomically-aware
  attention (``use_supervised_attention=False``);
* ``nodule_segmentation/lightweight``: ``lightweight_model.SmallDatasetXrayDRRModel``, the model the
  original's analyser loads (the seed's "before" numbers).
"""

import keras
import numpy as np

from modeling.backbones import BACKBONE_PREPROCESSING, build_backbone
from modeling.layers import ImagePreprocessing
from modeling.nodule_segmentation.attention import anatomical_attention, conv_bn_relu, prior_bias, supervised_attention
from modeling.nodule_segmentation.layers import AttentionModulation, MinMaxSigmoid
from modeling.registry import register_model

# The ResNet's output grid is 1/32 of the image; the heads upsample back by 32.
FEATURE_STRIDE = 32
ATTENTION_MODULES = ("supervised", "anatomical")
NODULE_BRANCHES = ("fallback", "pathology")
# Starting probability of the sigmoid outputs (segmentation, supervised attention): about the share of
# nodule pixels, so training does not spend its first thousands of steps pulling a 0.5 background down.
OUTPUT_BIAS_PRIOR = 0.01
# ResNet-50's last stage: the only part of the backbone the original trains.
RESNET_LAST_STAGE = "conv5_"
OUTPUT_NAMES = ("segmentation", "attention", "nodule_features")


def check_image_size(img_size):
    """Raise `ValueError` unless ``img_size`` is a positive multiple of 32 (what the heads can upsample to)."""
    if (
        isinstance(img_size, bool)
        or int(img_size) != img_size
        or img_size < FEATURE_STRIDE
        or img_size % FEATURE_STRIDE
    ):
        raise ValueError(
            f"img_size must be a positive multiple of {FEATURE_STRIDE} (the segmentation head upsamples the "
            f"1/{FEATURE_STRIDE} feature grid by {FEATURE_STRIDE}); got {img_size}."
        )
    return int(img_size)


def supervised_attention_module(img_size=64, in_channels=1, hidden_channels=32, bn_momentum=0.9):
    """`SupervisedAttentionModule` alone: ``drr -> {"attention", "attention_logits"}``.

    Example:

    >>> model = supervised_attention_module(32)
    >>> sorted(model.output)
    ['attention', 'attention_logits']
    """
    drr = keras.Input((img_size, img_size, in_channels), name="drr")
    attention, logits = supervised_attention(drr, "", hidden_channels, bn_momentum, return_logits=True)
    return keras.Model(drr, {"attention": attention, "attention_logits": logits}, name="supervised_attention")


def anatomical_attention_module(
    img_size=64, feature_channels=2048, drr_channels=1, hidden_channels=32, bn_momentum=0.9, upsampling="exact"
):
    """`AnatomicallyAwareAttentionModule` alone: ``[drr, xray_features] -> {"attention", intermediates}``.

    Example:

    >>> model = anatomical_attention_module(64, feature_channels=8)
    >>> [tuple(i.shape) for i in model.inputs]
    [(None, 64, 64, 1), (None, 2, 2, 8)]
    """
    img_size = check_image_size(img_size)
    drr = keras.Input((img_size, img_size, drr_channels), name="drr")
    side = img_size // FEATURE_STRIDE
    features = keras.Input((side, side, feature_channels), name="xray_features")
    attention, parts = anatomical_attention(
        drr, features, "", hidden_channels, bn_momentum, upsampling=upsampling, return_parts=True
    )
    return keras.Model([drr, features], {"attention": attention, **parts}, name="anatomical_attention")


def xray_features(xray, backbone, weights, trainable_stage):
    """Backbone features of the X-ray input ``(S, S, 1)`` in [-1024, 1024].

    The image is mapped to [0, 255], stacked to 3 channels and scaled as the backbone's ImageNet
    weights expect (``"caffe"`` for ResNet-50); every backbone layer whose name does not start
    with ``trainable_stage`` is frozen (``None`` trains the whole backbone).
    """
    size = xray.shape[1]
    x = keras.layers.Rescaling(255.0 / 2048.0, offset=127.5, name="xray_to_pixels")(xray)
    x = keras.layers.Concatenate(name="xray_rgb")([x, x, x])
    mode = BACKBONE_PREPROCESSING[backbone] if isinstance(backbone, str) else "tf"
    x = ImagePreprocessing(mode, name="xray_preprocessing")(x)
    net = build_backbone(backbone, (size, size, 3), weights=weights)
    net.trainable = True
    if trainable_stage is not None:
        for layer in net.layers:
            layer.trainable = layer.name.startswith(trainable_stage)
    return net(x)


def _inputs(img_size, backbone, weights, trainable_stage, feature_channels):
    """The model's inputs and the X-ray features: from the backbone, or an input when ``backbone`` is None."""
    img_size = check_image_size(img_size)
    drr = keras.Input((img_size, img_size, 1), name="drr")
    if backbone is None:
        side = img_size // FEATURE_STRIDE
        features = keras.Input((side, side, feature_channels), name="xray_features")
        return [features, drr], features, drr
    xray = keras.Input((img_size, img_size, 1), name="xray")
    features = xray_features(xray, backbone, weights, trainable_stage)
    if features.shape[1] * FEATURE_STRIDE != img_size:
        raise ValueError(f"The backbone's grid {features.shape[1]} is not img_size / {FEATURE_STRIDE} ({img_size}).")
    return [xray, drr], features, drr


def nodule_branch(features, kind, bn_momentum, nodule_row=None):
    """``nodule_features`` ``(f, f, 64)``: the fallback 3x3 conv branch, or the pathology-row branch.

    ``"pathology"``: a 1x1 conv to one channel without bias (frozen when ``nodule_row``, the
    classifier's "Nodule" weights of length C, is given; trainable otherwise), sigmoid, 3x3 conv to
    64, BN, ReLU. ``"fallback"`` (what every run of the original built): 3x3 conv to 64, BN, ReLU,
    SpatialDropout 0.3.
    """
    if kind == "fallback":
        x, _ = conv_bn_relu(features, "nodule_feature_extractor", 0, 64, 3, bn_momentum, dropout=0.3)
        return x
    if kind != "pathology":
        raise ValueError(f"`nodule_branch` must be one of {NODULE_BRANCHES}; got {kind!r}.")
    classifier = keras.layers.Conv2D(1, 1, use_bias=False, name="nodule_classifier")
    x = keras.layers.Activation("sigmoid", name="nodule_probability")(classifier(features))
    if nodule_row is not None:
        classifier.set_weights([np.asarray(nodule_row, "float32").reshape(1, 1, -1, 1)])
        classifier.trainable = False
    x, _ = conv_bn_relu(x, "nodule_feature_extractor", 0, 64, 3, bn_momentum)
    return x


def _outputs(segmentation, attention, nodule_features):
    return {
        "segmentation": keras.layers.Activation("linear", dtype="float32", name="segmentation")(segmentation),
        "attention": attention,
        "nodule_features": keras.layers.Activation("linear", dtype="float32", name="nodule_features")(nodule_features),
    }


@register_model("nodule_segmentation/improved")
def improved_model(
    img_size=512,
    backbone="resnet50",
    weights=None,
    alpha=0.3,
    attention_pooling="bilinear",
    detach_fused_attention=False,
    attention="supervised",
    nodule_branch_kind="fallback",
    nodule_row=None,
    anatomical_upsampling="exact",
    trainable_stage=RESNET_LAST_STAGE,
    feature_channels=2048,
    bn_momentum=0.9,
    output_bias_prior=OUTPUT_BIAS_PRIOR,
):
    """``ImprovedXrayDRRModel``: backbone features, adaptation, DRR attention modulation, segmentation head.

    adaptation (3x3 conv to 256, BN, ReLU, Drop 0.2, 1x1 conv to 128, BN, ReLU) -> f1;
    ``f1 * (1 + alpha * resize(attention))`` -> head (3x3 conv 64, BN, ReLU, Drop 0.2; up x2, 3x3
    conv 32, BN, ReLU, Drop 0.1; up x2, 3x3 conv 16, BN, ReLU; up x8, 3x3 conv 8, BN, ReLU; 1x1 conv
    1) -> segmentation logits. ``nodule_features`` is only returned, as in the original.

    Args:
        img_size: square input side, a multiple of 32 (original: 512).
        backbone: a `modeling.backbones.BACKBONE_MAP` name or callable (original: ResNet-50 of
            torchxrayvision), or ``None``: the model then takes the backbone's feature map as
            its input ``"xray_features"`` ``(S/32, S/32, feature_channels)``.
        weights: backbone weights: ``None``, ``"imagenet"`` or a local file.
        alpha: modulation strength (config ALPHA, 0.3).
        attention_pooling: how the attention map reaches the feature grid: ``"bilinear"`` (the
            original's point sampling), ``"average"`` or ``"max"`` (see `AttentionModulation`).
        detach_fused_attention: the segmentation's gradient does not reach the supervised attention
            map through the modulation (the map then learns from its own terms of the loss).
        attention: ``"supervised"`` (default) or ``"anatomical"`` (unsupervised).
        nodule_branch_kind: ``"fallback"`` (the branch every original run built) or ``"pathology"``.
        nodule_row: the "Nodule" classifier row for the pathology branch (freezes it).
        anatomical_upsampling: ``"exact"`` or ``"conv_first"`` (see `UpsampledConv2D`).
        trainable_stage: name prefix of the backbone layers left trainable (``None``: all).
        feature_channels: channels of ``"xray_features"`` when ``backbone`` is None.
        bn_momentum: Keras BatchNorm momentum of the layers after the backbone.
        output_bias_prior: starting probability of the segmentation and the supervised attention
            (their last bias, see `prior_bias`); ``None``: zero biases, 0.5, like the original.

    Example:

    >>> model = improved_model(64, backbone=None, feature_channels=16)
    >>> {name: tuple(t.shape) for name, t in model.output.items()}["segmentation"]
    (None, 64, 64, 1)
    """
    if attention not in ATTENTION_MODULES:
        raise ValueError(f"`attention` must be one of {ATTENTION_MODULES}; got {attention!r}.")
    if detach_fused_attention and attention != "supervised":
        raise ValueError(
            "`detach_fused_attention` needs the supervised attention: an unsupervised map learns through the fusion."
        )
    inputs, features, drr = _inputs(img_size, backbone, weights, trainable_stage, feature_channels)
    nodule_features = nodule_branch(features, nodule_branch_kind, bn_momentum, nodule_row)
    x, index = conv_bn_relu(features, "nodule_adaptation", 0, 256, 3, bn_momentum, dropout=0.2)
    adapted, _ = conv_bn_relu(x, "nodule_adaptation", index, 128, 1, bn_momentum)
    if attention == "supervised":
        attention_map = supervised_attention(
            drr, "spatial_attention_", bn_momentum=bn_momentum, output_bias_prior=output_bias_prior
        )
    else:
        attention_map = anatomical_attention(
            drr, features, "spatial_attention_", bn_momentum=bn_momentum, upsampling=anatomical_upsampling
        )
    x = AttentionModulation(alpha, attention_pooling, detach_fused_attention, name="attention_modulation")(
        [adapted, attention_map]
    )
    name = "segmentation_head"
    x, index = conv_bn_relu(x, name, 0, 64, 3, bn_momentum, dropout=0.2)
    for filters, scale, dropout in ((32, 2, 0.1), (16, 2, 0.0), (8, 8, 0.0)):
        x = keras.layers.UpSampling2D(scale, interpolation="bilinear", name=f"{name}_{index}")(x)
        x, index = conv_bn_relu(x, name, index + 1, filters, 3, bn_momentum, dropout=dropout)
    logits = keras.layers.Conv2D(1, 1, bias_initializer=prior_bias(output_bias_prior), name=f"{name}_{index}")(x)
    return keras.Model(inputs, _outputs(logits, attention_map, nodule_features), name=f"improved_{attention}")


@register_model("nodule_segmentation/anatomical")
def anatomical_model(img_size=512, **kwargs):
    """`improved_model` with the unsupervised anatomically-aware attention (``use_supervised_attention=False``).

    Example:

    >>> anatomical_model(64, backbone=None, feature_channels=16).name
    'improved_anatomical'
    """
    return improved_model(img_size, attention="anatomical", **kwargs)


@register_model("nodule_segmentation/lightweight")
def lightweight_model(
    img_size=512,
    backbone="resnet50",
    weights=None,
    alpha=0.1,
    attention_pooling="bilinear",
    trainable_stage=RESNET_LAST_STAGE,
    feature_channels=2048,
    bn_momentum=0.9,
    output_bias_prior=OUTPUT_BIAS_PRIOR,
):
    """``lightweight_model.SmallDatasetXrayDRRModel``, the model the original analyser loads.

    Attention: 5x5 conv 16, BN, ReLU, Drop 0.1; 3x3 conv 8, BN, ReLU, Drop 0.1; 3x3 conv 1; per-sample
    min-max then sigmoid (values in [0.5, 0.731]). Adaptation: 3x3 conv 512 and 3x3 conv 256 (BN,
    ReLU, Drop 0.2 each), 1x1 conv 128, BN, ReLU; fused with the fallback nodule branch by a 1x1
    conv 192 -> 128, modulated with ``alpha`` 0.1, then decoded (1x1 conv 64, Drop 0.4; x2, 3x3
    conv 32, Drop 0.3; x2, 3x3 conv 16, Drop 0.2; x2, 3x3 conv 8, Drop 0.1; each with BN and ReLU;
    x4, 1x1 conv 1). Arguments as in `improved_model` (``output_bias_prior``: the segmentation's only;
    the attention is min-max normalised).

    Example:

    >>> lightweight_model(64, backbone=None, feature_channels=16).count_params() > 0
    True
    """
    inputs, features, drr = _inputs(img_size, backbone, weights, trainable_stage, feature_channels)
    a, index = conv_bn_relu(drr, "attention", 0, 16, 5, bn_momentum, dropout=0.1)
    a, index = conv_bn_relu(a, "attention", index, 8, 3, bn_momentum, dropout=0.1)
    a = keras.layers.Conv2D(1, 3, padding="same", name=f"attention_{index}")(a)
    attention_map = MinMaxSigmoid(dtype="float32", name="attention_normalization")(a)
    nodule_features = nodule_branch(features, "fallback", bn_momentum)
    x, index = conv_bn_relu(features, "adaptation", 0, 512, 3, bn_momentum, dropout=0.2)
    x, index = conv_bn_relu(x, "adaptation", index, 256, 3, bn_momentum, dropout=0.2)
    x, _ = conv_bn_relu(x, "adaptation", index, 128, 1, bn_momentum)
    x = keras.layers.Concatenate(name="fusion_concat")([x, nodule_features])
    x = keras.layers.Conv2D(128, 1, name="fusion")(x)
    x = AttentionModulation(alpha, attention_pooling, name="attention_modulation")([x, attention_map])
    x, index = conv_bn_relu(x, "decoder", 0, 64, 1, bn_momentum, dropout=0.4)
    for filters, dropout in ((32, 0.3), (16, 0.2), (8, 0.1)):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"decoder_{index}")(x)
        x, index = conv_bn_relu(x, "decoder", index + 1, filters, 3, bn_momentum, dropout=dropout)
    x = keras.layers.UpSampling2D(4, interpolation="bilinear", name=f"decoder_{index}")(x)
    logits = keras.layers.Conv2D(1, 1, bias_initializer=prior_bias(output_bias_prior), name=f"decoder_{index + 1}")(x)
    return keras.Model(inputs, _outputs(logits, attention_map, nodule_features), name="lightweight")

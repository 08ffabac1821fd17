"""Backbone factory: the original's 15 `keras.applications` names, plus fine-tuning helpers."""

import os

import keras

from modeling.layers.fused_batch_norm import fuse_batch_normalization

BACKBONE_MAP = {
    "xception": keras.applications.Xception,
    "resnet50": keras.applications.ResNet50,
    "resnet101": keras.applications.ResNet101,
    "resnet152": keras.applications.ResNet152,
    "resnet50v2": keras.applications.ResNet50V2,
    "resnet101v2": keras.applications.ResNet101V2,
    "resnet152v2": keras.applications.ResNet152V2,
    "mobilenet": keras.applications.MobileNet,
    "mobilenet_v2": keras.applications.MobileNetV2,
    "mobilenet_v3_small": keras.applications.MobileNetV3Small,
    "mobilenet_v3_large": keras.applications.MobileNetV3Large,
    "convnext_tiny": keras.applications.ConvNeXtTiny,
    "convnext_small": keras.applications.ConvNeXtSmall,
    "convnext_base": keras.applications.ConvNeXtBase,
    "convnext_large": keras.applications.ConvNeXtLarge,
}

# Smallest square input each backbone accepts (Keras' own checks, and ConvNeXt's
# 32x downsampling to a 1x1 map).
MIN_INPUT_SIZE = {name: 32 for name in BACKBONE_MAP} | {"xception": 71}

# The input scaling each backbone's ImageNet weights expect (`modeling.layers.ImagePreprocessing`
# modes). The original scaled every backbone like Xception ("tf").
BACKBONE_PREPROCESSING = {
    name: "caffe"
    if name in ("resnet50", "resnet101", "resnet152")
    else "none"
    if name.startswith(("convnext", "mobilenet_v3"))
    else "tf"
    for name in BACKBONE_MAP
}

BACKBONE_LAYER_NAME = "backbone"


def validate_img_dims(img_dims):
    """Return ``img_dims`` as a tuple ``(height, width, channels)`` of positive ints.

    Raises:
        ValueError: when it is not three positive integers.
    """
    try:
        dims = tuple(int(d) for d in img_dims)
        valid = len(dims) == 3 and all(d > 0 for d in dims) and list(dims) == list(img_dims)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            "`img_dims` must be (height, width, channels) with three positive integers, "
            f"for example (500, 500, 3); got {img_dims!r}."
        )
    return dims


def build_backbone(backbone, img_dims, weights=None, fused_batch_norm=True):
    """Build a headless backbone, frozen, named ``"backbone"``.

    Args:
        backbone: a key of `BACKBONE_MAP`, or a callable taking
            ``(include_top=False, weights=..., input_shape=...)`` and returning a
            Keras model.
        img_dims: input shape ``(height, width, channels)``.
        weights: ``None`` (random initialisation), ``"imagenet"`` (downloaded by
            Keras, needs internet), or a path to a local weights file.
        fused_batch_norm: switch its `BatchNormalization` layers to
            `modeling.layers.FusedBatchNormalization` (TensorFlow's fused kernel on the TensorFlow
            backend: the same function and weights, a faster training step).

    Returns:
        The backbone model with ``trainable=False``.

    Example:

    >>> net = build_backbone("mobilenet_v2", (64, 64, 3), weights=None)
    >>> net.output.shape
    (None, 2, 2, 1280)
    """
    img_dims = validate_img_dims(img_dims)
    constructor = _resolve_constructor(backbone)
    if isinstance(backbone, str):
        minimum = MIN_INPUT_SIZE[backbone]
        if min(img_dims[:2]) < minimum:
            raise ValueError(
                f"Backbone '{backbone}' needs images of at least {minimum}x{minimum} pixels; got img_dims={img_dims}."
            )
    if weights not in (None, "imagenet") and not os.path.isfile(str(weights)):
        raise ValueError(
            f"`weights` must be None, 'imagenet' or the path of an existing weights file; "
            f"got {weights!r} (no such file)."
        )
    try:
        model = constructor(include_top=False, weights=weights, input_shape=img_dims)
    except Exception as error:
        if weights == "imagenet" and _is_download_failure(error):
            raise RuntimeError(
                f"Could not download the ImageNet weights for backbone {_describe(backbone)}: "
                f"{error}. This machine may be offline. Pass weights=None to start from a "
                "random initialisation, or weights='/path/to/weights.h5' for a local copy "
                "of the Keras Applications file."
            ) from error
        raise
    if fused_batch_norm:
        fuse_batch_normalization(model)
    model.name = BACKBONE_LAYER_NAME
    model.trainable = False
    return model


def _resolve_constructor(backbone):
    if isinstance(backbone, str):
        if backbone not in BACKBONE_MAP:
            raise ValueError(f"Unknown backbone '{backbone}'. Choose one of: {', '.join(BACKBONE_MAP)}.")
        return BACKBONE_MAP[backbone]
    if callable(backbone):
        return backbone
    raise ValueError(f"`backbone` must be a name ({', '.join(BACKBONE_MAP)}) or a callable; got {backbone!r}.")


def _describe(backbone):
    return f"'{backbone}'" if isinstance(backbone, str) else getattr(backbone, "__name__", "callable")


def _is_download_failure(error):
    text = str(error).lower()
    return any(marker in text for marker in ("url fetch failure", "urlopen", "name or service", "http"))

"""Backbone factory: the original's 15 `keras.applications` names, plus fine-tuning helpers."""

import os

import keras

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
    name: "caffe" if name in ("resnet50", "resnet101", "resnet152")
    else "none" if name.startswith(("convnext", "mobilenet_v3"))
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


def build_backbone(backbone, img_dims, weights=None):
    """Build a headless backbone, frozen, named ``"backbone"``.

    Args:
        backbone: a key of `BACKBONE_MAP`, or a callable taking
            ``(include_top=False, weights=..., input_shape=...)`` and returning a
            Keras model.
        img_dims: input shape ``(height, width, channels)``.
        weights: ``None`` (random initialisation), ``"imagenet"`` (downloaded by
            Keras, needs internet), or a path to a local weights file.

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
                f"Backbone '{backbone}' needs images of at least {minimum}x{minimum} pixels; "
                f"got img_dims={img_dims}."
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
    model.name = BACKBONE_LAYER_NAME
    model.trainable = False
    return model


def find_backbone(model):
    """Return the backbone sub-model of a model built by this package.

    It is the layer named ``"backbone"``, or else the first nested model.

    Raises:
        ValueError: when the model has no nested model.
    """
    names = [layer.name for layer in model.layers]
    if BACKBONE_LAYER_NAME in names:
        return model.get_layer(BACKBONE_LAYER_NAME)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ValueError(f"Model '{model.name}' has no backbone (no nested model); layers: {names}.")


def unfreeze_backbone_layers(model, n_layers=2, freeze_batchnorm=True):
    """Make the last ``n_layers`` weighted layers of the backbone trainable.

    The original set the layers' flags but left the backbone container frozen,
    which in Keras hides every weight below it, so nothing was ever trained.
    Here the container is unfrozen, the last ``n_layers`` layers that own
    weights become trainable and all earlier ones stay frozen.
    BatchNormalization layers stay frozen (so in inference mode) unless
    ``freeze_batchnorm=False``; they are not counted in ``n_layers`` then.
    Recompile the model afterwards for the change to take effect in ``fit``.

    Args:
        model: a model built by this package (or any model with a nested backbone).
        n_layers: how many weighted layers to unfreeze, counted from the top;
            ``0`` freezes the whole backbone.
        freeze_batchnorm: keep BatchNormalization layers frozen.

    Returns:
        The number of trainable weight tensors in the backbone afterwards.

    Example:

    >>> from modeling import attn_sex_model
    >>> model = attn_sex_model((64, 64, 3), None, ["mae"], backbone="mobilenet_v2", weights=None)
    >>> unfreeze_backbone_layers(model, n_layers=1)
    1
    """
    if int(n_layers) < 0:
        raise ValueError(f"`n_layers` must be >= 0; got {n_layers!r}.")
    backbone = find_backbone(model)
    backbone.trainable = True
    candidates = [
        layer
        for layer in backbone.layers
        if layer.weights
        and not (freeze_batchnorm and isinstance(layer, keras.layers.BatchNormalization))
    ]
    unfrozen = {id(layer) for layer in candidates[max(0, len(candidates) - int(n_layers)) :]}
    for layer in backbone.layers:
        layer.trainable = id(layer) in unfrozen
    return len(backbone.trainable_weights)


def _resolve_constructor(backbone):
    if isinstance(backbone, str):
        if backbone not in BACKBONE_MAP:
            raise ValueError(
                f"Unknown backbone '{backbone}'. Choose one of: {', '.join(BACKBONE_MAP)}."
            )
        return BACKBONE_MAP[backbone]
    if callable(backbone):
        return backbone
    raise ValueError(
        f"`backbone` must be a name ({', '.join(BACKBONE_MAP)}) or a callable; got {backbone!r}."
    )


def _describe(backbone):
    return f"'{backbone}'" if isinstance(backbone, str) else getattr(backbone, "__name__", "callable")


def _is_download_failure(error):
    text = str(error).lower()
    return any(marker in text for marker in ("url fetch failure", "urlopen", "name or service", "http"))

"""Bone-age regressors: the Keras 3 port of the original's five builders.

Every builder returns a compiled functional model whose output is the bone
age as a z-score (``(months - mean) / std`` of the training set). Inputs are
named ``"image"`` ``(H, W, 3)`` and, for the models that use sex, ``"sex"``
``(1,)`` (1.0 male, 0.0 female), in that order. Layers, units, activations,
initializers, dropout rates and weight shapes follow the original exactly, so
its Keras 2 weight files load with ``model.load_weights(path)``.
"""

import numbers

import keras

from modeling.backbones import build_backbone, validate_img_dims
from modeling.blocks import spatial_attention_pooling
from modeling.boneage.optimizers import default_optimizer
from modeling.fusion import cross_attention, gated_fusion
from modeling.layers import FusedBatchNormalization, ImagePreprocessing
from modeling.losses import LOSS_NAMES, get_loss_function
from modeling.registry import register_model

_HE_ACTIVATIONS = ("relu", "swish", "silu", "gelu", "selu", "elu")

ATTENTION_CONVS = ((128, 1), (64, 1), (16, 1))
IMPROVED_ATTENTION_CONVS = ((256, 1), (128, 3), (64, 1), (16, 1))


@register_model("boneage/baseline")
def baseline_model(
    img_dims,
    activation="tanh",
    optim=None,
    metric=None,
    backbone="xception",
    weights="imagenet",
    dropout_rate=0.5,
    dense_units=500,
    loss="mae",
    preprocessing=None,
):
    """Image-only regressor: backbone, global average pooling, one hidden layer.

    backbone -> GAP -> Dropout(dr) -> Dense(dense_units, activation) ->
    Dropout(dr / 2) -> Dense(1). The hidden layer uses He-normal initialisation
    for ReLU-like activations and Glorot-uniform otherwise, as in the original.

    Args:
        img_dims: image shape ``(H, W, 3)``.
        activation: hidden activation (name or callable).
        optim: optimizer; ``None`` builds the original's Adam(1e-4, clipnorm=1).
        metric: list of metrics; ``None`` means ``["mae"]``.
        backbone: a `BACKBONE_MAP` name or a constructor callable.
        weights: ``None``, ``"imagenet"`` or a local weights file for the backbone.
        dropout_rate: ``dr``.
        dense_units: width of the hidden layer.
        loss: a name of `get_loss_function` or a `keras.losses.Loss`.
        preprocessing: ``None`` (inputs already scaled, as in the original) or an
            `ImagePreprocessing` mode (``"tf"``, ``"caffe"``, ``"none"``) applied inside the
            model to raw [0, 255] pixels; ``BACKBONE_PREPROCESSING[backbone]`` is the right one.

    Example:

    >>> model = baseline_model((64, 64, 3), backbone="mobilenet_v2", weights=None)
    >>> model.count_params() - model.get_layer("backbone").count_params()
    641001
    """
    dense_units = _check_head_arguments(dropout_rate, dense_units=dense_units)
    image, features = _image_features(img_dims, backbone, weights, preprocessing=preprocessing)
    x = keras.layers.GlobalAveragePooling2D(name="pooling")(features)
    x = keras.layers.Dropout(dropout_rate, name="image_dropout")(x)
    x = keras.layers.Dense(
        dense_units,
        activation=activation,
        kernel_initializer=_initializer_for(activation),
        name="image_dense",
    )(x)
    x = keras.layers.Dropout(dropout_rate / 2, name="head_dropout")(x)
    output = _output_layer(x)
    return _compile(keras.Model(image, output, name="baseline_model"), optim, metric, loss)


@register_model("boneage/sex")
def sex_model(
    img_dims,
    optim=None,
    metric=None,
    backbone="xception",
    weights="imagenet",
    dropout_rate=0.5,
    dense_units=1024,
    gender_units=32,
    loss="mae",
    preprocessing=None,
):
    """Image plus sex, joined by concatenation.

    Image: backbone -> GAP -> Dropout(dr) -> Dense(dense_units, tanh) ->
    Dropout(0.4 dr) -> Dense(512, relu). Sex: Dense(gender_units, relu).
    Joint: Dense(512, relu) -> Dense(512, relu) -> Dropout(0.4 dr) -> Dense(1).

    Args are those of `baseline_model` plus ``gender_units``, the width of the
    sex branch.

    Example:

    >>> model = sex_model((64, 64, 3), backbone="mobilenet_v2", weights=None,
    ...                   dense_units=64, gender_units=8)
    >>> model.output.shape
    (None, 1)
    """
    dense_units, gender_units = _check_head_arguments(dropout_rate, dense_units=dense_units, gender_units=gender_units)
    image, features = _image_features(img_dims, backbone, weights, preprocessing=preprocessing)
    x = keras.layers.GlobalAveragePooling2D(name="pooling")(features)
    x = keras.layers.Dropout(dropout_rate, name="image_dropout")(x)
    x = keras.layers.Flatten(name="image_flatten")(x)
    x = keras.layers.Dense(dense_units, activation="tanh", name="image_dense")(x)
    x = keras.layers.Dropout(0.4 * dropout_rate, name="image_dense_dropout")(x)
    x = keras.layers.Dense(512, activation="relu", kernel_initializer="he_normal", name="image_dense_2")(x)
    sex, sex_features = _sex_branch((gender_units,))
    output = _joint_head(x, sex_features, (512, 512), dropout_rate)
    return _compile(keras.Model([image, sex], output, name="sex_model"), optim, metric, loss)


@register_model("boneage/attn")
def attn_model(
    img_dims,
    optim=None,
    metric=None,
    backbone="xception",
    weights="imagenet",
    dropout_rate=0.5,
    dense_units=512,
    loss="mae",
    preprocessing=None,
):
    """Image-only spatial-attention model (the original ``modeling.attn_model``).

    backbone -> BatchNorm -> attention convs (128, 64, 16; 1x1, ReLU) ->
    locally connected 1x1 map (tanh) -> attention-weighted pooling ->
    Dropout(dr) -> Dense(D, swish) -> Dropout(0.4 dr) -> Dense(D, relu) ->
    Dense(D, relu) -> Dropout(0.4 dr) -> Dense(1). Keras default initializers
    throughout, as in the original ``modeling.py``.

    Args are those of `baseline_model` without ``activation``.

    Example:

    >>> model = attn_model((64, 64, 3), backbone="mobilenet_v2", weights=None)
    >>> model.get_layer("attention_map").output.shape
    (None, 2, 2, 1)
    """
    dense_units = _check_head_arguments(dropout_rate, dense_units=dense_units)
    image, features = _image_features(img_dims, backbone, weights, batch_norm=True, preprocessing=preprocessing)
    x = spatial_attention_pooling(features, ATTENTION_CONVS, kernel_initializer="glorot_uniform")
    x = keras.layers.Dropout(dropout_rate, name="image_dropout")(x)
    x = keras.layers.Dense(dense_units, activation="swish", name="image_dense")(x)
    x = keras.layers.Dropout(0.4 * dropout_rate, name="image_dense_dropout")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="head_dense_1")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="head_dense_2")(x)
    x = keras.layers.Dropout(0.4 * dropout_rate, name="head_dropout")(x)
    output = keras.layers.Dense(1, dtype="float32", name="boneage_z")(x)
    return _compile(keras.Model(image, output, name="attn_model"), optim, metric, loss)


@register_model("boneage/attn_sex")
def attn_sex_model(
    img_dims,
    optim=None,
    metric=None,
    backbone="xception",
    weights="imagenet",
    dropout_rate=0.5,
    dense_units=512,
    gender_units=16,
    loss="mae",
    preprocessing=None,
):
    """Spatial attention on the image, sex by concatenation.

    Image: backbone -> BatchNorm -> attention convs (128, 64, 16; 1x1, ReLU,
    He-normal) -> locally connected 1x1 map (tanh) -> attention-weighted
    pooling -> Dropout(dr) -> Dense(D, swish) -> Dropout(0.4 dr).
    Sex: Dense(G, relu). Joint: Dense(D, relu) -> Dense(D, relu) ->
    Dropout(0.4 dr) -> Dense(1). The attention map is the output of layer
    ``"attention_map"``.

    Args are those of `sex_model`; D = ``dense_units``, G = ``gender_units``.

    Example:

    >>> model = attn_sex_model((64, 64, 3), backbone="mobilenet_v2", weights=None)
    >>> [tuple(i.shape) for i in model.inputs]
    [(None, 64, 64, 3), (None, 1)]
    """
    dense_units, gender_units = _check_head_arguments(dropout_rate, dense_units=dense_units, gender_units=gender_units)
    image, features = _image_features(img_dims, backbone, weights, batch_norm=True, preprocessing=preprocessing)
    x = _attention_image_vector(features, ATTENTION_CONVS, dense_units, dropout_rate)
    sex, sex_features = _sex_branch((gender_units,))
    output = _joint_head(x, sex_features, (dense_units, dense_units), dropout_rate)
    return _compile(keras.Model([image, sex], output, name="attn_sex_model"), optim, metric, loss)


@register_model("boneage/attn_sex_improved")
def attn_sex_model_improved(
    img_dims,
    optim=None,
    metric=None,
    backbone="xception",
    weights="imagenet",
    dropout_rate=0.5,
    dense_units=512,
    gender_units=16,
    loss="mae",
    preprocessing=None,
):
    """Spatial attention, then cross-attention and a gated fusion with sex.

    Image: as `attn_sex_model` but with attention convs 256 (1x1), 128 (3x3),
    64 (1x1), 16 (1x1). Sex: Dense(2G, relu) -> Dense(G, relu) ->
    Dropout(0.3 dr). The image vector attends to the sex vector
    (`modeling.blocks.cross_attention`, 4 heads), then a sigmoid gate mixes a
    G-wide projection of the image with the sex vector
    (`modeling.blocks.gated_fusion`; gate = layer ``"fusion_gate"``).
    Head: Dense(D, relu) -> Dense(D // 2, relu) -> Dropout(0.4 dr) -> Dense(1).

    Args are those of `sex_model`; the 4 attention heads use ``key_dim = dense_units // 4``.

    Example:

    >>> model = attn_sex_model_improved((64, 64, 3), backbone="mobilenet_v2", weights=None)
    >>> model.get_layer("fusion_gate").output.shape
    (None, 16)
    """
    dense_units, gender_units = _check_head_arguments(dropout_rate, dense_units=dense_units, gender_units=gender_units)
    image, features = _image_features(img_dims, backbone, weights, batch_norm=True, preprocessing=preprocessing)
    x = _attention_image_vector(features, IMPROVED_ATTENTION_CONVS, dense_units, dropout_rate)
    sex, sex_features = _sex_branch((2 * gender_units, gender_units))
    sex_features = keras.layers.Dropout(0.3 * dropout_rate, name="sex_dropout")(sex_features)
    x = cross_attention(x, sex_features, num_heads=4)
    x = gated_fusion(x, sex_features, name="fusion")
    x = keras.layers.Dense(dense_units, activation="relu", kernel_initializer="he_normal", name="head_dense_1")(x)
    x = keras.layers.Dense(dense_units // 2, activation="relu", kernel_initializer="he_normal", name="head_dense_2")(x)
    x = keras.layers.Dropout(0.4 * dropout_rate, name="head_dropout")(x)
    output = _output_layer(x)
    return _compile(keras.Model([image, sex], output, name="attn_sex_model_improved"), optim, metric, loss)


def _image_features(img_dims, backbone, weights, batch_norm=False, preprocessing=None):
    """The image input and the (optionally batch-normalised) backbone features.

    With ``preprocessing`` (an `ImagePreprocessing` mode) the model takes raw [0, 255] pixels.
    """
    img_dims = validate_img_dims(img_dims)
    conv_base = build_backbone(backbone, img_dims, weights)
    image = keras.Input(shape=img_dims, name="image")
    x = image if preprocessing is None else ImagePreprocessing(preprocessing, name="preprocessing")(image)
    features = conv_base(x)
    if batch_norm:
        features = FusedBatchNormalization(name="feature_bn")(features)  # as the backbone's
    return image, features


def _attention_image_vector(features, conv_specs, dense_units, dropout_rate):
    x = spatial_attention_pooling(features, conv_specs, kernel_initializer="he_normal")
    x = keras.layers.Dropout(dropout_rate, name="image_dropout")(x)
    x = keras.layers.Dense(dense_units, activation="swish", kernel_initializer="he_normal", name="image_dense")(x)
    return keras.layers.Dropout(0.4 * dropout_rate, name="image_dense_dropout")(x)


def _sex_branch(widths):
    """The sex input and its stack of ReLU Dense layers."""
    sex = keras.Input(shape=(1,), name="sex")
    x = sex
    for index, width in enumerate(widths, start=1):
        x = keras.layers.Dense(width, activation="relu", kernel_initializer="he_normal", name=f"sex_dense_{index}")(x)
    return sex, x


def _joint_head(image_vector, sex_vector, widths, dropout_rate):
    """Concatenate [image, sex], ReLU Dense layers, dropout, linear output."""
    x = keras.layers.Concatenate(axis=1, name="image_sex_concat")([image_vector, sex_vector])
    for index, width in enumerate(widths, start=1):
        x = keras.layers.Dense(width, activation="relu", kernel_initializer="he_normal", name=f"head_dense_{index}")(x)
    x = keras.layers.Dropout(0.4 * dropout_rate, name="head_dropout")(x)
    return _output_layer(x)


def _output_layer(x):
    """The linear z-score output, kept in float32 under a mixed-precision policy."""
    return keras.layers.Dense(1, kernel_initializer="glorot_uniform", dtype="float32", name="boneage_z")(x)


def _initializer_for(activation):
    """He-normal for ReLU-like activations, Glorot-uniform otherwise (the original's rule)."""
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", "")
    return "he_normal" if name.lower() in _HE_ACTIVATIONS else "glorot_uniform"


def _check_head_arguments(dropout_rate, **widths):
    """Check the head's arguments; return the widths as Python ints (NumPy integers are accepted)."""
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"`dropout_rate` must be in [0, 1); got {dropout_rate!r}.")
    for argument, value in widths.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"`{argument}` must be a positive integer; got {value!r}.")
    values = tuple(int(value) for value in widths.values())
    return values[0] if len(values) == 1 else values


def _compile(model, optim, metric, loss):
    if isinstance(loss, str):
        if loss not in LOSS_NAMES:
            raise ValueError(f"Unknown loss '{loss}'. Choose one of: {', '.join(LOSS_NAMES)}, or pass a Loss.")
        loss = get_loss_function(loss)
    model.compile(
        optimizer=optim if optim is not None else default_optimizer(),
        loss=loss,
        metrics=list(metric) if metric is not None else ["mae"],
    )
    return model

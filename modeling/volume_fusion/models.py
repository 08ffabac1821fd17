"""Binary classifiers of a 3D volume and a clinical metadata vector (seed 003), each giving one logit.

Inputs are a dict: ``"volume"`` ``(D, H, W, C)`` in [0, 1] and ``"metadata"`` ``(meta_features,)``
(Age, Gender m=0/f=1, Treatment, Luxation by default); single-source models take only theirs.
The image branch is the MONAI-layout 3D ResNet of `modeling.backbones.resnet3d` (ResNet-50 by
default, 2048 features), nested as the sub-model ``"backbone"`` so its PyTorch weights load by name.

* ``learned_feature_fusion``: image FC 512 + ReLU; metadata MLP 1024 -> 512 (ReLU); fusion
  ``concat | add | multiply | image_only``; Dropout 0.25 -> FC 512 + ReLU -> Dropout 0.25 -> logit.
* ``feature_fusion``: the 2048 CNN features concatenated with the raw metadata, then FC 1024, FC 512, logit.
* ``image_only``: the learned fusion model's image path alone.
* ``metadata_only``: the metadata MLP and the classifier (the results table's "Non-image only").
* ``probability_fusion``: an image head and a metadata head, each with its own logit; the output is
  the logit of their averaged probabilities (trained jointly).
* ``learned_feature_fusion_variant``: the learned metadata embedding concatenated with the raw 2048
  CNN features (the 2D original's variant, moved to 3D).

The 3D model code is not public; the layer sizes are the seed's and the reference's, the last three
models are reconstructions of the 2D original's ideas (see the system's README).
"""

import keras

from modeling.backbones.resnet3d import resnet3d
from modeling.registry import register_model
from modeling.volume_fusion.layers import ProbabilityAverage

FUSIONS = ("concat", "add", "multiply", "image_only")
DEFAULT_VOLUME_SHAPE = (64, 64, 64, 1)


def backbone_3d(volume_shape=DEFAULT_VOLUME_SHAPE, depth=50, widen_factor=1.0, stem_stride=1, shortcut_type="B",
                bn_momentum=0.9):  # fmt: skip
    """The image branch's 3D ResNet (pooled features), named ``"backbone"``."""
    return resnet3d(
        depth,
        tuple(volume_shape),
        widen_factor=widen_factor,
        stem_stride=stem_stride,
        shortcut_type=shortcut_type,
        bn_momentum=bn_momentum,
        name="backbone",
    )


def _volume_features(volume_shape, backbone):
    volume = keras.Input(tuple(volume_shape), name="volume")
    network = backbone_3d(volume_shape, **(backbone or {}))
    return volume, network(volume)


def _metadata_input(meta_features, metadata_mean, metadata_variance):
    """The metadata input, standardised inside the model when training statistics are given."""
    metadata = keras.Input((meta_features,), name="metadata")
    if metadata_mean is None:
        return metadata, metadata
    scaled = keras.layers.Normalization(mean=list(metadata_mean), variance=list(metadata_variance),
                                        name="metadata_normalization")(metadata)  # fmt: skip
    return metadata, scaled


def _dense_stack(x, units, prefix, dropout_rate=0.0, start=1):
    """Dense + ReLU layers named ``<prefix>_fc<start>``, ... (dropout before each when ``dropout_rate``)."""
    for index, width in enumerate(units, start=start):
        if dropout_rate:
            x = keras.layers.Dropout(dropout_rate, name=f"{prefix}_dropout{index}")(x)
        x = keras.layers.Dense(width, activation="relu", name=f"{prefix}_fc{index}")(x)
    return x


def _logit(x, name="logit", dropout_rate=0.0):
    if dropout_rate:
        x = keras.layers.Dropout(dropout_rate, name=f"{name}_dropout")(x)
    return keras.layers.Dense(1, dtype="float32", name=name)(x)


def _check(fusion=None, dropout_rate=0.0):
    if fusion is not None and fusion not in FUSIONS:
        raise ValueError(f"`fusion` must be one of {FUSIONS}; got {fusion!r}.")
    if not 0 <= dropout_rate < 1:
        raise ValueError(f"`dropout_rate` must be in [0, 1); got {dropout_rate}.")


@register_model("volume_fusion/learned_feature_fusion")
def learned_feature_fusion_3d(
    volume_shape=DEFAULT_VOLUME_SHAPE,
    meta_features=4,
    fusion="concat",
    backbone=None,
    image_units=512,
    meta_units=(1024, 512),
    hidden_units=512,
    dropout_rate=0.25,
    metadata_mean=None,
    metadata_variance=None,
):
    """LearnedFeatureFusion3D: learned image and metadata embeddings, fused, then a 2-layer classifier.

    Args:
        volume_shape: ``(D, H, W, C)``.
        meta_features: length of the metadata vector.
        fusion: "concat" (1024), "add" or "multiply" (512), or "image_only" (no metadata input).
        backbone: keyword arguments of `backbone_3d` (``depth``, ``widen_factor``, ``stem_stride``,
            ``shortcut_type``, ``bn_momentum``); default ResNet-50.
        image_units: the image embedding (FC + ReLU after the CNN).
        meta_units: the metadata MLP's widths; the last must equal ``image_units`` for add/multiply.
        hidden_units: the classifier's hidden layer.
        dropout_rate: the classifier's two dropouts.
        metadata_mean, metadata_variance: per-feature training statistics; when given, the metadata
            is standardised inside the model.

    Example:

    >>> model = learned_feature_fusion_3d((16, 16, 16, 1), backbone={"depth": 18, "widen_factor": 0.0625})
    >>> sorted(model.input), model.output.shape
    (['metadata', 'volume'], (None, 1))
    """
    _check(fusion, dropout_rate)
    if fusion in ("add", "multiply") and meta_units[-1] != image_units:
        raise ValueError(
            f"fusion {fusion!r} needs meta_units[-1] == image_units; got {meta_units[-1]} and {image_units}."
        )
    volume, features = _volume_features(volume_shape, backbone)
    image = keras.layers.Dense(image_units, activation="relu", name="image_fc")(features)
    inputs = {"volume": volume}
    if fusion == "image_only":
        fused = image
    else:
        metadata, scaled = _metadata_input(meta_features, metadata_mean, metadata_variance)
        inputs["metadata"] = metadata
        embedded = _dense_stack(scaled, meta_units, "metadata")
        layer = {"concat": keras.layers.Concatenate, "add": keras.layers.Add, "multiply": keras.layers.Multiply}[fusion]
        fused = layer(name=f"fusion_{fusion}")([image, embedded])
    x = _dense_stack(fused, (hidden_units,), "classifier", dropout_rate)
    return keras.Model(inputs, _logit(x, dropout_rate=dropout_rate), name=f"learned_feature_fusion_3d_{fusion}")


@register_model("volume_fusion/image_only")
def image_only_3d(volume_shape=DEFAULT_VOLUME_SHAPE, **kwargs):
    """`learned_feature_fusion_3d` with ``fusion="image_only"``: the volume alone.

    Example:

    >>> model = image_only_3d((16, 16, 16, 1), backbone={"depth": 18, "widen_factor": 0.0625})
    >>> list(model.input)
    ['volume']
    """
    kwargs.pop("meta_features", None)
    return learned_feature_fusion_3d(volume_shape, fusion="image_only", **kwargs)


@register_model("volume_fusion/feature_fusion")
def feature_fusion_3d(
    volume_shape=DEFAULT_VOLUME_SHAPE,
    meta_features=4,
    backbone=None,
    hidden_units=(1024, 512),
    dropout_rate=0.25,
    metadata_mean=None,
    metadata_variance=None,
):
    """FeatureFusion3D: the CNN's 2048 features and the raw metadata, concatenated, into an MLP.

    CNN features ‖ metadata -> FC 1024 + ReLU -> Dropout -> FC 512 + ReLU -> Dropout -> logit.

    Example:

    >>> model = feature_fusion_3d((16, 16, 16, 1), backbone={"depth": 18, "widen_factor": 0.0625})
    >>> model.get_layer("fusion_concat").output.shape
    (None, 36)
    """
    _check(dropout_rate=dropout_rate)
    volume, features = _volume_features(volume_shape, backbone)
    metadata, scaled = _metadata_input(meta_features, metadata_mean, metadata_variance)
    x = keras.layers.Concatenate(name="fusion_concat")([features, scaled])
    x = keras.layers.Dense(hidden_units[0], activation="relu", name="classifier_fc1")(x)
    x = _dense_stack(x, hidden_units[1:], "classifier", dropout_rate, start=2)
    return keras.Model(
        {"volume": volume, "metadata": metadata}, _logit(x, dropout_rate=dropout_rate), name="feature_fusion_3d"
    )


@register_model("volume_fusion/metadata_only")
def metadata_only(
    meta_features=4,
    meta_units=(1024, 512),
    hidden_units=512,
    dropout_rate=0.25,
    metadata_mean=None,
    metadata_variance=None,
    **unused,
):
    """The metadata MLP and the learned fusion model's classifier, without any image.

    Args:
        unused: image arguments (``volume_shape``, ``backbone``) are accepted and ignored, so every
            model of the system builds from the same settings.

    Example:

    >>> model = metadata_only(meta_features=4)
    >>> list(model.input), model.count_params()
    (['metadata'], 793089)
    """
    _check(dropout_rate=dropout_rate)
    metadata, scaled = _metadata_input(meta_features, metadata_mean, metadata_variance)
    x = _dense_stack(scaled, meta_units, "metadata")
    x = _dense_stack(x, (hidden_units,), "classifier", dropout_rate)
    return keras.Model({"metadata": metadata}, _logit(x, dropout_rate=dropout_rate), name="metadata_only")


@register_model("volume_fusion/probability_fusion")
def probability_fusion_3d(
    volume_shape=DEFAULT_VOLUME_SHAPE,
    meta_features=4,
    backbone=None,
    image_units=512,
    meta_units=(1024, 512),
    dropout_rate=0.25,
    metadata_mean=None,
    metadata_variance=None,
):
    """Probability fusion: image and metadata heads with their own logits, probabilities averaged.

    The output is the logit of ``(sigmoid(image_logit) + sigmoid(metadata_logit)) / 2``, so the same
    losses and thresholds apply as for the other models.

    Example:

    >>> model = probability_fusion_3d((16, 16, 16, 1), backbone={"depth": 18, "widen_factor": 0.0625})
    >>> [model.get_layer(n).output.shape for n in ("image_logit", "metadata_logit")]
    [(None, 1), (None, 1)]
    """
    _check(dropout_rate=dropout_rate)
    volume, features = _volume_features(volume_shape, backbone)
    image = keras.layers.Dense(image_units, activation="relu", name="image_fc")(features)
    image_logit = _logit(image, "image_logit", dropout_rate)
    metadata, scaled = _metadata_input(meta_features, metadata_mean, metadata_variance)
    metadata_logit = _logit(_dense_stack(scaled, meta_units, "metadata"), "metadata_logit", dropout_rate)
    logit = ProbabilityAverage(dtype="float32", name="logit")([image_logit, metadata_logit])
    return keras.Model({"volume": volume, "metadata": metadata}, logit, name="probability_fusion_3d")


@register_model("volume_fusion/learned_feature_fusion_variant")
def learned_feature_fusion_variant_3d(
    volume_shape=DEFAULT_VOLUME_SHAPE,
    meta_features=4,
    backbone=None,
    meta_units=(1024, 512),
    hidden_units=512,
    dropout_rate=0.25,
    metadata_mean=None,
    metadata_variance=None,
):
    """The learned-fusion variant: the raw 2048 CNN features ‖ the learned 512 metadata embedding.

    Example:

    >>> model = learned_feature_fusion_variant_3d((16, 16, 16, 1), backbone={"depth": 18, "widen_factor": 0.0625})
    >>> model.get_layer("fusion_concat").output.shape
    (None, 544)
    """
    _check(dropout_rate=dropout_rate)
    volume, features = _volume_features(volume_shape, backbone)
    metadata, scaled = _metadata_input(meta_features, metadata_mean, metadata_variance)
    embedded = _dense_stack(scaled, meta_units, "metadata")
    x = keras.layers.Concatenate(name="fusion_concat")([features, embedded])
    x = _dense_stack(x, (hidden_units,), "classifier", dropout_rate)
    return keras.Model(
        {"volume": volume, "metadata": metadata},
        _logit(x, dropout_rate=dropout_rate),
        name="learned_feature_fusion_variant_3d",
    )

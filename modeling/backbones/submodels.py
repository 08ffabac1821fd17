"""Finding nested sub-models (backbones, encoders) of a model and unfreezing their top layers."""

import keras

from modeling.backbones.applications import BACKBONE_LAYER_NAME


def find_submodel(model, name=None):
    """Return a nested model of ``model``.

    Args:
        model: a Keras model.
        name: the nested model's layer name, searched at every depth. ``None`` means the layer
            named ``"backbone"`` (what `build_backbone` names it), else the first nested model.

    Raises:
        ValueError: when no such nested model exists (the message lists the nested models).

    Example:

    >>> import keras
    >>> inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="encoder")
    >>> outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(1)])
    >>> find_submodel(outer, "encoder") is inner
    True
    """
    nested = list(_nested_models(model))
    wanted = BACKBONE_LAYER_NAME if name is None else name
    for candidate in nested:
        if candidate.name == wanted:
            return candidate
    if name is None and nested:
        return nested[0]
    raise ValueError(
        f"Model '{model.name}' has no nested model named '{wanted}'; "
        f"nested models: {[candidate.name for candidate in nested] or 'none'}."
    )


def find_backbone(model):
    """The backbone of a model built by this package: `find_submodel` with its default name."""
    return find_submodel(model)


def weighted_layers(submodel, freeze_batchnorm=True):
    """The layers of ``submodel`` that own weights, in order (BatchNormalization left out if frozen)."""
    return [
        layer
        for layer in submodel.layers
        if layer.weights and not (freeze_batchnorm and isinstance(layer, keras.layers.BatchNormalization))
    ]


def unfreeze_last_layers(submodel, count, freeze_batchnorm=True):
    """Make the last ``count`` weighted layers of ``submodel`` trainable and freeze all others.

    The container itself is unfrozen (a frozen container hides every weight below it).

    Args:
        submodel: a model, usually a nested one (see `find_submodel`).
        count: how many of `weighted_layers` to unfreeze, counted from the top; ``0`` freezes all.
        freeze_batchnorm: keep BatchNormalization layers frozen (they are not counted then).

    Returns:
        The number of trainable weight tensors in ``submodel`` afterwards.

    Example:

    >>> import keras
    >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    >>> unfreeze_last_layers(encoder, 1), [layer.trainable for layer in encoder.layers]
    (2, [False, True])
    """
    if int(count) < 0:
        raise ValueError(f"The number of layers to unfreeze must be >= 0; got {count!r}.")
    submodel.trainable = True
    candidates = weighted_layers(submodel, freeze_batchnorm)
    unfrozen = {id(layer) for layer in candidates[max(0, len(candidates) - int(count)) :]}
    for layer in submodel.layers:
        layer.trainable = id(layer) in unfrozen
    return len(submodel.trainable_weights)


def unfreeze_backbone_layers(model, n_layers=2, freeze_batchnorm=True, name=None):
    """Make the last ``n_layers`` weighted layers of a nested backbone trainable.

    The original set the layers' flags but left the backbone container frozen,
    which in Keras hides every weight below it, so nothing was ever trained.
    Here the container is unfrozen, the last ``n_layers`` layers that own
    weights become trainable and all earlier ones stay frozen
    (`unfreeze_last_layers` on the nested model).
    BatchNormalization layers stay frozen (so in inference mode) unless
    ``freeze_batchnorm=False``; they are not counted in ``n_layers`` then.
    Recompile the model afterwards for the change to take effect in ``fit``.

    Args:
        model: a model built by this package (or any model with a nested backbone).
        n_layers: how many weighted layers to unfreeze, counted from the top;
            ``0`` freezes the whole backbone.
        freeze_batchnorm: keep BatchNormalization layers frozen.
        name: the nested model to unfreeze (see `find_submodel`; default: the backbone).

    Returns:
        The number of trainable weight tensors in the backbone afterwards.

    Example:

    >>> from modeling.boneage import attn_sex_model
    >>> model = attn_sex_model((64, 64, 3), None, ["mae"], backbone="mobilenet_v2", weights=None)
    >>> unfreeze_backbone_layers(model, n_layers=1)
    1
    """
    return unfreeze_last_layers(find_submodel(model, name), n_layers, freeze_batchnorm)


def _nested_models(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield layer
            yield from _nested_models(layer)

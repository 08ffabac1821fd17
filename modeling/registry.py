"""A namespaced model registry: ``"<system>/<model>"`` -> builder, like timm's.

Each system's model module registers its builders when imported; `modeling` imports every
system, so ``list_models()`` sees them all.

Example:

>>> from modeling import create_model, list_models
>>> list_models("boneage")[:2]
['boneage/attn', 'boneage/attn_sex']
"""

_BUILDERS = {}


def register_model(name):
    """Decorator that files a model builder under ``name`` (``"<system>/<model>"``).

    Example (a system's model module does this for each builder):

    >>> @register_model("boneage/attn_sex")  # the name of an existing builder...
    ... def another(img_dims, **kwargs): ...
    Traceback (most recent call last):
    ValueError: A model named 'boneage/attn_sex' is already registered.
    """
    system, _, model = name.partition("/")
    if not system or not model or "/" in model:
        raise ValueError(f"Model names are '<system>/<model>' (e.g. 'boneage/attn_sex'); got {name!r}.")

    def decorator(builder):
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"A model named '{name}' is already registered.")
        _BUILDERS[name] = builder
        return builder

    return decorator


def list_systems():
    """Sorted names of the systems that registered at least one model."""
    return sorted({name.split("/", 1)[0] for name in _BUILDERS})


def list_models(system=None):
    """Sorted names of every registered model, or of one system's models.

    Raises:
        ValueError: for a system with no registered model.
    """
    if system is None:
        return sorted(_BUILDERS)
    names = sorted(name for name in _BUILDERS if name.split("/", 1)[0] == system)
    if not names:
        raise ValueError(f"No models registered for system '{system}'. Systems: {', '.join(list_systems())}.")
    return names


def get_builder(name):
    """The builder function registered as ``name``.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    if name not in _BUILDERS:
        raise ValueError(f"Unknown model '{name}'. Registered models: {', '.join(list_models())}.")
    return _BUILDERS[name]


def create_model(name, **kwargs):
    """Build the registered model ``name`` with the builder's keyword arguments.

    Example:

    >>> model = create_model("boneage/attn_sex_improved", img_dims=(64, 64, 3),
    ...                      backbone="mobilenet_v2", weights=None)
    >>> [tuple(i.shape) for i in model.inputs]
    [(None, 64, 64, 3), (None, 1)]
    """
    return get_builder(name)(**kwargs)

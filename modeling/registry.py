"""A name -> builder registry, so scripts and tests reach every model the same way."""

_BUILDERS = {}


def register_model(name):
    """Decorator that files a model builder under ``name``.

    Example:

    >>> @register_model("my_model")
    ... def my_model(img_dims, **kwargs): ...
    """

    def decorator(builder):
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"A model named '{name}' is already registered.")
        _BUILDERS[name] = builder
        return builder

    return decorator


def list_models():
    """Sorted names of every registered model."""
    return sorted(_BUILDERS)


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

    >>> model = create_model("attn_sex_improved", img_dims=(64, 64, 3),
    ...                      backbone="mobilenet_v2", weights=None)
    >>> [tuple(i.shape) for i in model.inputs]
    [(None, 64, 64, 3), (None, 1)]
    """
    return get_builder(name)(**kwargs)

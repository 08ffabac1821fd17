"""Convert the original PyTorch weights (a ``state_dict``) of this system's models into the Keras models.

Handles the original's three modules, whole or in parts:

* ``DualEmbeddingRegression`` / ``RegressionWithEmbeddings``: ``attention.{0,2}``,
  ``embed_attention.*``, ``feature_attention.*``, ``regression_head.{0,3,6}``, and the embedding
  models under ``company_model.`` and ``model_model.`` (into ``embedding_company`` and ``embedding_model``);
* ``EmbeddingModel``: ``head.{0,3}``, ``classifier`` and the timm ViT under ``backbone.``;
* the pretraining classifier of ``train_company_classifier_hpo.py``: ``classifier.{0,3,6}``.
  The original regressor renamed these to ``head.classifier.*``, names that do not exist, and loaded
  with ``strict=False``, so the pretrained heads never arrived. Here ``classifier.0`` -> ``head_dense_1``,
  ``classifier.3`` -> ``head_dense_2``, ``classifier.6`` -> ``classifier``.

Torch ``Linear`` weights are ``(out, in)`` (Keras kernels are the transpose); timm's fused ``qkv``
is split into the query, key and value kernels of `keras.layers.MultiHeadAttention`.

Example (the fixture of the original's embedding head):

>>> import numpy as np
>>> from modeling.implant_dimensions import embedding_head_model
>>> state = load_state_dict("tests/fixtures/implant_dimensions/D_embedding_head.npz")
>>> model = embedding_head_model(feature_dim=48, embed_dim=16, num_classes=7)
>>> sorted(load_torch_weights(model, state)["loaded"])[:2]
['classifier.bias', 'classifier.weight']
"""

import os
import re

import numpy as np

EMBEDDING_PREFIXES = {"company_model.": "embedding_company", "model_model.": "embedding_model"}
# torch module -> Keras layer name, for Linear layers.
LINEAR_LAYERS = {
    "attention.0": "attention_hidden",
    "attention.2": "attention_weights",
    "embed_attention.0": "embed_attention_hidden",
    "embed_attention.2": "embed_attention_weights",
    "feature_attention.0": "feature_attention_hidden",
    "feature_attention.2": "feature_attention_weights",
    "regression_head.0": "regression_dense_1",
    "regression_head.3": "regression_dense_2",
    "regression_head.6": "dimensions",
    "head.0": "head_dense_1",
    "head.3": "head_dense_2",
    "classifier": "classifier",
    # the pretraining classifier's one Sequential (train_company_classifier_hpo.py)
    "classifier.0": "head_dense_1",
    "classifier.3": "head_dense_2",
    "classifier.6": "classifier",
}
# timm ViT: torch parameter (below "backbone.") -> (Keras layer, weight path suffix)
_VIT_BLOCK = {
    "norm1.weight": "ln_1/gamma",
    "norm1.bias": "ln_1/beta",
    "attn.proj.weight": "mha/attention_output/kernel",
    "attn.proj.bias": "mha/attention_output/bias",
    "norm2.weight": "ln_2/gamma",
    "norm2.bias": "ln_2/beta",
    "mlp.fc1.weight": "dense_1/kernel",
    "mlp.fc1.bias": "dense_1/bias",
    "mlp.fc2.weight": "dense_2/kernel",
    "mlp.fc2.bias": "dense_2/bias",
}
_VIT_TOP = {
    "cls_token": ("patch_embedding", "class_token"),
    "pos_embed": ("patch_embedding", "position_embedding/embeddings"),
    "patch_embed.proj.weight": ("patch_embedding", "patch_embedding/kernel"),
    "patch_embed.proj.bias": ("patch_embedding", "patch_embedding/bias"),
    "norm.weight": ("final_norm", "gamma"),
    "norm.bias": ("final_norm", "beta"),
}


def load_state_dict(path):
    """A state dict as ``{torch name: float32 array}`` from an ``.npz`` export or a ``.pth`` file.

    ``.npz`` entries named ``input__*`` / ``output__*`` (the fixtures' inputs and outputs) and
    ``num_batches_tracked`` are left out. A ``.pth`` needs torch (optional); a checkpoint dict with a
    ``model_state_dict`` or ``state_dict`` entry is unwrapped.
    """
    path = os.fspath(path)
    if path.endswith(".npz"):
        with np.load(path) as archive:
            state = {key: archive[key] for key in archive.files}
    else:
        try:
            import torch
        except ImportError as error:
            raise ImportError(f"Reading {path} needs PyTorch; export it to .npz or `pip install torch`.") from error
        state = torch.load(path, map_location="cpu", weights_only=False)
        for key in ("model_state_dict", "state_dict"):
            if isinstance(state, dict) and key in state:
                state = state[key]
        state = {key: value.detach().cpu().numpy() for key, value in state.items()}
    return {
        key: np.asarray(value, "float32")
        for key, value in state.items()
        if not key.startswith(("input__", "output__")) and not key.endswith("num_batches_tracked")
    }


def load_torch_weights(model, state, allow_missing=(), allow_unused=()):
    """Assign a PyTorch ``state_dict`` to ``model``, every weight accounted for.

    Args:
        model: a model of this system (or one of its parts, e.g. `fusion_regressor`).
        state: ``{torch name: array}`` (`load_state_dict`).
        allow_missing: prefixes of Keras weight paths that may stay unassigned.
        allow_unused: prefixes of torch names that may have no Keras weight (e.g. ``"company_model.classifier"``:
            the regressor has no classifiers).

    Returns:
        ``{"loaded": [torch names], "unused": [...], "missing": [Keras paths]}``.

    Raises:
        ValueError: a torch name with no Keras weight, a Keras weight left unassigned, or a shape
            mismatch, each named.
    """
    assigned, unused = {}, []
    for name, value in state.items():
        target = _target(model, name)
        if target is None:
            if not name.startswith(tuple(allow_unused)):
                raise ValueError(f"The torch weight '{name}' {value.shape} has no counterpart in '{model.name}'.")
            unused.append(name)
            continue
        for variable, array in target(value):
            if tuple(variable.shape) != array.shape:
                raise ValueError(
                    f"'{name}' converts to shape {array.shape}, but '{variable.path}' is {tuple(variable.shape)}."
                )
            assigned[id(variable)] = (variable, array, name)
    missing = [
        path
        for path, variable in qualified_weights(model)
        if id(variable) not in assigned and not path.startswith(tuple(allow_missing))
    ]
    if missing:
        raise ValueError(f"These weights of '{model.name}' get no value from the state dict: {missing}.")
    for variable, array, _ in assigned.values():
        variable.assign(array)
    return {"loaded": sorted({name for *_, name in assigned.values()}), "unused": unused, "missing": missing}


def qualified_weights(model):
    """``[(path, variable)]`` of every weight, nested models' paths prefixed with their names
    (``embedding_company/block_0/ln_1/gamma``): Keras' own paths do not say which nested model."""
    nested = [layer for layer in model.layers if hasattr(layer, "layers")]
    inner = {id(variable) for layer in nested for variable in layer.weights}
    own = [(variable.path, variable) for variable in model.weights if id(variable) not in inner]
    return own + [(f"{layer.name}/{path}", variable) for layer in nested for path, variable in qualified_weights(layer)]


def _target(model, name):
    """A function from the torch array to ``[(variable, array)]``, or ``None`` for an unknown name."""
    for prefix, submodel in EMBEDDING_PREFIXES.items():
        if name.startswith(prefix):
            nested = _layer(model, submodel)
            return None if nested is None else _target(nested, name[len(prefix) :])
    if name.startswith("backbone."):
        nested = _layer(model, "embedding")
        return _vit_target(nested or model, name[len("backbone.") :])
    module, _, kind = name.rpartition(".")
    layer = _layer(model, LINEAR_LAYERS.get(module, ""))
    if layer is None and module == "classifier":
        return None
    if layer is None or kind not in ("weight", "bias"):
        nested = _layer(model, "embedding")  # an embedding classifier: the head is nested
        return None if nested is None or nested is model else _target(nested, name)
    variable = _weight(layer, "kernel" if kind == "weight" else "bias")
    return lambda value: [(variable, value.T if kind == "weight" else value)]


def _vit_target(model, name):
    match = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
    if match is None:
        if name not in _VIT_TOP:
            return None
        layer_name, suffix = _VIT_TOP[name]
        layer = _layer(model, layer_name)
        if layer is None:
            return None
        variable = _weight(layer, suffix)
        if name == "pos_embed":
            return lambda value: [(variable, value[0])]
        if name == "patch_embed.proj.weight":
            return lambda value: [(variable, value.transpose(2, 3, 1, 0))]
        if name.startswith("norm.") or name == "cls_token" or name.endswith("bias"):
            return lambda value: [(variable, value)]
    block = _layer(model, f"block_{match.group(1)}")
    if block is None:
        return None
    part = match.group(2)
    heads = block.num_heads
    if part in ("attn.qkv.weight", "attn.qkv.bias"):
        kind = "kernel" if part.endswith("weight") else "bias"
        variables = [_weight(block, f"mha/{which}/{kind}") for which in ("query", "key", "value")]

        def split(value):
            pieces = np.split(value, 3, axis=0)
            if kind == "kernel":  # (out, in) -> (in, heads, head_dim)
                return [(v, p.T.reshape(p.shape[1], heads, -1)) for v, p in zip(variables, pieces, strict=True)]
            return [(v, p.reshape(heads, -1)) for v, p in zip(variables, pieces, strict=True)]

        return split
    if part not in _VIT_BLOCK:
        return None
    variable = _weight(block, _VIT_BLOCK[part])
    if part == "attn.proj.weight":  # (out, in) -> (heads, head_dim, out)
        return lambda value: [(variable, value.T.reshape(heads, -1, value.shape[0]))]
    if part.endswith("fc1.weight") or part.endswith("fc2.weight"):
        return lambda value: [(variable, value.T)]
    return lambda value: [(variable, value)]


def _layer(model, name):
    if not name:
        return None
    for layer in getattr(model, "layers", []):
        if layer.name == name:
            return layer
    return None


def _weight(layer, suffix):
    for variable in layer.weights:
        if variable.path.endswith("/" + suffix) or variable.path == suffix:
            return variable
    raise ValueError(f"Layer '{layer.name}' has no weight ending in '{suffix}': {[w.path for w in layer.weights]}.")

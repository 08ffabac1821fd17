"""PyTorch state dicts of the original (rupeshsah2038/Multi-Modal) into this system's Keras layers and models.

`load_fusion_state` fills any of the nine fusion layers, `load_head_state` the projections, fusion and
heads of a teacher or student (`models.fusion_classifier`), from a ``{torch name: array}`` mapping in
torch layout: an `.npz` export (`read_state_dict`) or a ``.pth`` file (`read_torch_state_dict`, needs
the optional ``torch``). Backbone weights are not converted (use keras-hub presets for those).

Example:

>>> import keras, numpy as np
>>> from modeling.fusion import FUSION_LAYERS
>>> layer = FUSION_LAYERS["film"](dim=2)
>>> state = {"mlp_gamma.weight": np.eye(2), "mlp_gamma.bias": np.zeros(2),
...          "mlp_beta.weight": np.zeros((2, 2)), "mlp_beta.bias": np.ones(2)}
>>> load_fusion_state(layer, state)
>>> keras.ops.convert_to_numpy(layer(np.ones((1, 2), "float32"), np.full((1, 2), 3.0, "float32"))).tolist()
[[4.0, 4.0]]
"""

import keras
import numpy as np

from modeling.fusion.pooled_cross_attention import PooledCrossAttentionFusion
from modeling.fusion.routed import EnergyAwareAdaptiveFusion, SHoMRFusion
from modeling.fusion.token_transformer import SimpleFusion, TransformerConcatFusion
from modeling.fusion.vector_mixing import ConcatMLPFusion, FiLMFusion, GatedBlendFusion, ModalityDropoutFusion


def read_state_dict(path):
    """The ``{name: array}`` entries of an `.npz` export, without the fixtures' ``input__``/``output__`` arrays."""
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files if not key.startswith(("input__", "output__"))}


def read_torch_state_dict(path):
    """The state dict of a ``.pth`` file as NumPy arrays (imports torch, an optional dependency)."""
    import torch  # optional: pip install torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state.state_dict()
    return {key: value.detach().numpy() for key, value in state.items()}


def _get(state, key):
    if key not in state:
        raise KeyError(f"The state dict has no entry {key!r} (it has {len(state)} entries, e.g. {sorted(state)[:3]}).")
    return np.asarray(state[key], dtype="float32")


def set_linear(layer, state, prefix):
    """A Dense layer from torch ``<prefix>.weight`` (out, in) and ``<prefix>.bias``."""
    layer.set_weights([_get(state, f"{prefix}.weight").T, _get(state, f"{prefix}.bias")])


def set_layer_norm(layer, state, prefix):
    layer.set_weights([_get(state, f"{prefix}.weight"), _get(state, f"{prefix}.bias")])


def set_attention(layer, state, prefix):
    """A `keras.layers.MultiHeadAttention` from torch ``in_proj_*`` and ``out_proj.*``."""
    weight, bias = _get(state, f"{prefix}.in_proj_weight"), _get(state, f"{prefix}.in_proj_bias")
    dim = weight.shape[1]
    heads = layer.num_heads
    parts = []
    for index in range(3):  # query, key, value
        rows = slice(index * dim, (index + 1) * dim)
        parts += [weight[rows].T.reshape(dim, heads, dim // heads), bias[rows].reshape(heads, dim // heads)]
    out_weight = _get(state, f"{prefix}.out_proj.weight").T.reshape(heads, dim // heads, dim)
    layer.set_weights([*parts, out_weight, _get(state, f"{prefix}.out_proj.bias")])


def set_sequential(sequential, state, prefix):
    """The Dense layers of a `keras.Sequential`, in order, from the Linear entries of an ``nn.Sequential``."""
    indices = sorted({int(key[len(prefix) + 1 :].split(".")[0]) for key in state if key.startswith(f"{prefix}.")})
    dense = [layer for layer in sequential.layers if isinstance(layer, keras.layers.Dense)]
    if len(indices) != len(dense):
        raise ValueError(f"{prefix}: {len(indices)} torch Linear layers for {len(dense)} Keras Dense layers.")
    for layer, index in zip(dense, indices, strict=True):
        set_linear(layer, state, f"{prefix}.{index}")


def _encoder(layer, state, prefix):
    for index, encoder_layer in enumerate(layer.encoder_layers):
        name = f"{prefix}.layers.{index}"
        set_attention(encoder_layer.self_attn, state, f"{name}.self_attn")
        set_linear(encoder_layer.linear1, state, f"{name}.linear1")
        set_linear(encoder_layer.linear2, state, f"{name}.linear2")
        set_layer_norm(encoder_layer.norm1, state, f"{name}.norm1")
        set_layer_norm(encoder_layer.norm2, state, f"{name}.norm2")


def _simple(layer, state, p):
    _encoder(layer, state, f"{p}fusion")


def _transformer_concat(layer, state, p):
    _encoder(layer, state, f"{p}transformer")
    layer.modality_token.assign(_get(state, f"{p}modality_token"))


def _cross_attention(layer, state, p):
    set_layer_norm(layer.norm1, state, f"{p}norm1")
    set_layer_norm(layer.norm2, state, f"{p}norm2")
    set_attention(layer.cross_attn, state, f"{p}cross_attn")
    set_sequential(layer.ffn, state, f"{p}ffn")


def _gated(layer, state, p):
    set_linear(layer.gate, state, f"{p}gate.0")


def _film(layer, state, p):
    set_linear(layer.mlp_gamma, state, f"{p}mlp_gamma")
    set_linear(layer.mlp_beta, state, f"{p}mlp_beta")


def _concat_mlp(layer, state, p):
    set_sequential(layer.mlp, state, f"{p}mlp")


def _modality_dropout(layer, state, p):
    set_sequential(layer.gated, state, f"{p}gated")


def _routed(layer, state, p):
    set_sequential(layer.router, state, f"{p}router")
    set_linear(layer.gate, state, f"{p}gate.0")
    set_attention(layer.cross_attn, state, f"{p}cross_attn")
    set_sequential(layer.ffn, state, f"{p}ffn")


def _shomr(layer, state, p):
    _routed(layer, state, p)
    set_sequential(layer.conf_net, state, f"{p}conf_net")
    set_sequential(layer.proj_single, state, f"{p}proj_single")
    set_layer_norm(layer.norm1, state, f"{p}norm1")
    set_layer_norm(layer.norm2, state, f"{p}norm2")


def _energy_aware_adaptive(layer, state, p):
    _routed(layer, state, p)
    set_layer_norm(layer.norm, state, f"{p}norm")
    layer.lambda_energy.assign(_get(state, f"{p}lambda_energy"))


_LOADERS = {  # exact classes: TransformerConcatFusion subclasses SimpleFusion
    SimpleFusion: _simple,
    TransformerConcatFusion: _transformer_concat,
    PooledCrossAttentionFusion: _cross_attention,
    GatedBlendFusion: _gated,
    FiLMFusion: _film,
    ConcatMLPFusion: _concat_mlp,
    ModalityDropoutFusion: _modality_dropout,
    SHoMRFusion: _shomr,
    EnergyAwareAdaptiveFusion: _energy_aware_adaptive,
}


def load_fusion_state(layer, state, prefix=""):
    """Copy the original fusion module's weights (torch names under ``prefix``) into a fusion layer.

    The layer is built first if needed.
    """
    if not layer.built:
        layer.build((None, layer.dim), (None, layer.dim))
    _LOADERS[type(layer)](layer, state, prefix)


def load_head_state(model, state):
    """Projections, fusion and both heads of a `fusion_classifier` (teacher or student) from the
    original ``Teacher``/``Student`` state dict (``proj_vis``, ``proj_txt``, ``fusion.*``,
    ``head_modality.head.1``, ``head_location.head.1``); backbone entries are ignored."""
    set_linear(model.get_layer("proj_vis"), state, "proj_vis")
    set_linear(model.get_layer("proj_txt"), state, "proj_txt")
    load_fusion_state(model.get_layer("fusion"), state, "fusion.")
    for task in ("modality", "location"):
        set_linear(model.get_layer(f"head_{task}"), state, f"head_{task}.head.1")

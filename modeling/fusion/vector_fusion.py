"""`FUSION_LAYERS` (type name -> layer class) and `build_vector_fusion`, the factory of the original's
``fusion:`` settings (``type``, ``fusion_dim``, ``fusion_heads``, ``fusion_layers``, ``hidden_mult``,
``dropout``, ``p_img``, ``p_txt``). Unknown types are refused (the original fell back to ``simple``).

Example:

>>> layer = build_vector_fusion("cross_attention", dim=16, heads=4)
>>> type(layer).__name__
'PooledCrossAttentionFusion'
"""

import difflib
import inspect

from modeling.fusion.pooled_cross_attention import PooledCrossAttentionFusion
from modeling.fusion.routed import EnergyAwareAdaptiveFusion, SHoMRFusion
from modeling.fusion.token_transformer import SimpleFusion, TransformerConcatFusion
from modeling.fusion.vector_mixing import ConcatMLPFusion, FiLMFusion, GatedBlendFusion, ModalityDropoutFusion

FUSION_LAYERS = {
    "simple": SimpleFusion,
    "concat_mlp": ConcatMLPFusion,
    "cross_attention": PooledCrossAttentionFusion,
    "gated": GatedBlendFusion,
    "film": FiLMFusion,
    "transformer_concat": TransformerConcatFusion,
    "modality_dropout": ModalityDropoutFusion,
    "shomr": SHoMRFusion,
    "energy_aware_adaptive": EnergyAwareAdaptiveFusion,
}


def canonical_fusion_type(fusion_type):
    """The `FUSION_LAYERS` key of ``fusion_type`` (case, ``-`` and ``_`` ignored, as the original's factory).

    Raises:
        ValueError: for an unknown type, naming the closest known one.
    """
    squeeze = lambda name: name.lower().replace("_", "").replace("-", "")  # noqa: E731
    known = {squeeze(name): name for name in FUSION_LAYERS}
    key = squeeze(str(fusion_type))
    if key not in known:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" Did you mean {known[close[0]]!r}?" if close else ""
        raise ValueError(f"Unknown fusion type {fusion_type!r}.{hint} Known types: {', '.join(FUSION_LAYERS)}.")
    return known[key]


def build_vector_fusion(fusion_type, dim, heads=4, layers=1, name="fusion", **params):
    """A fusion layer of ``fusion_type`` with the original factory's argument mapping.

    Args:
        fusion_type: a `FUSION_LAYERS` name.
        dim: fusion width D.
        heads: attention heads (layers that attend).
        layers: ``fusion_layers``: encoder depth (simple, transformer_concat) or MLP depth (concat_mlp).
        name: the layer name.
        **params: other constructor arguments (``hidden_mult``, ``dropout``, ``p_img``, ``p_txt``,
            ``inference_routing``, ...); those a type does not take are ignored, as in the original.
    """
    layer_class = FUSION_LAYERS[canonical_fusion_type(fusion_type)]
    accepted = inspect.signature(layer_class.__init__).parameters
    candidates = {"heads": heads, "num_layers": layers, **params}
    return layer_class(dim=dim, name=name, **{key: value for key, value in candidates.items() if key in accepted})

"""Fusion blocks: two modalities' feature vectors in, one fused vector out.

* `cross_attention`: a query vector attends to a context vector, residual + LayerNorm.
* `gated_fusion`: a sigmoid gate mixes a projected primary vector with a secondary one.
* `FUSION_LAYERS`: the nine ``(vision, text) -> (batch, D)`` layers of the image + text fusion system
  (seed 002), by type name; `build_vector_fusion` builds one from the original's ``fusion:`` settings.
"""

from modeling.fusion.cross_attention import cross_attention
from modeling.fusion.gated import gated_fusion
from modeling.fusion.vector_fusion import FUSION_LAYERS, build_vector_fusion, canonical_fusion_type

__all__ = ["FUSION_LAYERS", "build_vector_fusion", "canonical_fusion_type", "cross_attention", "gated_fusion"]

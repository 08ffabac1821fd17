"""Fusion blocks: two modalities' feature vectors in, one fused vector out.

* `cross_attention`: a query vector attends to a context vector, residual + LayerNorm.
* `gated_fusion`: a sigmoid gate mixes a projected primary vector with a secondary one.
"""

from modeling.fusion.cross_attention import cross_attention
from modeling.fusion.gated import gated_fusion

__all__ = ["cross_attention", "gated_fusion"]

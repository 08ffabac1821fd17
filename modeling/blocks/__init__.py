"""Functional building blocks: named Keras layers wired into a sub-graph, returning its output.

* `spatial_attention_pooling`: attention map over a feature grid + attention-weighted pooling.
"""

from modeling.blocks.spatial_attention import spatial_attention_pooling

__all__ = ["spatial_attention_pooling"]

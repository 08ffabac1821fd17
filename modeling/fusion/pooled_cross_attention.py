"""`PooledCrossAttentionFusion`: one pooled query attends over the two modality tokens (seed 002's default)."""

import keras

from modeling.fusion.vector_fusion_parts import VectorFusion, attention, layer_norm, mlp, two_tokens


@keras.saving.register_keras_serializable(package="medfusion")
class PooledCrossAttentionFusion(VectorFusion):
    """``z = MHA(LN1((v + t) / 2), [v; t], [v; t]);  y = z + FFN(LN2(z))``.

    A single query token, no residual around the attention (as the original), FFN = Linear(D -> 4D),
    GELU, Linear(4D -> D), Dropout. ``fusion_layers`` does not apply.

    Args:
        dim: width D.
        heads: attention heads.
        dropout: attention and FFN dropout.

    Example:

    >>> import numpy as np
    >>> v = t = np.ones((3, 8), "float32")
    >>> tuple(PooledCrossAttentionFusion(dim=8, heads=2)(v, t).shape)
    (3, 8)
    """

    def __init__(self, dim, heads=4, dropout=0.1, **kwargs):
        super().__init__(dim, dropout, **kwargs)
        self.heads = heads
        self.norm1, self.norm2 = layer_norm("norm1"), layer_norm("norm2")
        self.cross_attn = attention(dim, heads, dropout, "cross_attn")
        self.ffn = mlp([4 * dim, dim], dropout, "ffn", dropout_between=False, dropout_after_last=True)

    def sublayers_and_shapes(self, dim):
        vector = (None, dim)
        return [
            (self.norm1, vector),
            (self.norm2, vector),
            (self.cross_attn, ((None, 1, dim), (None, 2, dim))),
            (self.ffn, vector),
        ]

    def fuse(self, vision, text, training):
        tokens = two_tokens(vision, text)
        query = self.norm1((vision + text) / 2.0)[:, None, :]
        z = self.cross_attn(query, tokens, tokens, training=training)[:, 0, :]
        return z + self.ffn(self.norm2(z), training=training)

    def get_config(self):
        return {**super().get_config(), "heads": self.heads}

"""Transformer fusion of the two modality vectors as 2 tokens: `SimpleFusion` and `TransformerConcatFusion`."""

import keras
from keras import ops

from modeling.fusion.vector_fusion_parts import PostNormEncoderLayer, VectorFusion, two_tokens


@keras.saving.register_keras_serializable(package="medfusion")
class SimpleFusion(VectorFusion):
    """``mean_tokens(Encoder([v; t]))``: ``num_layers`` post-norm transformer layers over 2 tokens.

    Args:
        dim: width D of both inputs and of the output.
        heads: attention heads.
        num_layers: encoder layers (``fusion_layers``).
        dropout: dropout of the encoder layers.

    Example:

    >>> import numpy as np
    >>> v = t = np.ones((3, 8), "float32")
    >>> tuple(SimpleFusion(dim=8, heads=2)(v, t).shape)
    (3, 8)
    """

    def __init__(self, dim, heads=4, num_layers=1, dropout=0.1, **kwargs):
        super().__init__(dim, dropout, **kwargs)
        self.heads, self.num_layers = heads, num_layers
        self.encoder_layers = [
            PostNormEncoderLayer(dim, heads, dropout=dropout, name=f"layers_{index}") for index in range(num_layers)
        ]

    def sublayers_and_shapes(self, dim):
        return [(layer, (None, 2, dim)) for layer in self.encoder_layers]

    def tokens(self, vision, text):
        return two_tokens(vision, text)

    def fuse(self, vision, text, training):
        x = self.tokens(vision, text)
        for layer in self.encoder_layers:
            x = layer(x, training=training)
        return ops.mean(x, axis=1)

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "num_layers": self.num_layers}


@keras.saving.register_keras_serializable(package="medfusion")
class TransformerConcatFusion(SimpleFusion):
    """`SimpleFusion` with a learned modality embedding (1, 2, D) added to the two tokens.

    The original writes v and t *over* its ``modality_token`` (in place, failing for batch > 1), so the
    token never reaches the output and the layer equals `SimpleFusion`; ``add_modality_token=False``
    keeps that behaviour (the weight exists, unused). The default adds the token, as its name intends.

    Example:

    >>> import numpy as np
    >>> v = t = np.ones((3, 8), "float32")
    >>> tuple(TransformerConcatFusion(dim=8, heads=2)(v, t).shape)
    (3, 8)
    """

    def __init__(self, dim, heads=4, num_layers=1, dropout=0.1, add_modality_token=True, **kwargs):
        super().__init__(dim, heads, num_layers, dropout, **kwargs)
        self.add_modality_token = add_modality_token

    def build(self, vision_shape, text_shape=None):
        self.modality_token = self.add_weight(
            shape=(1, 2, self.dim), initializer="zeros", name="modality_token", trainable=self.add_modality_token
        )
        super().build(vision_shape, text_shape)

    def tokens(self, vision, text):
        tokens = two_tokens(vision, text)
        return tokens + self.modality_token if self.add_modality_token else tokens

    def get_config(self):
        return {**super().get_config(), "add_modality_token": self.add_modality_token}

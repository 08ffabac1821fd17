"""Fusion layers that mix the two vectors without attention: gated blend, FiLM, concat MLP, modality dropout."""

import keras
from keras import ops

from modeling.fusion.vector_fusion_parts import VectorFusion, mlp


@keras.saving.register_keras_serializable(package="medfusion")
class GatedBlendFusion(VectorFusion):
    """``g = sigmoid(W [v; t] + b);  y = g * v + (1 - g) * t``.

    Example:

    >>> import numpy as np
    >>> v = t = np.ones((3, 8), "float32")
    >>> float(GatedBlendFusion(dim=8)(v, t)[0, 0])
    1.0
    """

    def __init__(self, dim, dropout=0.1, **kwargs):
        super().__init__(dim, dropout, **kwargs)
        self.gate = keras.layers.Dense(dim, activation="sigmoid", name="gate")

    def sublayers_and_shapes(self, dim):
        return [(self.gate, (None, 2 * dim))]

    def fuse(self, vision, text, training):
        gate = self.gate(ops.concatenate([vision, text], axis=-1))
        return gate * vision + (1.0 - gate) * text


@keras.saving.register_keras_serializable(package="medfusion")
class FiLMFusion(VectorFusion):
    """Text conditions vision: ``y = (W_g t + b_g) * v + (W_b t + b_b)`` (plain gamma, not 1 + gamma).

    Example:

    >>> import numpy as np
    >>> v = t = np.ones((3, 8), "float32")
    >>> tuple(FiLMFusion(dim=8)(v, t).shape)
    (3, 8)
    """

    def __init__(self, dim, dropout=0.1, **kwargs):
        super().__init__(dim, dropout, **kwargs)
        self.mlp_gamma = keras.layers.Dense(dim, name="mlp_gamma")
        self.mlp_beta = keras.layers.Dense(dim, name="mlp_beta")

    def sublayers_and_shapes(self, dim):
        return [(self.mlp_gamma, (None, dim)), (self.mlp_beta, (None, dim))]

    def fuse(self, vision, text, training):
        return self.mlp_gamma(text) * vision + self.mlp_beta(text)


@keras.saving.register_keras_serializable(package="medfusion")
class ConcatMLPFusion(VectorFusion):
    """An MLP on ``[v; t]``: ``num_layers - 1`` blocks Linear(hidden_mult * D), GELU, Dropout, then Linear(D).

    Example:

    >>> import numpy as np
    >>> v = t = np.ones((3, 8), "float32")
    >>> tuple(ConcatMLPFusion(dim=8, num_layers=2)(v, t).shape)
    (3, 8)
    """

    def __init__(self, dim, num_layers=2, hidden_mult=2, dropout=0.1, **kwargs):
        super().__init__(dim, dropout, **kwargs)
        self.num_layers, self.hidden_mult = num_layers, hidden_mult
        self.mlp = mlp([hidden_mult * dim] * (num_layers - 1) + [dim], dropout, "mlp")

    def sublayers_and_shapes(self, dim):
        return [(self.mlp, (None, 2 * dim))]

    def fuse(self, vision, text, training):
        return self.mlp(ops.concatenate([vision, text], axis=-1), training=training)

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "hidden_mult": self.hidden_mult}


@keras.saving.register_keras_serializable(package="medfusion")
class ModalityDropoutFusion(VectorFusion):
    """``y = Linear(ReLU(Linear([v'; t'])))``; in training v' = 0 with probability ``p_img`` and t' = 0
    with ``p_txt``, drawn once per batch (both may drop at once), as the original.

    Example:

    >>> import numpy as np
    >>> v = t = np.ones((3, 8), "float32")
    >>> tuple(ModalityDropoutFusion(dim=8)(v, t).shape)
    (3, 8)
    """

    def __init__(self, dim, p_img=0.3, p_txt=0.3, dropout=0.1, seed=None, **kwargs):
        super().__init__(dim, dropout, **kwargs)
        self.p_img, self.p_txt, self.seed = p_img, p_txt, seed
        self.gated = mlp([dim, dim], 0.0, "gated", activation="relu")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def sublayers_and_shapes(self, dim):
        return [(self.gated, (None, 2 * dim))]

    def fuse(self, vision, text, training):
        if training:
            draw = keras.random.uniform((2,), seed=self.seed_generator)
            keep = ops.cast(draw >= ops.convert_to_tensor([self.p_img, self.p_txt]), vision.dtype)
            vision, text = vision * keep[0], text * keep[1]
        return self.gated(ops.concatenate([vision, text], axis=-1))

    def get_config(self):
        return {**super().get_config(), "p_img": self.p_img, "p_txt": self.p_txt, "seed": self.seed}

"""Building blocks shared by the two-vector fusion layers (`FUSION_LAYERS`): exact-GELU feed-forward
networks, torch-equivalent multi-head attention, a post-norm transformer encoder layer, and the base
class that gives every fusion layer its ``(vision, text) -> (batch, D)`` signature.

Conventions match PyTorch's so that the original's weights load exactly: LayerNorm epsilon 1e-5,
the erf GELU, ``keras.layers.MultiHeadAttention(num_heads=H, key_dim=D // H)`` for ``nn.MultiheadAttention``.
"""

import keras
from keras import ops

LAYER_NORM_EPSILON = 1e-5  # torch's default; Keras's is 1e-3


def exact_gelu(x):
    """The erf GELU of ``torch.nn.GELU()`` (Keras's default ``gelu`` is the same, stated explicitly)."""
    return keras.activations.gelu(x, approximate=False)


def layer_norm(name):
    """A LayerNormalization with torch's epsilon."""
    return keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=name)


def attention(dim, heads, dropout, name):
    """``nn.MultiheadAttention(dim, heads, dropout)`` as a Keras layer (call it as ``mha(query, value, key)``)."""
    if dim % heads:
        raise ValueError(f"The fusion width {dim} is not divisible by the number of heads {heads}.")
    return keras.layers.MultiHeadAttention(num_heads=heads, key_dim=dim // heads, dropout=dropout, name=name)


def mlp(
    widths, dropout, name, activation=exact_gelu, dropout_between=True, dropout_after_last=False, activate_last=False
):
    """``Linear -> activation [-> Dropout]`` blocks, one per width, as a `keras.Sequential`.

    The last Linear has no activation and no dropout unless asked (``activate_last``,
    ``dropout_after_last``); ``dropout_between=False`` leaves out the dropout after the hidden
    activations. This covers every feed-forward network of the original's fusion modules.
    """
    layers = []
    for index, width in enumerate(widths):
        last = index == len(widths) - 1
        activation_here = activation if (activate_last or not last) else None
        layers.append(keras.layers.Dense(width, activation=activation_here, name=f"{name}_linear_{index}"))
        if dropout and ((dropout_after_last and last) or (dropout_between and not last)):
            layers.append(keras.layers.Dropout(dropout))
    return keras.Sequential(layers, name=name)


def two_tokens(vision, text):
    """``stack([v, t], axis=1)``: the two modality vectors as a sequence of 2 tokens, ``(batch, 2, D)``."""
    return ops.stack([vision, text], axis=1)


def self_attention_summary(attention_layer, vision, text, training):
    """Mean over the 2 tokens of ``MHA(X, X, X)`` with ``X = [v; t]``."""
    tokens = two_tokens(vision, text)
    return ops.mean(attention_layer(tokens, tokens, tokens, training=training), axis=1)


def build_all(layer_shapes):
    """Build each ``(layer, input shape)`` pair; attention layers take ``(query, value)`` shape pairs."""
    for layer, shape in layer_shapes:
        if isinstance(layer, keras.layers.MultiHeadAttention):
            layer.build(*shape)
        else:
            layer.build(shape)


@keras.saving.register_keras_serializable(package="medfusion")
class PostNormEncoderLayer(keras.layers.Layer):
    """torch's ``TransformerEncoderLayer`` (post-norm, batch first, GELU, ff = ``ff_mult * D``).

    ``x = norm1(x + SA(x)); x = norm2(x + linear2(dropout(gelu(linear1(x)))))``, dropout also after SA
    and after linear2, as in torch.

    Example:

    >>> import numpy as np
    >>> tuple(PostNormEncoderLayer(dim=8, heads=2)(np.zeros((3, 2, 8), "float32")).shape)
    (3, 2, 8)
    """

    def __init__(self, dim, heads=4, ff_mult=4, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.heads, self.ff_mult, self.dropout = dim, heads, ff_mult, dropout
        self.self_attn = attention(dim, heads, dropout, "self_attn")
        self.linear1 = keras.layers.Dense(ff_mult * dim, activation=exact_gelu, name="linear1")
        self.linear2 = keras.layers.Dense(dim, name="linear2")
        self.norm1, self.norm2 = layer_norm("norm1"), layer_norm("norm2")
        self.dropouts = [keras.layers.Dropout(dropout) for _ in range(3)]

    def build(self, input_shape):
        hidden = (*input_shape[:-1], self.ff_mult * self.dim)
        build_all(
            [
                (self.self_attn, (input_shape, input_shape)),
                (self.linear1, input_shape),
                (self.linear2, hidden),
                (self.norm1, input_shape),
                (self.norm2, input_shape),
            ]
        )

    def call(self, x, training=None):
        attended = self.self_attn(x, x, x, training=training)
        x = self.norm1(x + self.dropouts[0](attended, training=training))
        hidden = self.dropouts[1](self.linear1(x), training=training)
        return self.norm2(x + self.dropouts[2](self.linear2(hidden), training=training))

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "heads": self.heads,
            "ff_mult": self.ff_mult,
            "dropout": self.dropout,
        }


class VectorFusion(keras.layers.Layer):
    """Base of the fusion layers: ``layer(vision, text)`` on two ``(batch, D)`` tensors -> ``(batch, D)``.

    Subclasses set ``self.sublayers_and_shapes(dim)`` (the sublayers and their input shapes, to build
    them before weights are loaded) and ``fuse(vision, text, training)``.
    """

    def __init__(self, dim, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.dropout = dim, dropout

    def build(self, vision_shape, text_shape=None):
        for shape in (vision_shape, text_shape or vision_shape):
            if shape[-1] != self.dim:
                raise ValueError(
                    f"{type(self).__name__} expects vectors of width {self.dim}; got shape {tuple(shape)}."
                )
        build_all(self.sublayers_and_shapes(self.dim))

    def sublayers_and_shapes(self, dim):
        raise NotImplementedError

    def call(self, vision, text, training=None):
        return self.fuse(vision, text, training)

    def compute_output_shape(self, vision_shape, text_shape=None):
        return tuple(vision_shape)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "dropout": self.dropout}

"""Functional building blocks shared by the models: spatial attention and fusion.

Each block wires named Keras layers into a functional graph and returns the
output tensor. Weighted layers stay top-level layers of the model (rather than
being hidden inside one composite layer) so that weight files written by the
original Keras 2 code, which are matched layer by layer, still load.
"""

import keras

from modeling.layers import AttentionBroadcast, AttentionWeightedPooling, GatedSum, LocallyConnected2D


def spatial_attention_pooling(features, conv_specs, kernel_initializer="he_normal", name="attention"):
    """Spatial attention head followed by attention-weighted pooling.

    A stack of ReLU convolutions ends in a per-position (locally connected)
    1x1 map with ``tanh``: one attention value per location in (-1, 1). The map
    is broadcast to every channel and used to pool ``features``.

    Args:
        features: tensor ``(batch, H, W, C)``, usually batch-normalised backbone output.
        conv_specs: sequence of ``(filters, kernel_size)`` for the convolutions.
        kernel_initializer: initializer of the convolutions.
        name: prefix of the layer names. The attention map is the output of
            the layer ``f"{name}_map"``.

    Returns:
        Tensor ``(batch, C)``: the attention-weighted mean of ``features``.
    """
    x = features
    for index, (filters, kernel_size) in enumerate(conv_specs, start=1):
        x = keras.layers.Conv2D(
            filters,
            kernel_size,
            padding="same",
            activation="relu",
            kernel_initializer=kernel_initializer,
            name=f"{name}_conv{index}",
        )(x)
    attention_map = LocallyConnected2D(1, 1, activation="tanh", name=f"{name}_map")(x)
    broadcast = AttentionBroadcast(features.shape[-1], name=f"{name}_broadcast")(attention_map)
    return AttentionWeightedPooling(name=f"{name}_pooling")([features, broadcast])


def cross_attention(query_vector, context_vector, num_heads, name="cross_attention"):
    """One query token attending to one context token, with a residual and LayerNorm.

    The context vector is projected to the query's width (Dense + ReLU), both
    become length-1 sequences, and ``MultiHeadAttention(num_heads,
    key_dim=width // num_heads)`` runs with the query as query and the
    projected context as key and value. With a single key the attention
    weight is always 1, so the output is a learned projection of the context
    added to the query (a fact of the original design, kept for fidelity).

    Args:
        query_vector: tensor ``(batch, D)``.
        context_vector: tensor ``(batch, G)``.
        num_heads: attention heads; ``D`` must be divisible by it.
        name: prefix of the layer names.

    Returns:
        Tensor ``(batch, D)``.
    """
    width = query_vector.shape[-1]
    if width % num_heads:
        raise ValueError(f"Query width {width} is not divisible by num_heads={num_heads}.")
    query = keras.layers.Reshape((1, width), name=f"{name}_query_token")(query_vector)
    context = keras.layers.Reshape((1, context_vector.shape[-1]), name=f"{name}_context_token")(
        context_vector
    )
    context = keras.layers.Dense(width, activation="relu", name=f"{name}_context_projection")(context)
    attended = keras.layers.MultiHeadAttention(
        num_heads=num_heads, key_dim=width // num_heads, name=f"{name}_mha"
    )(query=query, value=context, key=context)
    x = keras.layers.Add(name=f"{name}_residual")([query, attended])
    x = keras.layers.LayerNormalization(name=f"{name}_norm")(x)
    return keras.layers.Flatten(name=f"{name}_flatten")(x)


def gated_fusion(primary, secondary, name="fusion"):
    """Sigmoid-gated convex combination of two feature vectors.

    ``primary`` is projected linearly to the width ``G`` of ``secondary``; a
    gate ``z = sigmoid(W [projected; secondary] + b)`` of width ``G`` mixes them:
    ``z * projected + (1 - z) * secondary``. The gate is the output of the
    layer ``f"{name}_gate"`` (``z`` near 1 favours ``primary``).

    Args:
        primary: tensor ``(batch, D)``.
        secondary: tensor ``(batch, G)``.
        name: prefix of the layer names.

    Returns:
        Tensor ``(batch, G)``.
    """
    width = secondary.shape[-1]
    projected = keras.layers.Dense(width, name=f"{name}_projection")(primary)
    joint = keras.layers.Concatenate(name=f"{name}_concat")([projected, secondary])
    gate = keras.layers.Dense(width, activation="sigmoid", name=f"{name}_gate")(joint)
    return GatedSum(name=f"{name}_sum")([gate, projected, secondary])

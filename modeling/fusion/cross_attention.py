"""Cross-attention fusion: a query vector attends to a context vector (MultiHeadAttention).

Layers stay top-level in the functional graph so that the original's Keras 2 weight files,
matched layer by layer, still load.
"""

import keras


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
        num_heads: attention heads (``D >= num_heads``); each head projects to ``D // num_heads``
            (the original's ``key_dim``) and the output is projected back to ``D``.
        name: prefix of the layer names.

    Returns:
        Tensor ``(batch, D)``.
    """
    width = query_vector.shape[-1]
    if width < num_heads:
        raise ValueError(f"Query width {width} is smaller than num_heads={num_heads}: key_dim would be 0.")
    query = keras.layers.Reshape((1, width), name=f"{name}_query_token")(query_vector)
    context = keras.layers.Reshape((1, context_vector.shape[-1]), name=f"{name}_context_token")(context_vector)
    context = keras.layers.Dense(width, activation="relu", name=f"{name}_context_projection")(context)
    attended = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=width // num_heads, name=f"{name}_mha")(
        query=query, value=context, key=context
    )
    x = keras.layers.Add(name=f"{name}_residual")([query, attended])
    x = keras.layers.LayerNormalization(name=f"{name}_norm")(x)
    return keras.layers.Flatten(name=f"{name}_flatten")(x)

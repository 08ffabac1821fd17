"""Spatial attention pooling: an attention map over a feature grid, then attention-weighted pooling.

The block wires named Keras layers into a functional graph and returns the output tensor.
Weighted layers stay top-level layers of the model (rather than being hidden inside one
composite layer) so that weight files written by the original Keras 2 code, which are matched
layer by layer, still load.
"""

import keras

from modeling.layers import AttentionBroadcast, AttentionWeightedPooling, LocallyConnected2D


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

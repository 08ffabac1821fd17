"""Gated fusion: a sigmoid gate mixes two feature vectors into one."""

import keras

from modeling.layers import GatedSum


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

"""Tiny builds of the volume-fusion models for the registry test (`tests/modeling/test_registry.py`)."""

import keras
import numpy as np

from modeling import create_model

# A ResNet-18 at 1/16 width on 8^3 volumes. BatchNorm momentum 1.0 keeps the moving statistics fixed
# during the one training step: the registry check requires every non-trainable weight unchanged.
TINY = dict(
    volume_shape=(8, 8, 8, 1), meta_features=4, backbone={"depth": 18, "widen_factor": 0.0625, "bn_momentum": 1.0}
)
TINY_HEADS = dict(meta_units=(16, 8), dropout_rate=0.25)
NO_GRADIENT = {}


def build(name, **overrides):
    """A compiled tiny model (binary cross-entropy on the logit)."""
    kwargs = TINY | overrides
    short = name.split("/", 1)[1]
    if short in ("learned_feature_fusion", "image_only"):
        kwargs |= TINY_HEADS | {"image_units": 8, "hidden_units": 8}
    elif short == "metadata_only":
        kwargs |= TINY_HEADS | {"hidden_units": 8}
    elif short == "probability_fusion":
        kwargs |= TINY_HEADS | {"image_units": 8}
    elif short == "learned_feature_fusion_variant":
        kwargs |= TINY_HEADS | {"hidden_units": 8}
    else:
        kwargs |= {"hidden_units": (16, 8)}
    model = create_model(name, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def batch(model, size=5, seed=0):
    """Volumes in [0, 1], standard-normal metadata and 0/1 targets, as the model's input dict."""
    rng = np.random.default_rng(seed)
    inputs = {
        name: (
            rng.uniform(size=(size, *tensor.shape[1:]))
            if name == "volume"
            else rng.normal(size=(size, *tensor.shape[1:]))
        ).astype("float32")
        for name, tensor in model.input.items()
    }
    return inputs, (np.arange(size) % 2).astype("float32")[:, None]

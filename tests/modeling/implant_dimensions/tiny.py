"""Tiny builds of the implant-dimension models for the registry test (`tests/modeling/test_registry.py`)."""

import keras
import numpy as np

from modeling import create_model
from modeling.implant_dimensions import DIMENSIONS

# A one-block ViT, 16 wide, on 32 px images (2 x 2 patches of 16 px and the class token).
TINY_VIT = {"num_layers": 1, "hidden_dim": 16, "num_heads": 2, "mlp_dim": 16}
IMAGE_SIZE = 32
NUM_CLASSES = 3

NO_GRADIENT = {}


def build(name, **overrides):
    """A compiled tiny build: MSE on the dimensions for the regressors, cross-entropy for the classifier."""
    common = dict(image_size=IMAGE_SIZE, model_size="tiny", vit_overrides=TINY_VIT)
    if name.endswith("embedding_classifier"):
        model = create_model(name, num_classes=NUM_CLASSES, embed_dim=8, **common, **overrides)
        model.compile(
            keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=False,
        )
        return model
    if name.endswith("dual_embedding"):
        common.update(company_embed_dim=8, model_embed_dim=8)
    elif name.endswith("single_embedding"):
        common.update(embed_dim=8)
    # One output tensor: the shared round-trip checker compares `predict` results as one array;
    # the named outputs (dimensions and attention weights) are tested in test_models.py.
    model = create_model(name, **{"named_outputs": False, **common, **overrides})
    model.compile(keras.optimizers.Adam(1e-3), loss="mse", jit_compile=False)
    return model


def batch(model, size=5, seed=0):
    """ImageNet-normalised-like images; class labels or (length, diameter) in mm."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(size, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    if model.name == "embedding_classifier":
        return images, rng.integers(0, NUM_CLASSES, size=(size,))
    dimensions = model.output[DIMENSIONS] if isinstance(model.output, dict) else model.output
    targets = rng.uniform(3, 15, size=(size, dimensions.shape[-1])).astype("float32")
    return images, ({DIMENSIONS: targets} if isinstance(model.output, dict) else targets)

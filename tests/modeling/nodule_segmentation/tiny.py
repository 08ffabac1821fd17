"""Tiny builds of the nodule-segmentation models for the registry test (`tests/modeling/test_registry.py`)."""

import keras
import numpy as np

from modeling import create_model
from modeling.losses import ImprovedCombinedLoss

# name -> (weight path prefixes that never receive a gradient, why)
NO_GRADIENT = {
    name: (("nodule_feature_extractor_",), "the improved model only returns nodule_features (original design)")
    for name in ("nodule_segmentation/improved", "nodule_segmentation/anatomical")
}


def tiny_backbone(include_top=False, weights=None, input_shape=(64, 64, 3)):
    """Five stride-2 convolutions (ResNet's 1/32 grid, 24 channels); the last is named like ResNet-50's
    last stage (``conv5_...``), so the model's freezing leaves it, and only it, trainable."""
    del include_top, weights
    image = keras.Input(input_shape)
    x = image
    for stage, filters in enumerate((8, 8, 16, 16), start=1):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"conv{stage}_conv")(x)
    x = keras.layers.BatchNormalization(name="conv4_bn")(x)
    x = keras.layers.Conv2D(24, 3, strides=2, padding="same", activation="relu", name="conv5_block1_conv")(x)
    return keras.Model(image, x, name="tiny_resnet")


def build(name):
    """A compiled 64 px model on a five-layer backbone (2x2 grid of 24 channels), with the original's loss.

    BatchNorm momentum 1.0 keeps the moving statistics fixed in the one training step (the
    registry check wants every non-trainable weight unchanged); the layers still train.
    """
    model = create_model(name, img_size=64, backbone=tiny_backbone, bn_momentum=1.0)
    loss = ImprovedCombinedLoss(supervise_attention=name.endswith("improved"), total_epochs=10)
    model.compile(keras.optimizers.Adam(1e-3), loss=[loss], jit_compile=False)
    return model


def batch(model, size=5, seed=0):
    """DRR-like inputs in [-1024, 1024] for both inputs, and one square "nodule" mask per sample."""
    rng = np.random.default_rng(seed)
    drr = rng.uniform(-1024, 1024, size=(size, 64, 64, 1)).astype("float32")
    masks = np.zeros((size, 64, 64, 1), "float32")
    for i, (row, col) in enumerate(rng.integers(8, 48, size=(size, 2))):
        masks[i, row : row + 8, col : col + 8] = 1.0
    return [drr, drr], masks

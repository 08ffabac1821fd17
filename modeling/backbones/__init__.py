"""Backbones shared by the systems, and helpers to find and unfreeze nested sub-models.

* `applications`: the original's 15 `keras.applications` names (`BACKBONE_MAP`), `build_backbone`.
* `submodels`: `find_submodel`, `unfreeze_backbone_layers`, `unfreeze_last_layers`, `weighted_layers`.

* `hub`: keras-hub backbones (ViT, DeiT, BERT, DistilBERT) by size: offline, local preset or preset name.
"""

from modeling.backbones.applications import (
    BACKBONE_LAYER_NAME,
    BACKBONE_MAP,
    BACKBONE_PREPROCESSING,
    MIN_INPUT_SIZE,
    build_backbone,
    validate_img_dims,
)
from modeling.backbones.hub import BERT_SIZES, HUB_ARCHITECTURES, VIT_SIZES, hub_backbone
from modeling.backbones.submodels import (
    find_backbone,
    find_submodel,
    unfreeze_backbone_layers,
    unfreeze_last_layers,
    weighted_layers,
)

__all__ = [
    "BERT_SIZES",
    "HUB_ARCHITECTURES",
    "VIT_SIZES",
    "hub_backbone",
    "BACKBONE_LAYER_NAME",
    "BACKBONE_MAP",
    "BACKBONE_PREPROCESSING",
    "MIN_INPUT_SIZE",
    "build_backbone",
    "find_backbone",
    "find_submodel",
    "unfreeze_backbone_layers",
    "unfreeze_last_layers",
    "validate_img_dims",
    "weighted_layers",
]

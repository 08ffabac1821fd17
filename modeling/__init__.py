"""Models of the five systems, and the shared layers, blocks, losses and metrics they use.

Shared packages: `layers`, `blocks`, `fusion`, `losses`, `metrics`, `backbones`, `inference`.
One package per system: `boneage`, `nodule_segmentation`, `image_text_fusion`, `volume_fusion`,
`implant_dimensions`. Every model is in the
namespaced registry:

>>> from modeling import create_model, list_models
>>> "boneage/attn_sex_improved" in list_models()
True
"""

# Importing each system registers its models.
from modeling import boneage, image_text_fusion, implant_dimensions, nodule_segmentation, volume_fusion  # noqa: F401
from modeling.registry import create_model, get_builder, list_models, list_systems, register_model

__all__ = ["create_model", "get_builder", "list_models", "list_systems", "register_model"]

"""Models of the five systems, and the shared layers, blocks, losses and metrics they use.

Shared packages: `layers`, `blocks`, `fusion`, `losses`, `metrics`, `backbones`, `inference`.
One package per system: `boneage` (the others arrive with their issues). Every model is in the
namespaced registry:

>>> from modeling import create_model, list_models
>>> "boneage/attn_sex_improved" in list_models()
True
"""

from modeling import boneage  # noqa: F401  (registers the bone-age models)
from modeling.registry import create_model, get_builder, list_models, list_systems, register_model

__all__ = ["create_model", "get_builder", "list_models", "list_systems", "register_model"]

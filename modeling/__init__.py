"""Model builders, custom layers, losses and metrics (Keras 3, any backend).

Example:

>>> from modeling import create_model, list_models
>>> "attn_sex_improved" in list_models()
True
"""

from modeling import layers
from modeling.backbones import (
    BACKBONE_MAP,
    BACKBONE_PREPROCESSING,
    MIN_INPUT_SIZE,
    build_backbone,
    find_backbone,
    unfreeze_backbone_layers,
)
from modeling.boneage import (
    attn_model,
    attn_sex_model,
    attn_sex_model_improved,
    baseline_model,
    boneage_mean_std,
    sex_model,
)
from modeling.losses import LOSS_NAMES, Huber, SmoothL1, Wing, get_loss_function
from modeling.metrics import MAEMonths, mae_months
from modeling.optimizers import optimizer
from modeling.plotting import plot_history
from modeling.registry import create_model, get_builder, list_models, register_model

__all__ = [
    "BACKBONE_MAP",
    "BACKBONE_PREPROCESSING",
    "LOSS_NAMES",
    "MIN_INPUT_SIZE",
    "Huber",
    "MAEMonths",
    "SmoothL1",
    "Wing",
    "attn_model",
    "attn_sex_model",
    "attn_sex_model_improved",
    "baseline_model",
    "boneage_mean_std",
    "build_backbone",
    "create_model",
    "find_backbone",
    "get_builder",
    "get_loss_function",
    "layers",
    "list_models",
    "mae_months",
    "optimizer",
    "plot_history",
    "register_model",
    "sex_model",
    "unfreeze_backbone_layers",
]

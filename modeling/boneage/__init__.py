"""Bone-age models: the faithful port of the original's builders."""

from modeling.boneage.models import (
    attn_model,
    attn_sex_model,
    attn_sex_model_improved,
    baseline_model,
    sex_model,
)
from modeling.boneage.targets import boneage_mean_std

__all__ = [
    "attn_model",
    "attn_sex_model",
    "attn_sex_model_improved",
    "baseline_model",
    "boneage_mean_std",
    "sex_model",
]

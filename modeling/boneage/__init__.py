"""Bone age from a hand radiograph and sex: the faithful port of the original's builders.

Registered as ``boneage/baseline``, ``boneage/sex``, ``boneage/attn``, ``boneage/attn_sex`` and
``boneage/attn_sex_improved``; the builders keep the original's signatures, so code written for
``modeling_advanced.py`` only changes its import.

Example:

>>> from modeling.boneage import attn_sex_model_improved
>>> model = attn_sex_model_improved((64, 64, 3), backbone="mobilenet_v2", weights=None)
>>> model.output.shape
(None, 1)
"""

from modeling.boneage.models import (
    attn_model,
    attn_sex_model,
    attn_sex_model_improved,
    baseline_model,
    sex_model,
)
from modeling.boneage.optimizers import optimizer
from modeling.boneage.plotting import plot_history
from modeling.boneage.targets import boneage_mean_std

__all__ = [
    "attn_model",
    "attn_sex_model",
    "attn_sex_model_improved",
    "baseline_model",
    "boneage_mean_std",
    "optimizer",
    "plot_history",
    "sex_model",
]

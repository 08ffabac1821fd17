"""Registered losses, by task; every system picks its losses from here.

* `distillation`: `DistillationTerms` (vanilla, combined, crd, rkd, mmd knowledge distillation) and its terms.
* `focal`: `FocalLoss` (fixed or per-batch alpha) and `WeightedBinaryCrossentropy` (binary, on logits).
* `regression`: `Huber`, `SmoothL1`, `Wing` and `get_loss_function(name, ...)` (bone age's losses),
  `ScaledMeanSquaredError` (MSE per target scale; implant dimensions).
"""

from modeling.losses.distillation import LOSS_DEFAULTS, DistillationTerms
from modeling.losses.focal import FocalLoss, WeightedBinaryCrossentropy
from modeling.losses.regression import LOSS_NAMES, Huber, ScaledMeanSquaredError, SmoothL1, Wing, get_loss_function
from modeling.losses.segmentation import SEGMENTATION_LOSS_NAMES, ImprovedCombinedLoss, segmentation_loss

__all__ = ["LOSS_NAMES", "Huber", "ScaledMeanSquaredError", "SmoothL1", "Wing", "get_loss_function"]
__all__ += ["SEGMENTATION_LOSS_NAMES", "ImprovedCombinedLoss", "segmentation_loss"]
__all__ += ["FocalLoss", "WeightedBinaryCrossentropy"]
__all__ += ["LOSS_DEFAULTS", "DistillationTerms"]

"""Registered metrics, by task.

* `regression`: `MAEMonths` / `mae_months`, the absolute error in the target's own unit for a
  model trained on z-scored targets (bone age in months).
"""

from modeling.metrics.regression import MAEMonths, mae_months
from modeling.metrics.segmentation import SoftDiceScore, segmentation_metrics

__all__ = ["MAEMonths", "mae_months"]
__all__ += ["SoftDiceScore", "segmentation_metrics"]

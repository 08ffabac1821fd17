"""Registered losses, by task; every system picks its losses from here.

* `regression`: `Huber`, `SmoothL1`, `Wing` and `get_loss_function(name, ...)` (bone age's losses).
"""

from modeling.losses.regression import LOSS_NAMES, Huber, SmoothL1, Wing, get_loss_function

__all__ = ["LOSS_NAMES", "Huber", "SmoothL1", "Wing", "get_loss_function"]

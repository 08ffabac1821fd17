"""Training callbacks for the bone-age models (Keras 3, any backend).

* `CyclicalLearningRate` / `CyclicalSchedule`: cyclical learning rate, per batch.
* `BackboneFreezer`: progressive unfreezing of the backbone inside ``fit``.
* `predict_tta` / `TestTimeAugmentation`: test-time augmentation with real transforms.
* `GateWeightLogger` / `AttentionMapLogger`: gate weights and attention maps over training.

Example:

>>> from callbacks import BackboneFreezer, CyclicalLearningRate
>>> callbacks = [CyclicalLearningRate(1e-4, 1e-3, step_size=400), BackboneFreezer({5: 1.0})]
"""

from callbacks.cyclical_lr import CLR_MODES, CyclicalLearningRate, CyclicalSchedule
from callbacks.freezing import BackboneFreezer
from callbacks.interpretability import AttentionMapLogger, GateWeightLogger
from callbacks.transforms import (
    DEFAULT_TRANSFORMS,
    Flip,
    Rotation,
    Shift,
    ViewTransform,
    Zoom,
    apply_views,
    sample_views,
)
from callbacks.tta import REDUCTIONS, TestTimeAugmentation, predict_tta

__all__ = [
    "CLR_MODES",
    "DEFAULT_TRANSFORMS",
    "REDUCTIONS",
    "AttentionMapLogger",
    "BackboneFreezer",
    "CyclicalLearningRate",
    "CyclicalSchedule",
    "Flip",
    "GateWeightLogger",
    "Rotation",
    "Shift",
    "TestTimeAugmentation",
    "ViewTransform",
    "Zoom",
    "apply_views",
    "predict_tta",
    "sample_views",
]

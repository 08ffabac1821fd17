"""Keras callbacks shared by the systems (Keras 3, any backend).

* `CyclicalLearningRate` / `CyclicalSchedule`: cyclical learning rate, per batch.
* `BackboneFreezer`: progressive unfreezing of nested sub-models inside ``fit``.
* `TestTimeAugmentation`: validation metrics under `modeling.inference.predict_tta`.
* `GateWeightLogger` / `AttentionMapLogger`: a gate's weights and an attention map over training.

Example:

>>> from callbacks import BackboneFreezer, CyclicalLearningRate
>>> callbacks = [CyclicalLearningRate(1e-4, 1e-3, step_size=400), BackboneFreezer({5: 1.0})]
"""

from callbacks.cyclical_lr import CLR_MODES, CyclicalLearningRate, CyclicalSchedule
from callbacks.freezing import BackboneFreezer
from callbacks.interpretability import AttentionMapLogger, GateWeightLogger
from callbacks.tta import TestTimeAugmentation

__all__ = [
    "CLR_MODES",
    "AttentionMapLogger",
    "BackboneFreezer",
    "CyclicalLearningRate",
    "CyclicalSchedule",
    "GateWeightLogger",
    "TestTimeAugmentation",
]

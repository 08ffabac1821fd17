"""Keras callbacks shared by the systems (Keras 3, any backend).

* `CyclicalLearningRate` / `CyclicalSchedule`: cyclical learning rate, per batch.
* `BackboneFreezer`: progressive unfreezing of nested sub-models inside ``fit``.
* `TrainingStateBackup` / `with_training_state`: exact resume (optimizer, callbacks' counters).
* `LearningRateLogger`: ``learning_rate`` in every epoch's logs.
* `TestTimeAugmentation`: validation metrics under `modeling.inference.predict_tta`.
* `GateWeightLogger` / `AttentionMapLogger`: a gate's weights and an attention map over training.

Example:

>>> from callbacks import BackboneFreezer, CyclicalLearningRate
>>> callbacks = [CyclicalLearningRate(1e-4, 1e-3, step_size=400), BackboneFreezer({5: 1.0})]
"""

from callbacks.attention_weight import AttentionWeightSchedule
from callbacks.cyclical_lr import CLR_MODES, CyclicalLearningRate, CyclicalSchedule
from callbacks.freezing import BackboneFreezer
from callbacks.interpretability import AttentionMapLogger, GateWeightLogger
from callbacks.learning_rate_logger import LearningRateLogger, current_learning_rate
from callbacks.training_state import TrainingStateBackup, with_training_state
from callbacks.tta import TestTimeAugmentation

__all__ = [
    "AttentionWeightSchedule",
    "CLR_MODES",
    "AttentionMapLogger",
    "BackboneFreezer",
    "CyclicalLearningRate",
    "CyclicalSchedule",
    "GateWeightLogger",
    "LearningRateLogger",
    "TestTimeAugmentation",
    "TrainingStateBackup",
    "current_learning_rate",
    "with_training_state",
]

"""Segmentation metrics for models whose ``"segmentation"`` output is logits.

* `SoftDiceScore`: the original's validation Dice, ``(2 sum(p y) + eps) / (sum p + sum y + eps)`` on
  sigmoid probabilities without a threshold, pooled over each batch (eps 1e-7), averaged over batches.
* `segmentation_metrics`: `SoftDiceScore` plus core Keras `BinaryIoU`, `Precision` and `Recall` at
  logit 0 (probability 0.5), the metrics ``fit`` logs for the nodule model.

Per-case Dice, IoU, precision, recall and the Hausdorff distance of saved predictions are computed
with NumPy/SciPy in `training.nodule_segmentation.evaluation`.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="medfusion")
class SoftDiceScore(keras.metrics.Mean):
    """Mean over batches of the batch-pooled soft Dice of logits (the original's ``dice_coefficient``).

    Example:

    >>> import numpy as np
    >>> metric = SoftDiceScore()
    >>> metric.update_state(np.ones((1, 2, 2, 1), "float32"), np.zeros((1, 2, 2, 1), "float32"))
    >>> round(float(metric.result()), 4)  # 2 * 2 / (2 + 4)
    0.6667
    """

    def __init__(self, epsilon=1e-7, name="dice", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.epsilon = epsilon

    def update_state(self, y_true, y_pred, sample_weight=None):
        probabilities = ops.sigmoid(ops.cast(y_pred, "float32"))
        y_true = ops.cast(y_true, "float32")
        dice = (2.0 * ops.sum(probabilities * y_true) + self.epsilon) / (
            ops.sum(probabilities) + ops.sum(y_true) + self.epsilon
        )
        return super().update_state(dice)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def segmentation_metrics():
    """Fresh metrics for the ``"segmentation"`` logits: soft Dice, IoU, precision, recall at 0.5."""
    return [
        SoftDiceScore(),
        keras.metrics.BinaryIoU(target_class_ids=[1], threshold=0.0, name="iou"),
        keras.metrics.Precision(thresholds=0.0, name="precision"),
        keras.metrics.Recall(thresholds=0.0, name="recall"),
    ]

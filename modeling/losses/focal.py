"""Binary classification losses on logits for rare positives: focal loss with a per-batch alpha, weighted BCE.

`FocalLoss` is ``-alpha_t (1 - p_t)^gamma log(p_t)`` (Lin et al.) with soft labels; `alpha="dynamic"`
computes alpha in every batch from its labels. That rule is not public in the system it comes
from (seed 003); the one here is a **reconstruction**: ``alpha = clip(1 - mean(y), 0.05, 0.95)``
weights the positives, so the rarer class weighs more. `WeightedBinaryCrossentropy` is PyTorch's
``BCEWithLogitsLoss(pos_weight=...)`` with label smoothing, the original training function's loss.

Reductions are Keras' (``"sum_over_batch_size"``, ``"sum"``, ``"none"``); ``"mean"`` is accepted as
``"sum_over_batch_size"``.
"""

import keras
from keras import ops

REDUCTIONS = {"mean": "sum_over_batch_size", "sum": "sum", "none": "none", "sum_over_batch_size": "sum_over_batch_size"}


def smooth_labels(y_true, label_smoothing):
    """``y (1 - eps) + eps / 2``: Keras' and the original's binary label smoothing."""
    return y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing


def dynamic_alpha(y_true, clip=(0.05, 0.95)):
    """The batch's alpha (reconstruction): ``clip(1 - mean(y_true), *clip)``, a scalar."""
    return ops.clip(1.0 - ops.mean(y_true), clip[0], clip[1])


def _binary_crossentropy_with_logits(y, logits):
    """Soft-label BCE on logits, stable: ``max(z, 0) - z y + log(1 + exp(-|z|))``."""
    return ops.relu(logits) - logits * y + ops.log1p(ops.exp(-ops.abs(logits)))


def _checked_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {sorted(REDUCTIONS)}; got {reduction!r}.")
    return REDUCTIONS[reduction]


@keras.saving.register_keras_serializable(package="medfusion")
class FocalLoss(keras.losses.Loss):
    """Binary focal loss on logits with label smoothing and a fixed or per-batch ``alpha``.

    Per element, with ``y`` the smoothed label and ``p = sigmoid(logit)``:
    ``p_t = y p + (1 - y)(1 - p)``, ``alpha_t = y alpha + (1 - y)(1 - alpha)`` and
    ``loss = alpha_t (1 - p_t)^gamma BCE(y, p)``; elements are averaged over the last axis, as in
    `keras.losses.BinaryFocalCrossentropy`, which this equals for a fixed ``alpha``.

    Args:
        gamma: the focusing parameter (the reconstruction's 2).
        alpha: a float in [0, 1] (weight of the positives), or "dynamic": per batch,
            ``clip(1 - mean(y_true), *alpha_clip)`` from the unsmoothed labels (reconstruction).
        alpha_clip: the dynamic alpha's bounds.
        label_smoothing: ``eps`` in ``y (1 - eps) + eps / 2``.
        reduction: "mean" (= "sum_over_batch_size"), "sum" or "none".

    Example:

    >>> import numpy as np
    >>> y, z = np.array([[1.0], [0.0], [0.0], [0.0]]), np.zeros((4, 1))
    >>> float(FocalLoss(gamma=0.0, alpha="dynamic", reduction="sum")(y, z))  # alpha 0.75: 0.75 + 3 * 0.25
    1.0397...
    """

    def __init__(self, gamma=2.0, alpha="dynamic", alpha_clip=(0.05, 0.95), label_smoothing=0.0,
                 reduction="mean", name="focal_loss", dtype=None):  # fmt: skip
        super().__init__(name=name, reduction=_checked_reduction(reduction), dtype=dtype)
        if alpha != "dynamic" and not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1] or 'dynamic'; got {alpha!r}.")
        if gamma < 0 or not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"Need gamma >= 0 and 0 <= label_smoothing < 1; got {gamma}, {label_smoothing}.")
        self.gamma = float(gamma)
        self.alpha = alpha if alpha == "dynamic" else float(alpha)
        self.alpha_clip = tuple(float(v) for v in alpha_clip)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        alpha = dynamic_alpha(y_true, self.alpha_clip) if self.alpha == "dynamic" else self.alpha
        y = smooth_labels(y_true, self.label_smoothing)
        probability = ops.sigmoid(y_pred)
        p_t = y * probability + (1.0 - y) * (1.0 - probability)
        alpha_t = y * alpha + (1.0 - y) * (1.0 - alpha)
        loss = alpha_t * ops.power(1.0 - p_t, self.gamma) * _binary_crossentropy_with_logits(y, y_pred)
        return ops.mean(loss, axis=-1)

    def get_config(self):
        return super().get_config() | {
            "gamma": self.gamma,
            "alpha": self.alpha,
            "alpha_clip": list(self.alpha_clip),
            "label_smoothing": self.label_smoothing,
        }


@keras.saving.register_keras_serializable(package="medfusion")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """BCE on logits with the positives weighted ``pos_weight`` (PyTorch's ``BCEWithLogitsLoss(pos_weight)``).

    ``-(pos_weight y log sigmoid(z) + (1 - y) log sigmoid(-z))`` with ``y`` smoothed as in `FocalLoss`.

    Args:
        pos_weight: the positives' weight (the original's 3).
        label_smoothing: ``eps`` (the original command's default 0.01).
        reduction: as for `FocalLoss`.

    Example:

    >>> import numpy as np
    >>> float(WeightedBinaryCrossentropy(pos_weight=3.0)(np.array([[1.0], [0.0]]), np.zeros((2, 1))))  # 2 log 2
    1.3862...
    """

    def __init__(self, pos_weight=3.0, label_smoothing=0.0, reduction="mean", name="weighted_bce", dtype=None):
        super().__init__(name=name, reduction=_checked_reduction(reduction), dtype=dtype)
        self.pos_weight = float(pos_weight)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y = smooth_labels(ops.cast(y_true, y_pred.dtype), self.label_smoothing)
        loss = -(self.pos_weight * y * ops.log_sigmoid(y_pred) + (1.0 - y) * ops.log_sigmoid(-y_pred))
        return ops.mean(loss, axis=-1)

    def get_config(self):
        return super().get_config() | {"pos_weight": self.pos_weight, "label_smoothing": self.label_smoothing}

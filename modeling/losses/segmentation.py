"""Binary segmentation losses of the nodule-segmentation system (masks ``(B, H, W, 1)`` in {0, 1}).

* `SoftDiceLoss`, `FocalLossOnLogits`, `AttentionSupervisionLoss` and `ImprovedCombinedLoss`: the
  original's training loss (``improved_config.py``), with its dynamic attention weight in a
  non-trainable variable (set each epoch by `callbacks.AttentionWeightSchedule`).
* `TverskyLoss`, `FocalTverskyLoss`, `DiceFocalLoss`, `WeightedBCELoss`, `CombinedMedicalLoss`:
  the original's alternatives (``improved_losses.py``).

Losses named ``...OnLogits`` or with ``from_logits=True`` take the segmentation logits. Where a core
Keras loss computes the same quantity the tests compare with it: `FocalLossOnLogits` is
``0.25 * keras.losses.BinaryFocalCrossentropy(gamma=2, from_logits=True)``, `SoftDiceLoss` is
``keras.losses.Dice(axis=(1, 2))`` up to the smoothing, and `TverskyLoss(alpha, beta)` is
``keras.losses.Tversky(alpha=beta, beta=alpha)`` (Keras' ``alpha`` weighs the false negatives).
"""

import keras
from keras import ops

SEGMENTATION_LOSS_NAMES = ("improved", "tversky", "focal_tversky", "dice_focal", "weighted_bce", "combined_medical")
ALIGNMENTS = ("mse", "correlation")
_LOG_CLAMP = -100.0  # torch's binary_cross_entropy clamps log at -100
_GRADIENT_FLOOR = 1e-12  # torch's BCE backward divides by max(x (1 - x), 1e-12)


def _clamped_log(x):
    """``max(log(x), -100)`` as torch's BCE computes it, with a finite gradient: ``1 / x`` above 1e-12, 0 below.

    Differentiating the clamp itself gives ``0 * inf = NaN`` wherever a probability reaches exactly
    0 (or 1, for ``log(1 - x)``), which a saturated sigmoid does in float32. Torch's BCE backward,
    ``(x - y) / max(x (1 - x), 1e-12)``, differs only at such exactly saturated values, where the
    sigmoid passes no gradient to its logit anyway.
    """
    floored = ops.maximum(x, _GRADIENT_FLOOR)
    return ops.log(floored) + ops.stop_gradient(ops.maximum(ops.log(x), _LOG_CLAMP) - ops.log(floored))


def _mask(y_true, like):
    """The mask in ``y_true``: ``y_true["segmentation"]`` of a dict, else the first leaf (Keras may wrap
    a lone target in a list), cast like ``like``."""
    if isinstance(y_true, dict) and "segmentation" in y_true:
        y_true = y_true["segmentation"]
    return ops.cast(keras.tree.flatten(y_true)[0], like.dtype)


def _per_sample_mean(x):
    return ops.mean(ops.reshape(x, (ops.shape(x)[0], -1)), axis=-1)


def per_sample_pearson(a, b, epsilon=1e-12):
    """Pearson correlation of each sample's two maps ``(B, ...)``, flattened: differentiable, ``(B,)``.

    The analyser's figure (`training.nodule_segmentation.evaluation.pearson`) on the backend; 0 where
    either map is constant.

    Args:
        a, b: tensors of the same shape, batch first.
        epsilon: added under the square root.

    Example:

    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0, 3.0]], "float32")
    >>> [round(float(v), 4) for v in per_sample_pearson(x, -2 * x)]
    [-1.0]
    """
    a = ops.reshape(a, (ops.shape(a)[0], -1))
    b = ops.reshape(b, (ops.shape(b)[0], -1))
    a = a - ops.mean(a, axis=-1, keepdims=True)
    b = b - ops.mean(b, axis=-1, keepdims=True)
    return ops.sum(a * b, axis=-1) / ops.sqrt(ops.sum(a * a, axis=-1) * ops.sum(b * b, axis=-1) + epsilon)


def _bce_with_logits(y_true, logits):
    """Element-wise ``BCEWithLogits``: ``max(z, 0) - z y + log(1 + exp(-|z|))``."""
    return ops.relu(logits) - logits * y_true + ops.log1p(ops.exp(-ops.abs(logits)))


def _focal_on_logits(y_true, logits, alpha, gamma):
    bce = _bce_with_logits(y_true, logits)
    return _per_sample_mean(alpha * (1.0 - ops.exp(-bce)) ** gamma * bce)


def _soft_dice(y_true, probabilities, smooth):
    """Per sample ``1 - mean_C (2 sum(p y) + s) / (sum p + sum y + s)``, sums over H and W."""
    intersection = ops.sum(probabilities * y_true, axis=(1, 2))
    total = ops.sum(probabilities, axis=(1, 2)) + ops.sum(y_true, axis=(1, 2))
    return 1.0 - ops.mean((2.0 * intersection + smooth) / (total + smooth), axis=-1)


def _tversky_index(y_true, probabilities, alpha, beta, smooth):
    """``(TP + s) / (TP + alpha FP + beta FN + s)`` pooled over the batch (as ``view(-1)``)."""
    tp = ops.sum(probabilities * y_true)
    fp = ops.sum(probabilities * (1.0 - y_true))
    fn = ops.sum((1.0 - probabilities) * y_true)
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


class _SegmentationLoss(keras.losses.Loss):
    """Base: stores its constructor arguments and returns them from `get_config`."""

    def __init__(self, name, reduction="sum_over_batch_size", **settings):
        super().__init__(name=name, reduction=reduction)
        self._settings = settings
        for key, value in settings.items():
            setattr(self, key, value)

    def get_config(self):
        return {**super().get_config(), **self._settings}


@keras.saving.register_keras_serializable(package="medfusion")
class SoftDiceLoss(_SegmentationLoss):
    """The original's Dice loss: ``1 - mean over (B, C) of (2 sum(p y) + s) / (sum p + sum y + s)``.

    Sums run over H and W of each sample; ``p = sigmoid(z)`` with ``from_logits``.

    Example:

    >>> import numpy as np
    >>> y = np.ones((1, 2, 2, 1), "float32")
    >>> round(float(SoftDiceLoss(from_logits=False)(y, y)), 6)
    0.0
    """

    def __init__(self, from_logits=True, smooth=1e-6, name="soft_dice", reduction="sum_over_batch_size"):
        super().__init__(name, reduction, from_logits=from_logits, smooth=smooth)

    def call(self, y_true, y_pred):
        y_true = _mask(y_true, y_pred)
        return _soft_dice(y_true, ops.sigmoid(y_pred) if self.from_logits else y_pred, self.smooth)


@keras.saving.register_keras_serializable(package="medfusion")
class FocalLossOnLogits(_SegmentationLoss):
    """``mean(alpha * (1 - exp(-BCE))**gamma * BCE)`` on logits: the original's "BCE" term with focal on.

    Example:

    >>> import numpy as np
    >>> y, z = np.ones((1, 1, 1, 1), "float32"), np.zeros((1, 1, 1, 1), "float32")
    >>> round(float(FocalLossOnLogits()(y, z)), 6)  # 0.25 * 0.5**2 * log(2)
    0.043322
    """

    def __init__(self, alpha=0.25, gamma=2.0, name="focal_on_logits", reduction="sum_over_batch_size"):
        super().__init__(name, reduction, alpha=alpha, gamma=gamma)

    def call(self, y_true, y_pred):
        return _focal_on_logits(_mask(y_true, y_pred), y_pred, self.alpha, self.gamma)


def attention_supervision(mask, attention, focal_weight=0.5, alpha=0.25, gamma=2.0):
    """Per-sample ``BCE(A, G) + focal_weight * mean(alpha (1 - p_t)**gamma BCE(A, G))`` on probabilities.

    ``G`` is resized bilinearly to the attention's size when they differ; ``p_t`` is ``A`` where
    ``G == 1`` and ``1 - A`` elsewhere; the logarithms are clamped at -100 as in torch, with finite
    gradients where ``A`` is exactly 0 or 1.
    """
    mask = ops.cast(mask, attention.dtype)
    if tuple(mask.shape[1:3]) != tuple(attention.shape[1:3]):
        mask = ops.image.resize(mask, attention.shape[1:3], interpolation="bilinear", antialias=False)
    log_a, log_not_a = _clamped_log(attention), _clamped_log(1.0 - attention)
    bce = -(mask * log_a + (1.0 - mask) * log_not_a)
    p_t = ops.where(ops.equal(mask, 1.0), attention, 1.0 - attention)
    return _per_sample_mean(bce + focal_weight * alpha * (1.0 - p_t) ** gamma * bce)


@keras.saving.register_keras_serializable(package="medfusion")
class AttentionSupervisionLoss(_SegmentationLoss):
    """The supervised attention module's loss of an attention map (probabilities) against the mask.

    See `attention_supervision`.

    Example:

    >>> import numpy as np
    >>> y = np.array([[[[1.0]]]], "float32")
    >>> round(float(AttentionSupervisionLoss()(y, np.full((1, 1, 1, 1), 0.5, "float32"))), 6)  # log 2 * (1 + 0.5 * 0.25 * 0.25)
    0.714808
    """

    def __init__(
        self, focal_weight=0.5, alpha=0.25, gamma=2.0, name="attention_supervision", reduction="sum_over_batch_size"
    ):
        super().__init__(name, reduction, focal_weight=focal_weight, alpha=alpha, gamma=gamma)

    def call(self, y_true, y_pred):
        return attention_supervision(_mask(y_true, y_pred), y_pred, self.focal_weight, self.alpha, self.gamma)


def dynamic_attention_weight(epoch, total_epochs, attention_weight=0.5, floor=0.1):
    """``attention_weight * max(floor, 1 - epoch / (0.5 * total_epochs))``: 0.5 -> 0.05 by mid-training.

    Example:

    >>> [round(dynamic_attention_weight(e, 150), 4) for e in (0, 30, 67, 68, 149)]
    [0.5, 0.3, 0.0533, 0.05, 0.05]
    """
    return attention_weight * max(floor, 1.0 - epoch / (0.5 * total_epochs))


@keras.saving.register_keras_serializable(package="medfusion")
class ImprovedCombinedLoss(_SegmentationLoss):
    """The original's training loss of a model with outputs ``{"segmentation", "attention", ...}``.

    ``seg_weight * (bce_weight * focal_or_bce + dice_weight * dice)`` on the segmentation logits,
    ``+ w(e) * attention_supervision(A, G)`` when ``supervise_attention``, ``+ alignment_weight *
    MSE(resize(A), sigmoid(z))`` (or ``1 - pearson(...)`` with ``alignment="correlation"``). ``w(e)`` (`dynamic_attention_weight`) lives in the non-trainable
    variable `current_attention_weight`, starting at ``attention_weight``; compile with
    ``loss=[ImprovedCombinedLoss()]`` so the loss receives every output, and pass the mask as
    the target.

    Args:
        seg_weight, attention_weight, dice_weight, bce_weight: the original's defaults 1.0, 0.5, 0.3, 0.7.
        use_focal_loss: focal loss on the logits (`FocalLossOnLogits`) instead of plain BCE.
        alignment_weight: weight of the attention-segmentation alignment term (0.1).
        alignment: ``"mse"`` (the original) or ``"correlation"``: ``1 - `` the per-sample Pearson
            correlation of the two maps, the analyser's figure, which ignores the maps' scales (the
            MSE also asks the segmentation to take the attention's values).
        supervise_attention: add the attention supervision term (the unsupervised models: False).
        align_supervised_attention: let the MSE's gradient reach a supervised attention map (the
            original). ``False``: the supervised map is the segmentation's fixed target, so the
            alignment only moves the segmentation and the map learns from the mask alone (with the
            original, the decaying supervision weight soon left the MSE pulling the map toward the
            coarser segmentation). Unsupervised maps always get the gradient.
        total_epochs: ``E`` of the dynamic weight (the callback passes it too).

    Example:

    >>> import numpy as np
    >>> loss = ImprovedCombinedLoss()
    >>> y = np.ones((1, 4, 4, 1), "float32")
    >>> outputs = {"segmentation": np.zeros_like(y), "attention": np.full_like(y, 0.5)}
    >>> round(float(loss(y, outputs)), 4)  # 0.7 * 0.0433 + 0.3 * (1 - 16 / 24) + 0.5 * 0.7148
    0.4877
    """

    def __init__(
        self,
        seg_weight=1.0,
        attention_weight=0.5,
        dice_weight=0.3,
        bce_weight=0.7,
        use_focal_loss=True,
        alignment_weight=0.1,
        supervise_attention=True,
        align_supervised_attention=True,
        total_epochs=150,
        alignment="mse",
        name="improved_combined",
        reduction="sum_over_batch_size",
    ):
        super().__init__(
            name,
            reduction,
            seg_weight=seg_weight,
            attention_weight=attention_weight,
            dice_weight=dice_weight,
            bce_weight=bce_weight,
            use_focal_loss=use_focal_loss,
            alignment_weight=alignment_weight,
            supervise_attention=supervise_attention,
            align_supervised_attention=align_supervised_attention,
            total_epochs=total_epochs,
            alignment=alignment,
        )
        if alignment not in ALIGNMENTS:
            raise ValueError(f"`alignment` must be one of {ALIGNMENTS}; got {alignment!r}.")
        self.current_attention_weight = keras.Variable(
            float(attention_weight), trainable=False, dtype="float32", name="current_attention_weight"
        )

    def weight_at(self, epoch):
        """``w(epoch)`` of this loss (see `dynamic_attention_weight`)."""
        return dynamic_attention_weight(epoch, self.total_epochs, self.attention_weight)

    def terms(self, y_true, y_pred):
        """Every term per sample, unweighted: ``{"focal" or "bce", "dice", "attention", "alignment"}``."""
        logits = ops.cast(y_pred["segmentation"], "float32")
        attention = ops.cast(y_pred["attention"], "float32")
        mask = _mask(y_true, logits)
        probabilities = ops.sigmoid(logits)
        if self.use_focal_loss:
            terms = {"focal": _focal_on_logits(mask, logits, 0.25, 2.0)}
        else:  # plain BCE: the focal form with alpha 1, gamma 0
            terms = {"bce": _focal_on_logits(mask, logits, 1.0, 0.0)}
        terms["dice"] = _soft_dice(mask, probabilities, 1e-6)
        if self.supervise_attention:
            terms["attention"] = attention_supervision(mask, attention)
        if tuple(attention.shape[1:3]) != tuple(logits.shape[1:3]):
            attention = ops.image.resize(attention, logits.shape[1:3], interpolation="bilinear", antialias=False)
        if self.supervise_attention and not self.align_supervised_attention:
            attention = ops.stop_gradient(attention)
        if self.alignment == "mse":
            terms["alignment"] = _per_sample_mean((attention - probabilities) ** 2)
        else:
            terms["alignment"] = 1.0 - per_sample_pearson(attention, probabilities)
        return terms

    def call(self, y_true, y_pred):
        terms = self.terms(y_true, y_pred)
        classification = terms["focal"] if self.use_focal_loss else terms["bce"]
        total = self.seg_weight * (self.bce_weight * classification + self.dice_weight * terms["dice"])
        if self.supervise_attention:
            total = total + ops.cast(self.current_attention_weight, "float32") * terms["attention"]
        return total + self.alignment_weight * terms["alignment"]


@keras.saving.register_keras_serializable(package="medfusion")
class TverskyLoss(_SegmentationLoss):
    """``1 - TI`` with ``TI = (TP + s) / (TP + alpha FP + beta FN + s)`` pooled over the batch (0.3 / 0.7).

    Example:

    >>> import numpy as np
    >>> y, p = np.array([[1.0, 0.0]], "float32"), np.array([[1.0, 1.0]], "float32")
    >>> round(float(TverskyLoss(from_logits=False, smooth=0.0)(y, p)), 4)  # 1 - 1 / 1.3
    0.2308
    """

    def __init__(
        self, alpha=0.3, beta=0.7, smooth=1e-6, from_logits=True, name="tversky", reduction="sum_over_batch_size"
    ):
        super().__init__(name, reduction, alpha=alpha, beta=beta, smooth=smooth, from_logits=from_logits)

    def index(self, y_true, y_pred):
        probabilities = ops.sigmoid(y_pred) if self.from_logits else y_pred
        return _tversky_index(_mask(y_true, y_pred), probabilities, self.alpha, self.beta, self.smooth)

    def call(self, y_true, y_pred):
        return 1.0 - self.index(y_true, y_pred)


@keras.saving.register_keras_serializable(package="medfusion")
class FocalTverskyLoss(TverskyLoss):
    """``(1 - TI) ** gamma`` (gamma 2) of `TverskyLoss`'s index."""

    def __init__(
        self,
        alpha=0.3,
        beta=0.7,
        gamma=2.0,
        smooth=1e-6,
        from_logits=True,
        name="focal_tversky",
        reduction="sum_over_batch_size",
    ):
        super().__init__(alpha, beta, smooth, from_logits, name, reduction)
        self.gamma = gamma
        self._settings["gamma"] = gamma

    def call(self, y_true, y_pred):
        return (1.0 - self.index(y_true, y_pred)) ** self.gamma


@keras.saving.register_keras_serializable(package="medfusion")
class DiceFocalLoss(_SegmentationLoss):
    """``dice_weight * SoftDice + focal_weight * FocalLossOnLogits`` on logits (0.4 / 0.6)."""

    def __init__(self, dice_weight=0.4, focal_weight=0.6, name="dice_focal", reduction="sum_over_batch_size"):
        super().__init__(name, reduction, dice_weight=dice_weight, focal_weight=focal_weight)

    def call(self, y_true, y_pred):
        mask = _mask(y_true, y_pred)
        dice = _soft_dice(mask, ops.sigmoid(y_pred), 1e-6)
        return self.dice_weight * dice + self.focal_weight * _focal_on_logits(mask, y_pred, 0.25, 2.0)


@keras.saving.register_keras_serializable(package="medfusion")
class WeightedBCELoss(_SegmentationLoss):
    """BCE on logits with ``pos_weight = min(neg / pos * scale, cap)`` counted in each batch (100, 1000).

    Example:

    >>> import numpy as np
    >>> y = np.array([[1.0, 0.0, 0.0, 0.0]], "float32")
    >>> round(float(WeightedBCELoss()(y, np.zeros((1, 4), "float32"))), 4)  # (300 + 3) * log(2) / 4
    52.5059
    """

    def __init__(self, scale=100.0, cap=1000.0, name="weighted_bce", reduction="sum_over_batch_size"):
        super().__init__(name, reduction, scale=scale, cap=cap)

    def call(self, y_true, y_pred):
        mask = _mask(y_true, y_pred)
        positives = ops.sum(mask)
        negatives = ops.cast(ops.size(mask), mask.dtype) - positives
        pos_weight = ops.minimum(negatives / ops.maximum(positives, 1e-6) * self.scale, self.cap)
        log_p = -ops.softplus(-y_pred)  # log(sigmoid(z))
        log_not_p = -ops.softplus(y_pred)
        return _per_sample_mean(-(pos_weight * mask * log_p + (1.0 - mask) * log_not_p))


@keras.saving.register_keras_serializable(package="medfusion")
class CombinedMedicalLoss(_SegmentationLoss):
    """``0.4 Tversky + 0.3 FocalTversky + 0.3 WeightedBCE`` on logits."""

    def __init__(self, weights=(0.4, 0.3, 0.3), name="combined_medical", reduction="sum_over_batch_size"):
        super().__init__(name, reduction, weights=tuple(weights))
        self._parts = (TverskyLoss(), FocalTverskyLoss(), WeightedBCELoss())

    def get_config(self):
        return {**super().get_config(), "weights": list(self.weights)}

    def call(self, y_true, y_pred):
        return sum(w * part.call(y_true, y_pred) for w, part in zip(self.weights, self._parts, strict=True))


def segmentation_loss(name, **kwargs):
    """The loss called ``name`` (one of `SEGMENTATION_LOSS_NAMES`); ``"improved"`` takes `ImprovedCombinedLoss` kwargs.

    Example:

    >>> type(segmentation_loss("tversky")).__name__
    'TverskyLoss'
    """
    classes = dict(
        zip(
            SEGMENTATION_LOSS_NAMES,
            (ImprovedCombinedLoss, TverskyLoss, FocalTverskyLoss, DiceFocalLoss, WeightedBCELoss, CombinedMedicalLoss),
            strict=True,
        )
    )
    if name not in classes:
        raise ValueError(f"Unknown segmentation loss {name!r}; choose one of {', '.join(SEGMENTATION_LOSS_NAMES)}.")
    return classes[name](**kwargs)

"""Regression losses: the originals' (Huber, smooth L1, wing), a name-based factory, and MSE per target scale."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="medfusion")
class Huber(keras.losses.Loss):
    """Huber loss: quadratic for small errors, linear for large ones.

    With ``d = |y_true - y_pred|``: ``0.5 * d**2`` where ``d <= delta``, else
    ``delta * d - 0.5 * delta**2``; averaged over the last axis. Same values as
    `keras.losses.Huber`, whose ``get_config`` (Keras 3.15) omits ``delta``, so
    a saved model would reload with ``delta=1``; this one keeps it.

    Args:
        delta: where the loss turns from quadratic to linear.
        reduction, name, dtype: as for every `keras.losses.Loss`.

    Example:

    >>> float(Huber(delta=1.0)([[0.0, 0.0]], [[0.5, 3.0]]))
    1.3125
    """

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        if not delta > 0:
            raise ValueError(f"`delta` must be positive; got {delta!r}.")
        self.delta = float(delta)

    def call(self, y_true, y_pred):
        diff = _absolute_error(y_true, y_pred)
        quadratic = 0.5 * ops.square(diff)
        linear = self.delta * diff - 0.5 * self.delta**2
        return ops.mean(ops.where(diff <= self.delta, quadratic, linear), axis=-1)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


@keras.saving.register_keras_serializable(package="medfusion")
class SmoothL1(keras.losses.Loss):
    """Smooth L1 loss with the Fast R-CNN ``sigma`` parameter.

    With ``d = y_true - y_pred``: ``0.5 * sigma**2 * d**2`` where
    ``|d| < 1 / sigma**2``, else ``|d| - 0.5 / sigma**2``; averaged over the last axis.

    Args:
        sigma: sharpness; the quadratic zone is ``|d| < 1 / sigma**2``.
        reduction, name, dtype: as for every `keras.losses.Loss`.

    Example:

    >>> float(SmoothL1(sigma=1.0)([[0.0, 0.0]], [[0.5, 3.0]]))
    1.3125
    """

    def __init__(self, sigma=1.0, reduction="sum_over_batch_size", name="smooth_l1", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        if not sigma > 0:
            raise ValueError(f"`sigma` must be positive; got {sigma!r}.")
        self.sigma = float(sigma)

    def call(self, y_true, y_pred):
        diff = _absolute_error(y_true, y_pred)
        sigma_sq = self.sigma**2
        quadratic = 0.5 * sigma_sq * ops.square(diff)
        linear = diff - 0.5 / sigma_sq
        return ops.mean(ops.where(diff < 1.0 / sigma_sq, quadratic, linear), axis=-1)

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma}


@keras.saving.register_keras_serializable(package="medfusion")
class Wing(keras.losses.Loss):
    """Wing loss (Feng et al., 2018): logarithmic near zero, linear far away.

    With ``d = |y_true - y_pred|``: ``width * ln(1 + d / curvature)`` where
    ``d < width``, else ``d - C`` with ``C = width - width * ln(1 + width / curvature)``,
    which makes the two pieces meet; averaged over the last axis.

    Args:
        width: ``w``, the half-width of the logarithmic zone.
        curvature: ``epsilon``, how sharply the log bends near zero.
        reduction, name, dtype: as for every `keras.losses.Loss`.

    Example:

    >>> round(float(Wing()([[0.0]], [[2.0]])), 4)  # 10 * ln(2)
    6.9315
    """

    def __init__(self, width=10.0, curvature=2.0, reduction="sum_over_batch_size", name="wing", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        if not width > 0 or not curvature > 0:
            raise ValueError(f"`width` and `curvature` must be positive; got {width!r}, {curvature!r}.")
        self.width = float(width)
        self.curvature = float(curvature)

    def call(self, y_true, y_pred):
        diff = _absolute_error(y_true, y_pred)
        offset = self.width - self.width * math.log1p(self.width / self.curvature)
        logarithmic = self.width * ops.log1p(diff / self.curvature)
        return ops.mean(ops.where(diff < self.width, logarithmic, diff - offset), axis=-1)

    def get_config(self):
        return {**super().get_config(), "width": self.width, "curvature": self.curvature}


@keras.saving.register_keras_serializable(package="medfusion")
class ScaledMeanSquaredError(keras.losses.Loss):
    """Mean squared error of ``(y_true - y_pred) / scale``, one scale per target column.

    With each target's training standard deviation as its scale, every target weighs the same in
    standard units; plain MSE on targets of different spread (implant length sd 2.8 mm, diameter
    0.87 mm) lets the widest one dominate the gradient.

    Args:
        scale: one positive value per column of the targets (in their units).
        reduction, name, dtype: as for every `keras.losses.Loss`.

    Example:

    >>> float(ScaledMeanSquaredError(scale=[2.0, 0.5])([[10.0, 4.0]], [[12.0, 3.5]]))  # (1 + 1) / 2
    1.0
    """

    def __init__(self, scale, reduction="sum_over_batch_size", name="scaled_mse", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        self.scale = [float(v) for v in scale]
        if not self.scale or min(self.scale) <= 0:
            raise ValueError(f"`scale` must be one positive value per target; got {scale!r}.")

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        scale = ops.convert_to_tensor(self.scale, y_pred.dtype)
        return ops.mean(ops.square((ops.cast(y_true, y_pred.dtype) - y_pred) / scale), axis=-1)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def _absolute_error(y_true, y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    return ops.abs(ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype) - y_pred)


LOSS_NAMES = ("mae", "mse", "huber", "smooth_l1", "wing")
_LOSS_PARAMETERS = ("huber_delta", "smooth_l1_sigma", "wing_w", "wing_epsilon")


def get_loss_function(loss_type, **params):
    """A loss object by the original's ``--loss_type`` name.

    Args:
        loss_type: one of ``"mae"``, ``"mse"``, ``"huber"``, ``"smooth_l1"``, ``"wing"``.
        **params: the original's CLI parameters: ``huber_delta`` (1.0),
            ``smooth_l1_sigma`` (1.0), ``wing_w`` (10.0), ``wing_epsilon`` (2.0).
            Parameters of other losses are accepted and ignored, so one set of
            CLI values can be passed whatever the loss.

    Returns:
        A `keras.losses.Loss`.

    Raises:
        ValueError: for an unknown name or parameter.

    Example:

    >>> get_loss_function("huber", huber_delta=0.5).get_config()["delta"]
    0.5
    """
    unknown = sorted(set(params) - set(_LOSS_PARAMETERS))
    if unknown:
        raise ValueError(f"Unknown loss parameter(s) {unknown}; expected some of {list(_LOSS_PARAMETERS)}.")
    if loss_type == "mae":
        return keras.losses.MeanAbsoluteError()
    if loss_type == "mse":
        return keras.losses.MeanSquaredError()
    if loss_type == "huber":
        return Huber(delta=params.get("huber_delta", 1.0))
    if loss_type == "smooth_l1":
        return SmoothL1(sigma=params.get("smooth_l1_sigma", 1.0))
    if loss_type == "wing":
        return Wing(width=params.get("wing_w", 10.0), curvature=params.get("wing_epsilon", 2.0))
    raise ValueError(f"Unknown loss '{loss_type}'. Choose one of: {', '.join(LOSS_NAMES)}.")

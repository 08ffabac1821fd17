"""Errors in the target's own unit (bone age: months) for models trained on z-scored targets."""

import keras
from keras import ops


def mae_months(y_true, y_pred, boneage_mean=0.0, boneage_std=1.0):
    """Absolute error in months per sample, for z-scored targets and predictions.

    Both are mapped back to months with ``z * boneage_std + boneage_mean`` (the
    mean cancels in the difference; it is kept so the call reads as the
    original intended).

    Args:
        y_true, y_pred: tensors of z-scores, shape ``(batch, 1)``.
        boneage_mean, boneage_std: the training set's mean and standard deviation.

    Returns:
        Tensor ``(batch,)`` of absolute errors in months.

    Example:

    >>> import keras
    >>> keras.ops.convert_to_numpy(mae_months([[1.0]], [[0.5]], 120.0, 40.0)).tolist()
    [20.0]
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    months_true = y_true * boneage_std + boneage_mean
    months_pred = y_pred * boneage_std + boneage_mean
    return ops.mean(ops.abs(months_true - months_pred), axis=-1)


@keras.saving.register_keras_serializable(package="medfusion")
class MAEMonths(keras.metrics.MeanMetricWrapper):
    """Mean absolute error in months, for a model trained on z-scored bone age.

    Args:
        boneage_mean: the training set's mean bone age in months.
        boneage_std: the training set's standard deviation in months.
        name, dtype: as for every `keras.metrics.Metric`.

    Example:

    >>> metric = MAEMonths(boneage_mean=120.0, boneage_std=40.0)
    >>> metric.update_state([[0.0], [1.0]], [[0.5], [1.0]])
    >>> float(metric.result())
    10.0
    """

    def __init__(self, boneage_mean, boneage_std, name="mae_months", dtype=None):
        if not boneage_std > 0:
            raise ValueError(f"`boneage_std` must be positive; got {boneage_std!r}.")
        super().__init__(
            fn=mae_months,
            name=name,
            dtype=dtype,
            boneage_mean=float(boneage_mean),
            boneage_std=float(boneage_std),
        )
        self.boneage_mean = float(boneage_mean)
        self.boneage_std = float(boneage_std)

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype,
            "boneage_mean": self.boneage_mean,
            "boneage_std": self.boneage_std,
        }

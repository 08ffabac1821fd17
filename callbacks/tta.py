"""`TestTimeAugmentation`: validation metrics under test-time augmentation during ``fit``.

The augmentation itself is `modeling.inference.predict_tta`; this callback runs it at chosen epochs.
"""

import math

import keras
from keras import ops

from modeling.inference.batches import is_dataset, split_inputs_targets
from modeling.inference.transforms import DEFAULT_TRANSFORMS, sample_views
from modeling.inference.tta import REDUCTIONS, predict_views
from modeling.metrics import mae_months


class TestTimeAugmentation(keras.callbacks.Callback):
    """Reports validation metrics under test-time augmentation during ``fit``.

    At the chosen epochs it adds ``val_tta_mae`` (and ``val_tta_mae_months``
    when ``boneage_std`` is given) to the epoch logs, so History, CSVLogger and
    TensorBoard get them; other epochs get NaN so every column has one value
    per epoch (place this callback before CSVLogger/TensorBoard). At the end
    of training it evaluates once more (or reuses the last epoch's result) and
    stores the metrics in ``results["final"]``; ``results`` maps each
    evaluated epoch of the latest ``fit`` to its metrics.

    Args:
        validation_data: ``(inputs, targets)`` arrays or a dataset of them,
            in the forms `predict_tta` accepts.
        epochs: 0-based epochs at which to evaluate; ``None`` means every
            epoch, ``()`` only at the end of training.
        transforms, n, seed, reduce, batch_size, fill_mode: as for `predict_tta`.
        boneage_mean, boneage_std: the training set's bone-age mean and
            standard deviation in months, for ``val_tta_mae_months``.
        verbose: print the metrics whenever they are computed.

    Example:

    >>> import numpy as np
    >>> images, sex = np.zeros((4, 32, 32, 3), "float32"), np.ones((4, 1), "float32")
    >>> tta = TestTimeAugmentation(([images, sex], np.zeros((4, 1))), epochs=[9, 19],
    ...                            n=8, boneage_std=28.1)
    >>> tta.metric_names
    ['val_tta_mae', 'val_tta_mae_months']
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        validation_data,
        epochs=(),
        transforms=DEFAULT_TRANSFORMS,
        n=8,
        seed=0,
        reduce="mean",
        batch_size=16,
        fill_mode="nearest",
        boneage_mean=0.0,
        boneage_std=None,
        verbose=0,
    ):
        super().__init__()
        if reduce not in REDUCTIONS:
            raise ValueError(f"`reduce` must be one of {REDUCTIONS}; got {reduce!r}.")
        if boneage_std is not None and not boneage_std > 0:
            raise ValueError(f"`boneage_std` must be positive; got {boneage_std!r}.")
        if epochs is not None:
            epochs = sorted(set(epochs))
            if any(isinstance(e, bool) or int(e) != e or e < 0 for e in epochs):
                raise ValueError(f"`epochs` must be 0-based epoch numbers; got {epochs!r}.")
        sample_views(transforms, n, seed, 1, 1)  # validates n and the transforms now
        self.validation_data = validation_data
        self.epochs = epochs
        self.transforms = tuple(transforms)
        self.n = int(n)
        self.seed = seed
        self.reduce = reduce
        self.batch_size = batch_size
        self.fill_mode = fill_mode
        self.boneage_mean = float(boneage_mean)
        self.boneage_std = None if boneage_std is None else float(boneage_std)
        self.verbose = verbose
        self.results = {}
        self._last_epoch = None

    @property
    def metric_names(self):
        """The log keys this callback writes."""
        names = ["val_tta_mae"]
        if self.boneage_std is not None:
            names.append("val_tta_mae_months")
        return names

    def get_config(self):
        """The callback's settings (the validation data itself is not part of the config)."""
        return {
            "epochs": None if self.epochs is None else list(self.epochs),
            "transforms": [
                transform.get_config() | {"class_name": type(transform).__name__} for transform in self.transforms
            ],
            "n": self.n,
            "seed": self.seed,
            "reduce": self.reduce,
            "batch_size": self.batch_size,
            "fill_mode": self.fill_mode,
            "boneage_mean": self.boneage_mean,
            "boneage_std": self.boneage_std,
        }

    def on_train_begin(self, logs=None):
        self.results = {}
        self._last_epoch = None
        if not is_dataset(self.validation_data):
            _, targets = split_inputs_targets(self.validation_data, len(self.model.inputs))
            if targets is None:
                raise ValueError("TestTimeAugmentation needs targets: pass validation_data=(inputs, targets).")

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        if self.epochs == []:
            return
        if self.epochs is None or epoch in self.epochs:
            metrics = self.evaluate()
            self.results[epoch] = metrics
            self._report(f"Epoch {epoch + 1}", metrics)
        else:
            metrics = dict.fromkeys(self.metric_names, math.nan)
        if logs is not None:
            logs.update(metrics)

    def on_train_end(self, logs=None):
        if self._last_epoch is None:
            return
        metrics = self.results.get(self._last_epoch) or self.evaluate()
        self.results["final"] = metrics
        self._report("End of training", metrics)
        if logs is not None:
            logs.update(metrics)

    def evaluate(self):
        """Metrics of the current model on the validation data, as a dict."""
        predictions, targets = predict_views(
            self.model,
            self.validation_data,
            self.transforms,
            self.n,
            self.seed,
            self.reduce,
            self.batch_size,
            self.fill_mode,
        )
        if targets is None:
            raise ValueError("The validation dataset yields no targets; yield (inputs, targets).")
        targets = targets.reshape(predictions.shape).astype(predictions.dtype)
        metrics = {"val_tta_mae": float(ops.convert_to_numpy(ops.mean(ops.abs(targets - predictions))))}
        if self.boneage_std is not None:
            errors = mae_months(targets, predictions, self.boneage_mean, self.boneage_std)
            metrics["val_tta_mae_months"] = float(ops.convert_to_numpy(ops.mean(errors)))
        return metrics

    def _report(self, when, metrics):
        if self.verbose:
            values = ", ".join(f"{name}={value:.4f}" for name, value in metrics.items())
            print(f"{when}: test-time augmentation ({self.n} views): {values}")

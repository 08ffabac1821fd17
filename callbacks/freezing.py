"""Progressive unfreezing of a frozen backbone during ``fit``, with an optional learning-rate multiplier.

Keras 3 fixes the set of trainable variables when the optimizer is built and
when the train function is traced. Changing ``layer.trainable`` inside ``fit``
is not enough on its own (Keras 3.15): on TF the traced train function
keeps updating the old set, so the new weights silently never change; on JAX
the training state no longer matches the variables and ``fit`` fails. A new
train function alone fails too, since the optimizer does not know the new
variables. `BackboneFreezer` therefore does three things when the trainable
set changes at the start of an epoch:

1. sets the layer flags;
2. replaces the optimizer by a fresh one of the same class and configuration,
   built for the new trainable variables, and copies over the old optimizer's
   state (iteration count, learning rate, and the slots, such as Adam's
   moments, of weights that were already trainable);
3. forces new train, test and predict functions.

JAX's ``fit`` re-reads the training state after ``on_epoch_begin``, and TF's
``fit`` calls ``model.train_function`` afresh at every step, so the change
takes effect in the same epoch.

Keras 3 has no per-variable learning rate. The multiplier wraps the
optimizer's per-variable ``update_step``: backbone weights are updated with
``learning_rate * lr_multiplier``, all others with ``learning_rate``. This is a
true learning-rate multiplier for any optimizer on TF and JAX (for Adam,
scaling the gradients instead would change almost nothing). Weight decay
still uses the unscaled rate. The torch backend's optimizers update all
weights in one fused call, so the multiplier is refused there.
"""

import math
import numbers

import keras

from modeling.backbones import find_backbone


class BackboneFreezer(keras.callbacks.Callback):
    """Keep the backbone frozen for the first epochs, then unfreeze it progressively.

    ``schedule`` maps a 0-based epoch to how much of the backbone is trainable
    from that epoch on: an ``int`` K means the last K layers that own weights,
    a ``float`` in (0, 1] that fraction of them (rounded up). Before the first
    scheduled epoch the backbone is frozen, so ``{20: 0.5, 40: 1.0}`` trains
    the head only for 20 epochs, then the top half of the backbone, then all
    of it. BatchNormalization layers stay frozen, hence in inference mode,
    unless ``freeze_batchnorm=False``.

    The backbone is the model's layer named "backbone" (else its first nested
    model), as built by `modeling`. After every epoch the logs get
    ``backbone_trainable_weights`` (trainable weight tensors in the backbone)
    and ``backbone_trainable_params`` (their total size); ``changes`` lists
    ``(epoch, unfrozen_layers, trainable_weights)`` for every change.

    Args:
        schedule: dict ``{epoch: amount}`` (or a sequence of pairs) with
            epochs in increasing order and the amount never decreasing.
        lr_multiplier: learning-rate factor for the backbone's weights, e.g.
            0.1 to fine-tune the backbone at a tenth of the head's rate.
        freeze_batchnorm: keep the backbone's BatchNormalization layers frozen.
        verbose: print a line at every change.

    Example:

    >>> freezer = BackboneFreezer({20: 0.5, 40: 1.0}, lr_multiplier=0.1)
    >>> freezer.get_config()["schedule"]
    [[20, 0.5], [40, 1.0]]
    """

    def __init__(self, schedule, lr_multiplier=1.0, freeze_batchnorm=True, verbose=0):
        super().__init__()
        self.schedule = _parse_schedule(schedule)
        if not lr_multiplier > 0:
            raise ValueError(f"`lr_multiplier` must be positive; got {lr_multiplier!r}.")
        if lr_multiplier != 1 and keras.backend.backend() == "torch":
            raise NotImplementedError(
                "`lr_multiplier` is not supported with the torch backend, whose optimizers "
                "update all weights in one fused step; use lr_multiplier=1.0 there."
            )
        self.lr_multiplier = float(lr_multiplier)
        self.freeze_batchnorm = bool(freeze_batchnorm)
        self.verbose = verbose
        self.changes = []
        self._backbone = None
        self._candidates = []
        self._layer_counts = []

    def on_train_begin(self, logs=None):
        self._backbone = find_backbone(self.model)
        self._candidates = [
            layer
            for layer in self._backbone.layers
            if layer.weights
            and not (self.freeze_batchnorm and isinstance(layer, keras.layers.BatchNormalization))
        ]
        self._layer_counts = [(epoch, self._layer_count(amount)) for epoch, amount in self.schedule]
        counts = [count for _, count in self._layer_counts]
        if counts != sorted(counts):
            raise ValueError(
                f"The schedule unfreezes {counts} layers in turn; it must never re-freeze layers."
            )
        if self.lr_multiplier != 1.0:
            self._scale_backbone_rate(self.model.optimizer)
            self.model.make_train_function(force=True)

    def on_epoch_begin(self, epoch, logs=None):
        target = 0
        for start, count in self._layer_counts:
            if epoch >= start:
                target = count
        before = [id(variable) for variable in self.model.trainable_variables]
        self._unfreeze_last(target)
        if [id(variable) for variable in self.model.trainable_variables] == before:
            return
        self._rebuild_training()
        weights = len(self._backbone.trainable_weights)
        self.changes.append((epoch, target, weights))
        if self.verbose:
            print(
                f"Epoch {epoch + 1}: {target}/{len(self._candidates)} backbone layers trainable "
                f"({weights} weight tensors)."
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            trainable = self._backbone.trainable_weights
            logs["backbone_trainable_weights"] = len(trainable)
            logs["backbone_trainable_params"] = sum(int(keras.ops.size(w)) for w in trainable)

    def on_train_end(self, logs=None):
        # Leave no wrapper behind: a later fit without this callback trains normally.
        if self.model.optimizer.__dict__.pop("update_step", None) is not None:
            self.model.make_train_function(force=True)

    def get_config(self):
        return {
            "schedule": [[epoch, amount] for epoch, amount in self.schedule],
            "lr_multiplier": self.lr_multiplier,
            "freeze_batchnorm": self.freeze_batchnorm,
            "verbose": self.verbose,
        }

    def _layer_count(self, amount):
        available = len(self._candidates)
        if isinstance(amount, numbers.Integral):
            if amount > available:
                raise ValueError(
                    f"The schedule asks for {amount} layers but the backbone "
                    f"'{self._backbone.name}' has only {available} layers to unfreeze."
                )
            return int(amount)
        # Rounded first so that e.g. 0.3 * 10 counts 3 layers, not 4.
        return math.ceil(round(amount * available, 6))

    def _unfreeze_last(self, count):
        if count == 0:
            self._backbone.trainable = False
            return
        self._backbone.trainable = True
        unfrozen = {id(layer) for layer in self._candidates[len(self._candidates) - count :]}
        for layer in self._backbone.layers:
            layer.trainable = id(layer) in unfrozen

    def _rebuild_training(self):
        model = self.model
        model.optimizer = _rebuilt_optimizer(model.optimizer, model.trainable_variables)
        if self.lr_multiplier != 1.0:
            self._scale_backbone_rate(model.optimizer)
        model.make_train_function(force=True)
        model.make_test_function(force=True)
        model.make_predict_function(force=True)

    def _scale_backbone_rate(self, optimizer):
        # Optimizers update each variable in `update_step(gradient, variable,
        # learning_rate)`; the TF backend passes the native variable there, so
        # variables are matched by the optimizer's own key.
        key = optimizer._var_key
        scaled = {key(variable) for variable in self._backbone.weights}
        multiplier = self.lr_multiplier
        update = type(optimizer).update_step.__get__(optimizer)

        def update_step(gradient, variable, learning_rate):
            if key(variable) in scaled:
                learning_rate = learning_rate * multiplier
            return update(gradient, variable, learning_rate)

        optimizer.update_step = update_step


def _parse_schedule(schedule):
    pairs = list(schedule.items()) if isinstance(schedule, dict) else [tuple(p) for p in schedule]
    if not pairs:
        raise ValueError("The unfreezing schedule is empty; give at least one {epoch: amount}.")
    parsed = []
    for epoch, amount in pairs:
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"Schedule epochs must be integers >= 0; got {epoch!r}.")
        if parsed and epoch <= parsed[-1][0]:
            raise ValueError(
                f"Schedule epochs must be in increasing order; got {[e for e, _ in pairs]}."
            )
        if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
            raise ValueError(f"Schedule amounts must be numbers; got {amount!r} at epoch {epoch}.")
        if isinstance(amount, numbers.Integral):
            if amount < 1:
                raise ValueError(
                    f"A layer count must be >= 1; got {amount!r} at epoch {epoch} "
                    "(the backbone is frozen before the first scheduled epoch)."
                )
            amount = int(amount)
        elif not 0 < amount <= 1:
            raise ValueError(
                f"A fraction of the backbone must be in (0, 1]; got {amount!r} at epoch {epoch}."
            )
        else:
            amount = float(amount)
        parsed.append((int(epoch), amount))
    return parsed


def _rebuilt_optimizer(optimizer, variables):
    """A new optimizer like ``optimizer``, built for ``variables``, carrying its state over.

    Optimizer variables are matched by path (e.g. ``adam/iteration``,
    ``adam/dense_kernel_momentum``); a path that is not unique is not copied.
    """
    fresh = type(optimizer).from_config(optimizer.get_config())
    fresh.build(variables)
    previous = {}
    for variable in optimizer.variables:
        previous[variable.path] = None if variable.path in previous else variable
    for variable in fresh.variables:
        source = previous.get(variable.path)
        if source is not None and tuple(source.shape) == tuple(variable.shape):
            variable.assign(source)
    return fresh

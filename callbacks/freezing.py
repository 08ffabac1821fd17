"""Progressive unfreezing of frozen sub-models during ``fit``, each with its own learning-rate multiplier.

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
optimizer's per-variable ``update_step``: each sub-model's weights are updated
with ``learning_rate`` times that sub-model's ``lr_multiplier``, all others
with ``learning_rate``. This is a true learning-rate multiplier for any
optimizer on TF and JAX (for Adam, scaling the gradients instead would change
almost nothing). Weight decay
still uses the unscaled rate. The torch backend's optimizers update all
weights in one fused call, so the multiplier is refused there.
"""

import dataclasses
import math
import numbers

import keras

from modeling.backbones.submodels import find_submodel, unfreeze_last_layers, weighted_layers

DEFAULT_LOG_PREFIX = "backbone"


class BackboneFreezer(keras.callbacks.Callback):
    """Keep nested sub-models frozen for the first epochs, then unfreeze them progressively.

    A schedule maps a 0-based epoch to how much of a sub-model is trainable
    from that epoch on: an ``int`` K means the last K layers that own weights,
    a ``float`` in (0, 1] that fraction of them (rounded up). Before the first
    scheduled epoch the sub-model is frozen, so ``{20: 0.5, 40: 1.0}`` trains
    the rest of the model only for 20 epochs, then the top half of the
    sub-model, then all of it. BatchNormalization layers stay frozen, hence in
    inference mode, unless ``freeze_batchnorm=False``.

    Give either one ``schedule`` (for the nested model ``submodel``; by
    default the backbone: the layer named "backbone", else the first nested
    model) or ``submodels``, a mapping from nested-model names to
    ``{"schedule": ..., "lr_multiplier": ...}`` (the multiplier defaults to
    1.0), for several sub-models with their own schedules and multipliers.
    The names are searched at every depth at ``on_train_begin``; an unknown
    name fails there, listing the nested models.

    After every epoch the logs get, per sub-model, ``<prefix>_trainable_weights``
    (trainable weight tensors in it) and ``<prefix>_trainable_params`` (their
    total size). The prefix is the name given (``submodel`` or a key of
    ``submodels``), ``backbone`` when ``submodel`` is ``None``. Every change is
    recorded as ``(epoch, unfrozen_layers, trainable_weights)`` in
    ``submodel_changes[prefix]``; ``changes`` is that list when there is one
    sub-model.

    Args:
        schedule: dict ``{epoch: amount}`` (or a sequence of pairs) with
            epochs in increasing order and the amount never decreasing.
        lr_multiplier: learning-rate factor for the sub-model's weights, e.g.
            0.1 to fine-tune it at a tenth of the rest's rate.
        freeze_batchnorm: keep the sub-models' BatchNormalization layers frozen.
        verbose: print a line at every change.
        submodel: name of the nested model that ``schedule`` applies to.
        submodels: instead of ``schedule``, ``lr_multiplier`` and ``submodel``:
            ``{name: {"schedule": ..., "lr_multiplier": ...}}``.

    Example:

    >>> freezer = BackboneFreezer({20: 0.5, 40: 1.0}, lr_multiplier=0.1)
    >>> freezer.get_config()["schedule"]
    [[20, 0.5], [40, 1.0]]
    >>> dual = BackboneFreezer(submodels={
    ...     "embedding_company": {"schedule": {5: 1.0}, "lr_multiplier": 0.1},
    ...     "embedding_model": {"schedule": {10: 0.5, 20: 1.0}},
    ... })
    >>> dual.get_config()["submodels"]["embedding_model"]
    {'schedule': [[10, 0.5], [20, 1.0]], 'lr_multiplier': 1.0}
    """

    def __init__(
        self,
        schedule=None,
        lr_multiplier=1.0,
        freeze_batchnorm=True,
        verbose=0,
        submodel=None,
        submodels=None,
    ):
        super().__init__()
        if submodels is None:
            if schedule is None:
                raise ValueError("Give an unfreezing `schedule`, or `submodels` with one schedule each.")
            self._plans = [_Plan(submodel, schedule, lr_multiplier)]
        else:
            if schedule is not None or lr_multiplier != 1.0 or submodel is not None:
                raise ValueError(
                    "Give either `schedule` (with `lr_multiplier` and `submodel`) or `submodels`, "
                    "whose entries carry their own schedule and lr_multiplier; not both."
                )
            self._plans = _parse_submodels(submodels)
        if keras.backend.backend() == "torch" and any(plan.lr_multiplier != 1.0 for plan in self._plans):
            raise NotImplementedError(
                "`lr_multiplier` is not supported with the torch backend, whose optimizers "
                "update all weights in one fused step; use lr_multiplier=1.0 there."
            )
        self._single = submodels is None
        self.freeze_batchnorm = bool(freeze_batchnorm)
        self.verbose = verbose
        self.submodel_changes = {plan.prefix: plan.changes for plan in self._plans}
        self._started = False
        self._epoch = None

    @property
    def changes(self):
        """``(epoch, unfrozen_layers, trainable_weights)`` for every change of the only sub-model."""
        if len(self._plans) != 1:
            raise AttributeError("This BackboneFreezer has several sub-models; see `submodel_changes`.")
        return self._plans[0].changes

    # `callbacks.TrainingStateBackup` restores the trainable set (and so the optimizer's variables)
    # before it loads the weights.
    restore_before_weights = True

    def on_train_begin(self, logs=None):
        self._started = True
        for plan in self._plans:
            plan.start(self.model, self.freeze_batchnorm)
        owners = {}
        for plan in self._plans:
            for variable in plan.submodel.weights:
                other = owners.setdefault(id(variable), plan)
                if other is not plan:
                    raise ValueError(
                        f"The sub-models '{other.submodel.name}' and '{plan.submodel.name}' share "
                        f"weights (such as '{variable.path}'); give each weight one schedule."
                    )
        if self._scale_rates(self.model.optimizer):
            self.model.make_train_function(force=True)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        before = [id(variable) for variable in self.model.trainable_variables]
        changed = [plan for plan in self._plans if plan.apply(epoch, self.freeze_batchnorm)]
        if [id(variable) for variable in self.model.trainable_variables] == before:
            return
        self._rebuild_training()
        if not self.verbose:
            return
        for plan in changed:
            _, layers, weights = plan.changes[-1]
            print(
                f"Epoch {epoch + 1}: {layers}/{len(plan.candidates)} layers of "
                f"'{plan.submodel.name}' trainable ({weights} weight tensors)."
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for plan in self._plans:
                trainable = plan.submodel.trainable_weights
                logs[f"{plan.prefix}_trainable_weights"] = len(trainable)
                logs[f"{plan.prefix}_trainable_params"] = sum(int(keras.ops.size(w)) for w in trainable)

    def get_state(self):
        """The last epoch begun and the changes so far, for `callbacks.TrainingStateBackup`."""
        changes = {
            prefix: [list(change) for change in plan_changes] for prefix, plan_changes in self.submodel_changes.items()
        }
        return {"epoch": self._epoch, "changes": changes}

    def set_state(self, state):
        """Make trainable what was trainable at ``state["epoch"]`` and rebuild the optimizer for it.

        Called before the weights (and optimizer variables) of that epoch are loaded, so the
        optimizer has the variables they were saved with.
        """
        if not self._started:
            self.on_train_begin()
        if state["epoch"] is not None:
            self.on_epoch_begin(int(state["epoch"]))
        for plan in self._plans:
            plan.changes[:] = [tuple(change) for change in state["changes"][plan.prefix]]

    def on_train_end(self, logs=None):
        self._started = False
        # Leave no wrapper behind: a later fit without this callback trains normally.
        if self.model.optimizer.__dict__.pop("update_step", None) is not None:
            self.model.make_train_function(force=True)

    def get_config(self):
        common = {"freeze_batchnorm": self.freeze_batchnorm, "verbose": self.verbose}
        if self._single:
            (plan,) = self._plans
            return {**plan.config(), **common, "submodel": plan.name}
        return {"submodels": {plan.name: plan.config() for plan in self._plans}, **common}

    def _rebuild_training(self):
        model = self.model
        model.optimizer = _rebuilt_optimizer(model.optimizer, model.trainable_variables)
        self._scale_rates(model.optimizer)
        model.make_train_function(force=True)
        model.make_test_function(force=True)
        model.make_predict_function(force=True)

    def _scale_rates(self, optimizer):
        """Wrap ``optimizer.update_step`` with the sub-models' multipliers; return whether any."""
        # Optimizers update each variable in `update_step(gradient, variable,
        # learning_rate)`; the TF backend passes the native variable there, so
        # variables are matched by the optimizer's own key.
        key = optimizer._var_key
        multipliers = {
            key(variable): plan.lr_multiplier
            for plan in self._plans
            if plan.lr_multiplier != 1.0
            for variable in plan.submodel.weights
        }
        if not multipliers:
            return False
        update = type(optimizer).update_step.__get__(optimizer)

        def update_step(gradient, variable, learning_rate):
            multiplier = multipliers.get(key(variable))
            if multiplier is not None:
                learning_rate = learning_rate * multiplier
            return update(gradient, variable, learning_rate)

        optimizer.update_step = update_step
        return True


@dataclasses.dataclass
class _Plan:
    """One sub-model's schedule and multiplier, and its state during ``fit``."""

    name: str | None
    schedule: list
    lr_multiplier: float
    submodel: keras.Model | None = None
    candidates: list = dataclasses.field(default_factory=list)
    layer_counts: list = dataclasses.field(default_factory=list)
    changes: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.schedule = _parse_schedule(self.schedule)
        multiplier = self.lr_multiplier
        if isinstance(multiplier, bool) or not isinstance(multiplier, numbers.Real) or not multiplier > 0:
            raise ValueError(f"`lr_multiplier` must be a positive number; got {multiplier!r}.")
        self.lr_multiplier = float(multiplier)

    @property
    def prefix(self):
        return DEFAULT_LOG_PREFIX if self.name is None else self.name

    def config(self):
        schedule = [[epoch, amount] for epoch, amount in self.schedule]
        return {"schedule": schedule, "lr_multiplier": self.lr_multiplier}

    def start(self, model, freeze_batchnorm):
        """Find the sub-model in ``model`` and turn the schedule into layer counts."""
        self.submodel = find_submodel(model, self.name)
        self.candidates = weighted_layers(self.submodel, freeze_batchnorm)
        self.layer_counts = [(epoch, self._layer_count(amount)) for epoch, amount in self.schedule]
        counts = [count for _, count in self.layer_counts]
        if counts != sorted(counts):
            raise ValueError(
                f"The schedule of '{self.submodel.name}' unfreezes {counts} layers in turn; "
                "it must never re-freeze layers."
            )

    def apply(self, epoch, freeze_batchnorm):
        """Set the layer flags for ``epoch``; record and return whether the trainable weights changed."""
        target = 0
        for start, count in self.layer_counts:
            if epoch >= start:
                target = count
        before = [id(variable) for variable in self.submodel.trainable_weights]
        weights = unfreeze_last_layers(self.submodel, target, freeze_batchnorm)
        if [id(variable) for variable in self.submodel.trainable_weights] == before:
            return False
        self.changes.append((epoch, target, weights))
        return True

    def _layer_count(self, amount):
        available = len(self.candidates)
        if isinstance(amount, numbers.Integral):
            if amount > available:
                raise ValueError(
                    f"The schedule asks for {amount} layers but the sub-model "
                    f"'{self.submodel.name}' has only {available} layers to unfreeze."
                )
            return int(amount)
        # Rounded first so that e.g. 0.3 * 10 counts 3 layers, not 4.
        return math.ceil(round(amount * available, 6))


def _parse_submodels(submodels):
    if not isinstance(submodels, dict) or not submodels:
        raise ValueError(
            "`submodels` must be a non-empty dict {name: {'schedule': ..., 'lr_multiplier': ...}}; "
            f"got {submodels!r}."
        )
    plans = []
    for name, spec in submodels.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"`submodels` keys must be nested-model names; got {name!r}.")
        if not isinstance(spec, dict) or "schedule" not in spec or set(spec) - {"schedule", "lr_multiplier"}:
            raise ValueError(
                f"`submodels['{name}']` must be a dict with a 'schedule' and optionally an "
                f"'lr_multiplier'; got {spec!r}."
            )
        plans.append(_Plan(name, spec["schedule"], spec.get("lr_multiplier", 1.0)))
    return plans


def _parse_schedule(schedule):
    pairs = list(schedule.items()) if isinstance(schedule, dict) else [tuple(p) for p in schedule]
    if not pairs:
        raise ValueError("The unfreezing schedule is empty; give at least one {epoch: amount}.")
    parsed = []
    for epoch, amount in pairs:
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"Schedule epochs must be integers >= 0; got {epoch!r}.")
        if parsed and epoch <= parsed[-1][0]:
            raise ValueError(f"Schedule epochs must be in increasing order; got {[e for e, _ in pairs]}.")
        if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
            raise ValueError(f"Schedule amounts must be numbers; got {amount!r} at epoch {epoch}.")
        if isinstance(amount, numbers.Integral):
            if amount < 1:
                raise ValueError(
                    f"A layer count must be >= 1; got {amount!r} at epoch {epoch} "
                    "(the sub-model is frozen before the first scheduled epoch)."
                )
            amount = int(amount)
        elif not 0 < amount <= 1:
            raise ValueError(f"A fraction of the sub-model must be in (0, 1]; got {amount!r} at epoch {epoch}.")
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

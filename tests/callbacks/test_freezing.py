"""BackboneFreezer: scheduled trainable counts, BatchNorm in inference mode, real updates, LR multiplier."""

import keras
import numpy as np
import pytest

from callbacks import BackboneFreezer
from callbacks.freezing import _rebuilt_optimizer
from modeling.backbones import find_backbone
from modeling.boneage import baseline_model
from tests.checkers import tiny_backbone

pytestmark = pytest.mark.multibackend

IMG_DIMS = (32, 32, 3)
# tiny_backbone: Conv(8) -> BatchNorm -> Conv(16) -> Conv(24); three convolutions can be unfrozen.
CONV_PATHS = ("conv2d/", "conv2d_1/", "conv2d_2/")


def tiny_model(optimizer, dropout_rate=0.5):
    return baseline_model(
        IMG_DIMS,
        optim=optimizer,
        backbone=tiny_backbone,
        weights=None,
        dropout_rate=dropout_rate,
        dense_units=16,
    )


def data(size=9, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, size=(size, *IMG_DIMS)).astype("float32")
    return images, rng.normal(size=(size, 1)).astype("float32")


def backbone_values(model):
    return {w.path: keras.ops.convert_to_numpy(w).copy() for w in find_backbone(model).weights}


class Snapshots(keras.callbacks.Callback):
    """Backbone weights at the start and after every epoch."""

    def on_train_begin(self, logs=None):
        self.values = [backbone_values(self.model)]

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(backbone_values(self.model))


@pytest.fixture(scope="module")
def progressive_run():
    keras.utils.set_random_seed(7)
    model = tiny_model(keras.optimizers.Adam(1e-2))
    inputs, targets = data()
    freezer = BackboneFreezer({1: 0.5, 2: 1.0})
    snapshots = Snapshots()
    history = model.fit(
        inputs, targets, batch_size=3, epochs=3, verbose=0, callbacks=[freezer, snapshots]
    )
    return model, freezer, snapshots, history


def changed(before, after, prefix):
    return any(not np.array_equal(before[p], after[p]) for p in before if p.startswith(prefix))


def test_trainable_counts_follow_the_schedule(progressive_run):
    model, freezer, _, history = progressive_run
    # Epoch 0 frozen; epoch 1 half of 3 convolutions (rounded up: 2, kernel + bias each); epoch 2 all.
    assert history.history["backbone_trainable_weights"] == [0, 4, 6]
    assert history.history["backbone_trainable_params"] == [0, 1168 + 3480, 224 + 1168 + 3480]
    assert [(epoch, layers) for epoch, layers, _ in freezer.changes] == [(1, 2), (2, 3)]
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 9


def test_unfrozen_weights_change_and_frozen_ones_do_not(progressive_run):
    _, _, snapshots, _ = progressive_run
    start, after_0, after_1, after_2 = snapshots.values
    assert not any(changed(start, after_0, prefix) for prefix in CONV_PATHS)
    assert not changed(after_0, after_1, "conv2d/")
    assert changed(after_0, after_1, "conv2d_1/") and changed(after_0, after_1, "conv2d_2/")
    assert all(changed(after_1, after_2, prefix) for prefix in CONV_PATHS)


def test_batchnorm_stays_in_inference_mode(progressive_run):
    model, _, snapshots, _ = progressive_run
    start, *_, end = snapshots.values
    for path in start:
        if path.startswith("batch_normalization/"):
            np.testing.assert_array_equal(start[path], end[path], err_msg=path)
    assert not find_backbone(model).get_layer("batch_normalization").trainable


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_lr_multiplier_scales_the_backbone_step(optimizer):
    """One step moves backbone weights by exactly 0.1x, head weights alike.

    For Adam this holds only for a learning-rate multiplier: its step barely
    depends on the scale of the gradients.
    """
    inputs, targets = data(size=5)
    steps, in_backbone = {}, None
    for multiplier in (1.0, 0.1):
        keras.utils.set_random_seed(3)
        model = tiny_model(getattr(keras.optimizers, optimizer)(0.05), dropout_rate=0.0)
        before = [keras.ops.convert_to_numpy(w).copy() for w in model.weights]
        freezer = BackboneFreezer({0: 1.0}, lr_multiplier=multiplier)
        model.fit(inputs, targets, batch_size=5, epochs=1, shuffle=False, verbose=0, callbacks=[freezer])
        steps[multiplier] = [keras.ops.convert_to_numpy(w) - b for w, b in zip(model.weights, before)]
        backbone_ids = {id(w) for w in find_backbone(model).trainable_weights}
        in_backbone = [id(w) in backbone_ids for w in model.weights]
    assert sum(in_backbone) == 6
    for full_step, scaled_step, scaled in zip(steps[1.0], steps[0.1], in_backbone):
        expected = 0.1 * full_step if scaled else full_step
        np.testing.assert_allclose(scaled_step, expected, rtol=1e-4, atol=1e-8)
    assert all(np.abs(step).max() > 0 for step, scaled in zip(steps[1.0], in_backbone) if scaled)


def test_rebuilt_optimizer_keeps_state_of_known_variables():
    old_weight = keras.Variable(np.ones((2, 2)), name="old")
    new_weight = keras.Variable(np.ones(3), name="new")
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.apply([np.full((2, 2), 0.5, "float32")], [old_weight])
    fresh = _rebuilt_optimizer(optimizer, [old_weight, new_weight])
    assert int(keras.ops.convert_to_numpy(fresh.iterations)) == 1
    moments = {v.name: keras.ops.convert_to_numpy(v) for v in fresh.variables}
    np.testing.assert_allclose(moments["old_momentum"], 0.05)  # (1 - beta_1) * 0.5, carried over
    np.testing.assert_array_equal(moments["new_momentum"], 0.0)  # new variable starts fresh
    fresh.apply([np.ones((2, 2), "float32"), np.ones(3, "float32")], [old_weight, new_weight])


@pytest.mark.parametrize(
    "schedule, message",
    [
        ({2: 0.5, 1: 1.0}, "increasing order"),
        ({1: 1.5}, r"\(0, 1\]"),
        ({1: 0.0}, r"\(0, 1\]"),
        ({1: 0}, ">= 1"),
        ({-1: 1.0}, ">= 0"),
        ({}, "empty"),
    ],
)
def test_bad_schedules_fail_at_construction(schedule, message):
    with pytest.raises(ValueError, match=message):
        BackboneFreezer(schedule)


def test_bad_multiplier_fails():
    with pytest.raises(ValueError, match="lr_multiplier"):
        BackboneFreezer({1: 1.0}, lr_multiplier=0.0)

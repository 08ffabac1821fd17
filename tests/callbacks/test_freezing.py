"""BackboneFreezer: scheduled trainable counts, BatchNorm in inference mode, real updates, LR multiplier."""

import json

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
    history = model.fit(inputs, targets, batch_size=3, epochs=3, verbose=0, callbacks=[freezer, snapshots])
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
        steps[multiplier] = [keras.ops.convert_to_numpy(w) - b for w, b in zip(model.weights, before, strict=False)]
        backbone_ids = {id(w) for w in find_backbone(model).trainable_weights}
        in_backbone = [id(w) in backbone_ids for w in model.weights]
    assert sum(in_backbone) == 6
    for full_step, scaled_step, scaled in zip(steps[1.0], steps[0.1], in_backbone, strict=False):
        expected = 0.1 * full_step if scaled else full_step
        np.testing.assert_allclose(scaled_step, expected, rtol=1e-4, atol=1e-8)
    assert all(np.abs(step).max() > 0 for step, scaled in zip(steps[1.0], in_backbone, strict=False) if scaled)


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


# Two nested sub-models, as in a dual-embedding regressor: each Dense(6->8), Dense(8->8),
# Dense(8->4) (56, 72 and 36 parameters), their embeddings concatenated into a Dense head.
EMBEDDINGS = ("embedding_company", "embedding_model")


def dual_embedding_model(optimizer):
    features = keras.Input((6,), name="features")
    embeddings = [
        keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(8, activation="tanh", name=f"{name}_0"),
                keras.layers.Dense(8, activation="tanh", name=f"{name}_1"),
                keras.layers.Dense(4, name=f"{name}_2"),
            ],
            name=name,
        )
        for name in EMBEDDINGS
    ]
    joined = keras.layers.Concatenate()([embedding(features) for embedding in embeddings])
    model = keras.Model(features, keras.layers.Dense(1, name="head")(joined), name="dual_embedding")
    model.compile(optimizer=optimizer, loss="mse")
    return model


def vector_data(size=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(size, 6)).astype("float32"), rng.normal(size=(size, 1)).astype("float32")


def all_values(model):
    return {w.path: keras.ops.convert_to_numpy(w).copy() for w in model.weights}


class AllSnapshots(keras.callbacks.Callback):
    """Every weight of the model at the start and after every epoch."""

    def on_train_begin(self, logs=None):
        self.values = [all_values(self.model)]

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(all_values(self.model))


def test_two_submodels_follow_their_own_schedules():
    model = dual_embedding_model(keras.optimizers.Adam(1e-2))
    freezer = BackboneFreezer(
        submodels={
            "embedding_company": {"schedule": {1: 1}, "lr_multiplier": 0.5},
            "embedding_model": {"schedule": {2: 0.5, 3: 1.0}, "lr_multiplier": 0.1},
        }
    )
    snapshots = AllSnapshots()
    inputs, targets = vector_data()
    history = model.fit(inputs, targets, batch_size=2, epochs=4, verbose=0, callbacks=[freezer, snapshots])
    logs = history.history
    # company: its last layer from epoch 1; model: ceil(0.5 * 3) = 2 layers from epoch 2, all 3 from epoch 3.
    assert logs["embedding_company_trainable_weights"] == [0, 2, 2, 2]
    assert logs["embedding_company_trainable_params"] == [0, 36, 36, 36]
    assert logs["embedding_model_trainable_weights"] == [0, 0, 4, 6]
    assert logs["embedding_model_trainable_params"] == [0, 0, 72 + 36, 56 + 72 + 36]
    assert "backbone_trainable_weights" not in logs
    # The embeddings start trainable, so freezing them at epoch 0 is a change too.
    assert freezer.submodel_changes == {
        "embedding_company": [(0, 0, 0), (1, 1, 2)],
        "embedding_model": [(0, 0, 0), (2, 2, 4), (3, 3, 6)],
    }
    with pytest.raises(AttributeError, match="submodel_changes"):
        _ = freezer.changes
    changed_layers = [
        {path.split("/")[-2] for path in before if not np.array_equal(before[path], after[path])}
        for before, after in zip(snapshots.values, snapshots.values[1:], strict=False)
    ]
    assert changed_layers == [
        {"head"},
        {"head", "embedding_company_2"},
        {"head", "embedding_company_2", "embedding_model_1", "embedding_model_2"},
        {"head", "embedding_company_2", "embedding_model_0", "embedding_model_1", "embedding_model_2"},
    ]
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 12  # 3 steps x 4 epochs


def gradients(model, inputs, targets):
    """d(mean squared error) / d(trainable weights), computed directly on the backend."""
    if keras.backend.backend() == "jax":
        import jax

        def loss(trainable):
            outputs, _ = model.stateless_call(trainable, [v.value for v in model.non_trainable_variables], inputs)
            return keras.ops.mean((outputs - targets) ** 2)

        return [np.asarray(g) for g in jax.grad(loss)([v.value for v in model.trainable_variables])]
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = keras.ops.mean((model(inputs) - targets) ** 2)
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


DUAL_MULTIPLIERS = {"embedding_company": 0.5, "embedding_model": 0.1}
# A step read off float32 weights of size ~0.5 carries up to one ulp (6e-8) of rounding.
FLOAT32_STEP = 1e-7


def multiplier_of(path):
    return DUAL_MULTIPLIERS.get(path.split("/")[0], 1.0)  # paths: "embedding_model/embedding_model_0/kernel"


def test_one_sgd_step_scales_each_submodel_by_its_multiplier():
    """step = -learning_rate * multiplier * gradient: 0.5x company, 0.1x model, 1x head."""
    inputs, targets = vector_data(size=5)
    model = dual_embedding_model(keras.optimizers.SGD(0.05))
    expected = {
        w.path: -0.05 * multiplier_of(w.path) * g
        for w, g in zip(model.trainable_variables, gradients(model, inputs, targets), strict=False)
    }
    before = all_values(model)
    freezer = BackboneFreezer(
        submodels={name: {"schedule": {0: 1.0}, "lr_multiplier": m} for name, m in DUAL_MULTIPLIERS.items()}
    )
    model.fit(inputs, targets, batch_size=5, epochs=1, shuffle=False, verbose=0, callbacks=[freezer])
    after = all_values(model)
    assert len(expected) == 2 * 6 + 2
    assert sorted({multiplier_of(path) for path in expected}) == [0.1, 0.5, 1.0]
    for path, step in expected.items():
        assert np.abs(step).max() > 0, path
        np.testing.assert_allclose(after[path] - before[path], step, rtol=1e-4, atol=FLOAT32_STEP, err_msg=path)


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize("first_epoch", [0, 1])
def test_multipliers_hold_after_the_optimizer_is_rebuilt(optimizer, first_epoch):
    """The step of the epoch that unfreezes both sub-models: multiplier x the step at multiplier 1.

    With ``first_epoch=1`` the optimizer is rebuilt (and re-wrapped) at epoch 1.
    """
    inputs, targets = vector_data(size=5)
    steps = {}
    for multipliers in ({name: 1.0 for name in DUAL_MULTIPLIERS}, DUAL_MULTIPLIERS):
        keras.utils.set_random_seed(3)
        model = dual_embedding_model(getattr(keras.optimizers, optimizer)(0.05))
        freezer = BackboneFreezer(
            submodels={name: {"schedule": {first_epoch: 1.0}, "lr_multiplier": m} for name, m in multipliers.items()}
        )
        snapshots = AllSnapshots()
        model.fit(
            inputs,
            targets,
            batch_size=5,
            epochs=first_epoch + 1,
            shuffle=False,
            verbose=0,
            callbacks=[freezer, snapshots],
        )
        before, after = snapshots.values[-2:]
        steps[multipliers is DUAL_MULTIPLIERS] = {path: after[path] - before[path] for path in before}
    for path, plain in steps[False].items():
        assert np.abs(plain).max() > 0, path
        expected = multiplier_of(path) * plain
        np.testing.assert_allclose(steps[True][path], expected, rtol=1e-4, atol=FLOAT32_STEP, err_msg=path)


def test_one_named_submodel_gets_its_own_log_keys():
    model = dual_embedding_model(keras.optimizers.Adam(1e-2))
    freezer = BackboneFreezer({1: 1}, lr_multiplier=0.1, submodel="embedding_model")
    inputs, targets = vector_data()
    history = model.fit(inputs, targets, batch_size=3, epochs=2, verbose=0, callbacks=[freezer])
    assert history.history["embedding_model_trainable_weights"] == [0, 2]
    assert history.history["embedding_model_trainable_params"] == [0, 36]
    assert not any(key.startswith(("backbone_", "embedding_company_")) for key in history.history)
    assert freezer.changes == freezer.submodel_changes["embedding_model"] == [(0, 0, 0), (1, 1, 2)]
    assert len(model.get_layer("embedding_company").trainable_weights) == 6  # left alone


def test_unknown_submodel_fails_at_train_begin_listing_the_nested_models():
    model = dual_embedding_model(keras.optimizers.SGD(0.01))
    freezer = BackboneFreezer(
        submodels={"embedding_company": {"schedule": {1: 1.0}}, "embedding_user": {"schedule": {1: 1.0}}}
    )
    inputs, targets = vector_data()
    with pytest.raises(ValueError, match=r"'embedding_user'.*\['embedding_company', 'embedding_model'\]"):
        model.fit(inputs, targets, epochs=1, verbose=0, callbacks=[freezer])


def test_submodels_sharing_weights_are_refused():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="inner")
    middle = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2)], name="middle")
    model = keras.Sequential([keras.Input((4,)), middle, keras.layers.Dense(1)])
    freezer = BackboneFreezer(submodels={"middle": {"schedule": {1: 1.0}}, "inner": {"schedule": {2: 1.0}}})
    freezer.set_model(model)
    with pytest.raises(ValueError, match="'middle' and 'inner' share weights"):
        freezer.on_train_begin()


def test_configs_are_complete_json():
    single = BackboneFreezer({20: 0.5, 40: 1.0}, 0.1, freeze_batchnorm=False, verbose=1)
    assert single.get_config() == {
        "schedule": [[20, 0.5], [40, 1.0]],
        "lr_multiplier": 0.1,
        "freeze_batchnorm": False,
        "verbose": 1,
        "submodel": None,
    }
    dual = BackboneFreezer(
        submodels={
            "embedding_company": {"schedule": {5: 1.0}, "lr_multiplier": 0.1},
            "embedding_model": {"schedule": [(10, 2), (20, 1.0)]},
        }
    )
    assert dual.get_config() == {
        "submodels": {
            "embedding_company": {"schedule": [[5, 1.0]], "lr_multiplier": 0.1},
            "embedding_model": {"schedule": [[10, 2], [20, 1.0]], "lr_multiplier": 1.0},
        },
        "freeze_batchnorm": True,
        "verbose": 0,
    }
    for freezer in (single, dual, BackboneFreezer({3: 4}, submodel="resnet50")):
        config = json.loads(json.dumps(freezer.get_config()))
        assert BackboneFreezer(**config).get_config() == freezer.get_config()


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({}, "Give an unfreezing `schedule`"),
        ({"schedule": {1: 1.0}, "submodels": {"a": {"schedule": {1: 1.0}}}}, "not both"),
        ({"lr_multiplier": 0.1, "submodels": {"a": {"schedule": {1: 1.0}}}}, "not both"),
        ({"submodels": {}}, "non-empty dict"),
        ({"submodels": {"a": {1: 1.0}}}, r"\['a'\]` must be a dict with a 'schedule'"),
        ({"submodels": {"a": {"schedule": {1: 1.0}, "lr": 0.1}}}, "optionally an 'lr_multiplier'"),
        ({"submodels": {"a": {"schedule": {1: 1.0}, "lr_multiplier": 0}}}, "lr_multiplier"),
        ({"submodels": {"a": {"schedule": {2: 1.0, 1: 0.5}}}}, "increasing order"),
    ],
)
def test_bad_submodel_arguments_fail_at_construction(arguments, message):
    with pytest.raises(ValueError, match=message):
        BackboneFreezer(**arguments)

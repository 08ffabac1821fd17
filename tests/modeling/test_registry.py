"""Every registered model of every system: builds, learns in one step, round-trips through `.keras`.

Each system has a module ``tests/modeling/<system>/tiny.py`` with ``build(name)`` (a tiny, compiled
build of the model), ``NO_GRADIENT`` (per model, the trainable weights that get no gradient by
design, with the reason) and optionally ``batch(model, size, seed)`` (inputs and targets when random
z-scores do not fit the model's outputs). A system without the module fails
`test_every_system_has_a_tiny_configuration`, so new systems cannot skip the checks.
"""

import importlib

import numpy as np
import pytest

from modeling import create_model, list_models, list_systems
from tests.checkers import assert_one_training_step_learns, run_model_saving_test

pytestmark = pytest.mark.multibackend


def system_checks(name):
    """The ``tests.modeling.<system>.tiny`` module of a model name."""
    return importlib.import_module(f"tests.modeling.{name.split('/', 1)[0]}.tiny")


def tiny_model(name):
    return system_checks(name).build(name)


def no_gradient(name):
    return system_checks(name).NO_GRADIENT.get(name, ((), None))[0]


def tiny_batch(model, name, size=5, seed=0):
    make_batch = getattr(system_checks(name), "batch", random_batch)
    return make_batch(model, size=size, seed=seed)


def random_batch(model, size=5, seed=0):
    """Inputs drawn for every model input and z-score-like targets for every output.

    An odd batch keeps the MAE gradient non-zero.
    """
    rng = np.random.default_rng(seed)
    inputs = [rng.uniform(-1, 1, size=(size, *tensor.shape[1:])).astype("float32") for tensor in model.inputs]
    targets = [rng.normal(size=(size, *tensor.shape[1:])).astype("float32") for tensor in model.outputs]
    return (inputs[0] if len(inputs) == 1 else inputs), (targets[0] if len(targets) == 1 else targets)


@pytest.mark.parametrize("system", list_systems())
def test_every_system_has_a_tiny_configuration(system):
    checks = importlib.import_module(f"tests.modeling.{system}.tiny")
    assert callable(checks.build)
    assert set(checks.NO_GRADIENT) <= set(list_models(system))


def test_names_are_namespaced_and_unknown_names_list_the_known_ones():
    assert list_models("boneage") == [
        "boneage/attn",
        "boneage/attn_sex",
        "boneage/attn_sex_improved",
        "boneage/baseline",
        "boneage/sex",
    ]
    assert all(name.count("/") == 1 for name in list_models())
    with pytest.raises(ValueError, match="Registered models: .*boneage/attn_sex_improved"):
        create_model("attn_sex_improved")
    with pytest.raises(ValueError, match="No models registered for system 'no_such_system'"):
        list_models("no_such_system")


@pytest.mark.parametrize("name", list_models())
def test_one_training_step_changes_every_trainable_weight(name):
    model = tiny_model(name)
    inputs, targets = tiny_batch(model, name)
    logs = assert_one_training_step_learns(model, inputs, targets, unchanged=no_gradient(name))
    assert np.isfinite(logs["loss"])


@pytest.mark.parametrize("name", list_models())
def test_keras_round_trip_in_safe_mode_gives_identical_outputs(name, tmp_path):
    model = tiny_model(name)
    inputs, _ = tiny_batch(model, name, seed=3)
    reloaded = run_model_saving_test(model, inputs, tmp_path)
    assert [(layer.name, layer.trainable) for layer in reloaded.layers] == [
        (layer.name, layer.trainable) for layer in model.layers
    ]

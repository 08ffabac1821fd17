"""Every registered model of every system: builds, learns in one step, round-trips through `.keras`.

Each system gives here the keyword arguments of a tiny build of its models and, per model, the
trainable weights that get no gradient by design (with the reason). A model registered without
an entry fails `test_every_system_has_a_tiny_configuration`, so new systems cannot skip the checks.
"""

import numpy as np
import pytest

from modeling import create_model, get_builder, list_models, list_systems
from tests.checkers import assert_one_training_step_learns, run_model_saving_test, tiny_backbone

pytestmark = pytest.mark.multibackend


def _boneage_kwargs(name):
    kwargs = dict(img_dims=(64, 64, 3), backbone=tiny_backbone, weights=None, dropout_rate=0.5, dense_units=16)
    if "gender_units" in get_builder(name).__code__.co_varnames:
        kwargs["gender_units"] = 8
    return kwargs


TINY_KWARGS = {"boneage": _boneage_kwargs}
# name -> (weight path prefixes that never receive a gradient, why)
NO_GRADIENT = {
    "boneage/attn_sex_improved": (
        ("cross_attention_mha/query", "cross_attention_mha/key"),
        "MultiHeadAttention over a single key token: the softmax weight is always 1 (original design)",
    ),
}


def tiny_model(name):
    return create_model(name, **TINY_KWARGS[name.split("/", 1)[0]](name))


def random_batch(model, size=5, seed=0):
    """Inputs drawn for every model input and z-score-like targets for every output.

    An odd batch keeps the MAE gradient non-zero.
    """
    rng = np.random.default_rng(seed)
    inputs = [rng.uniform(-1, 1, size=(size, *tensor.shape[1:])).astype("float32") for tensor in model.inputs]
    targets = [rng.normal(size=(size, *tensor.shape[1:])).astype("float32") for tensor in model.outputs]
    return (inputs[0] if len(inputs) == 1 else inputs), (targets[0] if len(targets) == 1 else targets)


def test_every_system_has_a_tiny_configuration():
    assert set(list_systems()) <= set(TINY_KWARGS)
    assert set(NO_GRADIENT) <= set(list_models())


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
    inputs, targets = random_batch(model)
    unchanged, _reason = NO_GRADIENT.get(name, ((), None))
    logs = assert_one_training_step_learns(model, inputs, targets, unchanged=unchanged)
    assert np.isfinite(logs["loss"])


@pytest.mark.parametrize("name", list_models())
def test_keras_round_trip_in_safe_mode_gives_identical_outputs(name, tmp_path):
    model = tiny_model(name)
    inputs, _ = random_batch(model, seed=3)
    reloaded = run_model_saving_test(model, inputs, tmp_path)
    assert [(layer.name, layer.trainable) for layer in reloaded.layers] == [
        (layer.name, layer.trainable) for layer in model.layers
    ]

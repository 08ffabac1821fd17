"""The bone-age builders: shapes, inputs, logs of one step, arguments, wiring of sex and gate.

The checks every registered model passes (one step learns, `.keras` round trip) are in
`tests/modeling/test_registry.py`.
"""

import keras
import numpy as np
import pytest

from modeling import create_model, list_models
from tests.checkers import tiny_backbone
from tests.modeling.test_registry import tiny_model

pytestmark = pytest.mark.multibackend

IMG_DIMS = (64, 64, 3)  # the size `tiny_model` builds
BONEAGE_MODELS = list_models("boneage")


def batch_for(model, size=5, seed=0):
    """Random inputs and z-score targets; an odd size keeps the MAE gradient non-zero."""
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(-1, 1, size=(size, *IMG_DIMS)).astype("float32")
    if len(model.inputs) == 2:
        inputs = [inputs, (np.arange(size) % 2).reshape(size, 1).astype("float32")]
    targets = rng.normal(size=(size, 1)).astype("float32")
    return inputs, targets


def test_registry_lists_the_five_bone_age_builders():
    assert {f"boneage/{name}" for name in ("baseline", "sex", "attn", "attn_sex", "attn_sex_improved")} == set(
        BONEAGE_MODELS
    )
    with pytest.raises(ValueError, match="Registered models: .*boneage/attn_sex_improved"):
        create_model("no_such_model", img_dims=IMG_DIMS)


@pytest.mark.parametrize("name", BONEAGE_MODELS)
def test_build_shapes_and_inputs(name):
    model = tiny_model(name)
    assert [i.name for i in model.inputs][:1] == ["image"]
    assert model.output.shape == (None, 1)
    inputs, _ = batch_for(model)
    assert model.predict(inputs, verbose=0).shape == (5, 1)
    assert model.loss.name == "mean_absolute_error"
    assert set(model.evaluate(*batch_for(model), verbose=0, return_dict=True)) == {"loss", "mae"}
    assert model.get_layer("backbone").trainable is False


def test_sex_changes_the_prediction():
    """The sex input is wired in: flipping it changes the output."""
    model = tiny_model("boneage/attn_sex_improved")
    inputs, _ = batch_for(model)
    male = model.predict([inputs[0], np.ones((5, 1), "float32")], verbose=0)
    female = model.predict([inputs[0], np.zeros((5, 1), "float32")], verbose=0)
    assert np.abs(male - female).max() > 1e-6


def test_gate_and_attention_map_are_named_outputs():
    model = tiny_model("boneage/attn_sex_improved")
    probe = keras.Model(model.inputs, [model.get_layer("fusion_gate").output, model.get_layer("attention_map").output])
    inputs, _ = batch_for(model)
    gate, attention = probe.predict(inputs, verbose=0)
    assert gate.shape == (5, 8) and np.all((gate > 0) & (gate < 1))
    assert attention.shape == (5, 8, 8, 1) and np.all(np.abs(attention) < 1)


def test_builder_argument_errors():
    with pytest.raises(ValueError, match="img_dims"):
        create_model("boneage/attn_sex", img_dims=(64, 64), backbone="mobilenet_v2", weights=None)
    with pytest.raises(ValueError, match="Unknown loss 'l7'"):
        create_model("boneage/attn_sex", img_dims=IMG_DIMS, backbone="mobilenet_v2", weights=None, loss="l7")
    with pytest.raises(ValueError, match="dropout_rate"):
        create_model("boneage/sex", img_dims=IMG_DIMS, backbone="mobilenet_v2", weights=None, dropout_rate=1.5)
    with pytest.raises(ValueError, match="Query width 3 is smaller than num_heads=4"):
        create_model(
            "boneage/attn_sex_improved", img_dims=IMG_DIMS, backbone="mobilenet_v2", weights=None, dense_units=3
        )


def test_improved_builder_takes_widths_not_divisible_by_the_heads_like_the_original():
    model = create_model(
        "boneage/attn_sex_improved", img_dims=IMG_DIMS, backbone="mobilenet_v2", weights=None, dense_units=18
    )
    attention = model.get_layer("cross_attention_mha")
    assert (attention.num_heads, attention.key_dim) == (4, 18 // 4)  # the original's key_dim = dense_units // 4
    assert attention.output.shape[-1] == 18


def test_loss_and_metrics_arguments_are_compiled():
    model = create_model(
        "boneage/attn_sex", img_dims=IMG_DIMS, backbone="mobilenet_v2", weights=None, loss="wing", metric=["mae", "mse"]
    )
    inputs, targets = batch_for(model)
    logs = model.evaluate(inputs, targets, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mae", "mse"}
    assert model.loss.name == "wing"


def test_preprocessing_inside_the_model_takes_raw_pixels():
    scaled = create_model("boneage/attn_sex", img_dims=IMG_DIMS, backbone=tiny_backbone, weights=None, dense_units=16)
    raw = create_model(
        "boneage/attn_sex", img_dims=IMG_DIMS, backbone=tiny_backbone, weights=None, dense_units=16, preprocessing="tf"
    )
    raw.set_weights(scaled.get_weights())  # no new weights: same layout
    inputs, _ = batch_for(scaled)
    pixels = (inputs[0] + 1.0) * 127.5
    np.testing.assert_allclose(
        raw.predict([pixels, inputs[1]], verbose=0), scaled.predict(inputs, verbose=0), rtol=1e-5, atol=1e-6
    )

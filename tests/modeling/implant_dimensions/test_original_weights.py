"""The original PyTorch modules' weights (fixtures written by the original code) reproduce its outputs."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from modeling.implant_dimensions import (
    dual_embedding_regression,
    embedding_classifier,
    embedding_head_model,
    embedding_model,
    fusion_regressor,
)
from modeling.implant_dimensions.convert import load_state_dict, load_torch_weights

pytestmark = pytest.mark.multibackend

FIXTURES = Path(__file__).parents[2] / "fixtures" / "implant_dimensions"
INPUTS = {"f": "features", "c": "company_embedding", "m": "model_embedding"}
OUTPUTS = {"y": "dimensions"}


TINY_VIT_48 = {"num_layers": 1, "hidden_dim": 48, "num_heads": 2, "mlp_dim": 8}  # F = 48 as in the fixtures


def fixture(stem):
    archive = np.load(FIXTURES / f"{stem}.npz")
    sidecar = json.loads((FIXTURES / f"{stem}.json").read_text())
    inputs = {key[len("input__") :]: archive[key] for key in archive.files if key.startswith("input__")}
    outputs = {key[len("output__") :]: archive[key] for key in archive.files if key.startswith("output__")}
    return load_state_dict(FIXTURES / f"{stem}.npz"), inputs, outputs, sidecar


def assert_close(got, expected, sidecar):
    tolerance = sidecar["tolerance"]
    atol = tolerance["atol_times_max_abs_expected"] * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=tolerance["rtol"], atol=atol)


@pytest.mark.parametrize("attention_type", ["dual", "triple", "hierarchical", "none"])
def test_dual_embedding_regression_reproduces_the_original(attention_type):
    state, inputs, outputs, sidecar = fixture(f"D_dual_{attention_type}")
    model = fusion_regressor(48, 16, 16, attention_type=attention_type)
    report = load_torch_weights(model, state)
    assert sorted(report["loaded"]) == sorted(state)
    assert model.count_params() == sidecar["param_counts"]["parameters"]
    got = model({INPUTS[k]: v for k, v in inputs.items() if k in INPUTS})
    for name, expected in outputs.items():
        assert_close(keras.ops.convert_to_numpy(got[OUTPUTS.get(name, name)]), expected, sidecar)


def test_single_embedding_regression_reproduces_the_original():
    state, inputs, outputs, sidecar = fixture("D_single_attention")
    model = fusion_regressor(48, 16, attention_type="triple")
    load_torch_weights(model, state)
    assert model.count_params() == sidecar["param_counts"]["parameters"]
    got = model({INPUTS[k]: v for k, v in inputs.items()})
    for name, expected in outputs.items():
        assert_close(keras.ops.convert_to_numpy(got[OUTPUTS.get(name, name)]), expected, sidecar)


def test_embedding_head_reproduces_the_original():
    state, inputs, outputs, sidecar = fixture("D_embedding_head")
    model = embedding_head_model(48, 16, 7)
    load_torch_weights(model, state)
    got = model(inputs["f"])
    for name, expected in outputs.items():
        assert_close(keras.ops.convert_to_numpy(got[name]), expected, sidecar)


def test_the_regressor_takes_the_heads_into_its_nested_embedding_models():
    """Prefixed names (``company_model.head.0.weight``) reach the nested models; the regressor's
    own layers come from the fixture; classifiers (absent in the regressor) are reported unused."""
    state, _, _, _ = fixture("D_dual_triple")
    head, _, _, _ = fixture("D_embedding_head")
    model = dual_embedding_regression(32, "tiny", 16, 16, vit_overrides=TINY_VIT_48)
    state |= {f"{prefix}.{key}": value for prefix in ("company_model", "model_model") for key, value in head.items()}
    report = load_torch_weights(
        model,
        state,
        allow_missing=(
            "embedding_company/block",
            "embedding_company/patch",
            "embedding_company/final",
            "embedding_model/block",
            "embedding_model/patch",
            "embedding_model/final",
        ),
        allow_unused=("company_model.classifier", "model_model.classifier"),
    )
    assert sorted(report["unused"]) == sorted(k for k in state if ".classifier." in k)
    company = model.get_layer("embedding_company").get_layer("head_dense_1")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(company.kernel), head["head.0.weight"].T)


def test_the_pretraining_classifier_keys_load_where_the_original_lost_them():
    """``classifier.0/3/6`` of the pretraining checkpoint are the embedding head and the classifier."""
    head, _, _, _ = fixture("D_embedding_head")
    renamed = {
        "classifier.0.weight": head["head.0.weight"],
        "classifier.0.bias": head["head.0.bias"],
        "classifier.3.weight": head["head.3.weight"],
        "classifier.3.bias": head["head.3.bias"],
        "classifier.6.weight": head["classifier.weight"],
        "classifier.6.bias": head["classifier.bias"],
    }
    model = embedding_classifier(7, embedding_model(32, "tiny", 16, vit_overrides=TINY_VIT_48))
    load_torch_weights(model, renamed, allow_missing=("embedding/block", "embedding/patch", "embedding/final"))
    dense = model.get_layer("embedding").get_layer("head_dense_2")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(dense.kernel), head["head.3.weight"].T)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("classifier").bias), head["classifier.bias"]
    )


def test_unknown_names_and_missing_weights_are_errors():
    state, _, _, _ = fixture("D_dual_triple")
    model = fusion_regressor(48, 16, 16, attention_type="triple")
    with pytest.raises(ValueError, match="'extra.weight'"):
        load_torch_weights(model, state | {"extra.weight": np.zeros((2, 2), "float32")})
    with pytest.raises(ValueError, match="get no value.*attention_hidden/kernel"):
        load_torch_weights(model, {k: v for k, v in state.items() if k != "attention.0.weight"})
    with pytest.raises(ValueError, match="converts to shape"):
        load_torch_weights(fusion_regressor(48, 16, 8, attention_type="triple"), state)

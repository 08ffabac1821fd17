"""The original's PyTorch weights reproduce the original's outputs (fixtures of `A_*`, float32, 1e-5)."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from modeling.losses.segmentation import AttentionSupervisionLoss
from modeling.nodule_segmentation import (
    anatomical_attention_module,
    improved_model,
    load_torch_state_dict,
    read_state_dict,
    supervised_attention_module,
)

pytestmark = pytest.mark.multibackend

# Copied from the project's shared fixtures (written by the original PyTorch code; see its README.md).
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nodule_segmentation"


def fixture(stem):
    data = np.load(FIXTURES / f"{stem}.npz")
    sidecar = json.loads((FIXTURES / f"{stem}.json").read_text())
    return data, sidecar, read_state_dict(FIXTURES / f"{stem}.npz")


def channels_last(array):
    return array.transpose(0, 2, 3, 1) if array.ndim == 4 else array


def assert_matches(got, expected, sidecar):
    tolerance = sidecar["tolerance"]
    atol = tolerance["atol_times_max_abs_expected"] * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(np.asarray(got), channels_last(expected), rtol=tolerance["rtol"], atol=atol)


def test_supervised_attention_module():
    data, sidecar, state = fixture("A_supervised_attention")
    model = supervised_attention_module(64)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == sidecar["param_counts"]["parameters"]
    assert len(load_torch_state_dict(model, state)) == 13  # 7 conv + 6 BatchNorm modules
    out = model(channels_last(data["input__drr"]), training=False)
    assert_matches(out["attention"], data["output__attention"], sidecar)
    assert_matches(out["attention_logits"], data["output__attention_logits"], sidecar)


@pytest.mark.parametrize("upsampling", ["exact", "conv_first"])
def test_anatomical_attention_module(upsampling):
    data, sidecar, state = fixture("A_anatomical_attention")
    model = anatomical_attention_module(64, feature_channels=64, upsampling=upsampling)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == sidecar["param_counts"]["parameters"]
    load_torch_state_dict(model, state)
    out = model([channels_last(data["input__drr"]), channels_last(data["input__xray_features"])], training=False)
    if upsampling == "conv_first":  # the cheaper approximation is another function (see UpsampledConv2D)
        assert not np.allclose(out["xray_att"], channels_last(data["output__xray_att"]), rtol=1e-3, atol=1e-3)
        return
    for name in ("drr_att", "xray_att", "fused_att", "refined_att", "pre_normalization", "attention"):
        assert_matches(out[name], data[f"output__{name}"], sidecar)


def test_improved_model_after_the_backbone():
    data, sidecar, state = fixture("A_improved_model")
    model = improved_model(64, backbone=None, alpha=0.3)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == sidecar["param_counts"]["parameters"]
    assert len(load_torch_state_dict(model, state)) == len({k.rpartition(".")[0] for k in state})
    inputs = [channels_last(data["input__xray_features"]), channels_last(data["input__drr"])]
    probe = keras.Model(
        model.inputs,
        {
            **model.output,
            "adapted_feat": model.get_layer("nodule_adaptation_6").output,
            "modulated_feat": model.get_layer("attention_modulation").output,
        },
    )
    out = probe(inputs, training=False)
    for name in ("segmentation", "attention", "nodule_features", "adapted_feat", "modulated_feat"):
        assert_matches(out[name], data[f"output__{name}"], sidecar)
    mask = channels_last(data["input__ground_truth_mask"])
    loss = AttentionSupervisionLoss()(mask, out["attention"])
    assert_matches(keras.ops.convert_to_numpy(loss), data["output__attention_loss"], sidecar)

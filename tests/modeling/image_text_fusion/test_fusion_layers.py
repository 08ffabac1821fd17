"""The nine fusion layers: NumPy re-computations of their formulas with each layer's own weights, the
original PyTorch modules' outputs (fixtures B_fusion_*), serialization, training-time behaviour."""

import json
import pathlib

import keras
import numpy as np
import pytest
from scipy.special import erf

from modeling.fusion import FUSION_LAYERS, build_vector_fusion, canonical_fusion_type
from modeling.image_text_fusion.convert import load_fusion_state, read_state_dict
from tests.checkers import run_serialization_test

pytestmark = pytest.mark.multibackend
FIXTURES = pathlib.Path(__file__).parents[2] / "fixtures" / "image_text_fusion"
D, HEADS = 8, 2


def gelu(x):
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def dense(layer, x):
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    return x @ kernel + bias


def sequential(model, x, activation=gelu):
    """Dense layers of an `mlp`: activation after every Dense that has one."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            x = dense(layer, x)
            if layer.activation is not keras.activations.linear:
                x = activation(x)
    return x


def norm(layer, x):
    gamma, beta = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * gamma + beta


def mha(layer, query, tokens):
    wq, bq, wk, bk, wv, bv, wo, bo = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    q = np.einsum("bqd,dhk->bhqk", query, wq) + bq[None, :, None, :]
    k = np.einsum("btd,dhk->bhtk", tokens, wk) + bk[None, :, None, :]
    v = np.einsum("btd,dhk->bhtk", tokens, wv) + bv[None, :, None, :]
    weights = softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1]))
    return np.einsum("bhqk,hkd->bqd", weights @ v, wo) + bo


def encoder(layers, x):
    for layer in layers:
        x = norm(layer.norm1, x + mha(layer.self_attn, x, x))
        x = norm(layer.norm2, x + dense(layer.linear2, gelu(dense(layer.linear1, x))))
    return x.mean(1)


def numpy_fusion(layer, v, t, route=None):
    """Each type's formula (reference section B) with the layer's weights."""
    tokens, joint = np.stack([v, t], 1), np.concatenate([v, t], -1)
    kind = {layer_class: name for name, layer_class in FUSION_LAYERS.items()}[type(layer)]

    def blend():
        g = sigmoid(dense(layer.gate, joint))
        return g * v + (1 - g) * t + mha(layer.cross_attn, tokens, tokens).mean(1)

    if kind == "simple":
        return encoder(layer.encoder_layers, tokens)
    if kind == "transformer_concat":
        return encoder(layer.encoder_layers, tokens + keras.ops.convert_to_numpy(layer.modality_token))
    if kind == "cross_attention":
        z = mha(layer.cross_attn, norm(layer.norm1, (v + t) / 2)[:, None], tokens)[:, 0]
        return z + sequential(layer.ffn, norm(layer.norm2, z))
    if kind == "gated":
        g = sigmoid(dense(layer.gate, joint))
        return g * v + (1 - g) * t
    if kind == "film":
        return dense(layer.mlp_gamma, t) * v + dense(layer.mlp_beta, t)
    if kind == "concat_mlp":
        return sequential(layer.mlp, joint)
    if kind == "modality_dropout":
        return sequential(layer.gated, joint, activation=lambda x: np.maximum(x, 0))
    if kind == "shomr":
        c = softmax(sequential(layer.conf_net, joint))
        a = mha(layer.cross_attn, tokens, tokens).mean(1)
        s = norm(layer.norm1, c[:, :1] * v + c[:, 1:] * t + a)
        b = norm(layer.norm2, blend())
        routes = [sequential(layer.proj_single, v), sequential(layer.proj_single, t), b + sequential(layer.ffn, b)]
        r = softmax(sequential(layer.router, joint)).argmax(-1)
        hard = np.stack([routes[k][i] for i, k in enumerate(r)])
        return np.where(c.max(-1, keepdims=True) > 0.6, hard, s + sequential(layer.ffn, s))
    if kind == "energy_aware_adaptive":
        route = softmax(sequential(layer.router, joint)).argmax(-1) if route is None else route
        routes = [v, t, sequential(layer.ffn, norm(layer.norm, blend()))]
        return np.stack([routes[k][i] for i, k in enumerate(route)])
    raise AssertionError(kind)


def randomise(layer, rng):
    """Non-trivial weights (LayerNorm gamma != 1, biases != 0) so that a wrong formula shows."""
    for weight in layer.weights:
        weight.assign(rng.normal(0, 0.4, weight.shape).astype("float32") + (1.0 if "gamma" in weight.path else 0.0))


@pytest.mark.parametrize("fusion_type", list(FUSION_LAYERS))
def test_layer_computes_its_formula_with_its_own_weights(fusion_type):
    rng = np.random.default_rng(0)
    v, t = (rng.normal(size=(5, D)).astype("float32") * np.array([[1], [2], [4], [8], [16]], "float32") for _ in "vt")
    layer = build_vector_fusion(fusion_type, D, HEADS, layers=2)
    layer(v, t)
    randomise(layer, rng)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(v, t)), numpy_fusion(layer, v, t), rtol=1e-4, atol=1e-4)


def fixture(fusion_type):
    state = read_state_dict(FIXTURES / f"B_fusion_{fusion_type}.npz")
    with np.load(FIXTURES / f"B_fusion_{fusion_type}.npz") as arrays:
        data = {key: arrays[key] for key in arrays.files}
    return state, data, json.loads((FIXTURES / f"B_fusion_{fusion_type}.json").read_text())


def assert_close(got, expected, tolerance):
    atol = tolerance["atol_times_max_abs_expected"] * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), expected, rtol=tolerance["rtol"], atol=atol)


@pytest.mark.parametrize("fusion_type", list(FUSION_LAYERS))
def test_original_weights_reproduce_the_original_outputs(fusion_type):
    state, data, sidecar = fixture(fusion_type)
    config = sidecar["config"]
    faithful = {"add_modality_token": False} if fusion_type == "transformer_concat" else {}
    layer = build_vector_fusion(fusion_type, config["D"], config["heads"], config["layers"], **faithful)
    load_fusion_state(layer, state)
    forced = {"route": data["output__route_choice"]} if fusion_type == "energy_aware_adaptive" else {}
    assert_close(layer(data["input__v"], data["input__t"], **forced), data["output__y"], sidecar["tolerance"])
    if fusion_type == "energy_aware_adaptive":  # the routing distribution the original sampled from
        probs = layer.route_probabilities(data["input__v"], data["input__t"])
        assert_close(probs, data["output__route_probs"], sidecar["tolerance"])
    if fusion_type == "shomr":
        joint = np.concatenate([data["input__v"], data["input__t"]], -1)
        assert_close(layer.confidences(joint, False), data["output__conf_weights"], sidecar["tolerance"])


def test_energy_aware_inference_is_deterministic_by_default_and_samples_when_faithful():
    rng = np.random.default_rng(1)
    v, t = rng.normal(size=(64, D)).astype("float32"), rng.normal(size=(64, D)).astype("float32")
    layer = FUSION_LAYERS["energy_aware_adaptive"](dim=D, heads=HEADS, seed=3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(v, t)), keras.ops.convert_to_numpy(layer(v, t)))
    faithful = FUSION_LAYERS["energy_aware_adaptive"](dim=D, heads=HEADS, inference_routing="sample", seed=3)
    assert not np.array_equal(keras.ops.convert_to_numpy(faithful(v, t)), keras.ops.convert_to_numpy(faithful(v, t)))


def test_energy_term_is_added_in_training_when_over_budget():
    v = t = np.ones((4, D), "float32")
    layer = FUSION_LAYERS["energy_aware_adaptive"](dim=D, heads=HEADS, energy_budget=0.0)
    layer(v, t, training=True)
    probs = keras.ops.convert_to_numpy(layer.route_probabilities(v, t))
    expected = 0.01 * (probs @ np.array([3.2, 4.1, 9.8])).mean()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.losses[0]), expected, rtol=1e-5)
    off = FUSION_LAYERS["energy_aware_adaptive"](dim=D, heads=HEADS, energy_budget=0.0, energy_loss=False)
    off(v, t, training=True)
    assert not off.losses


def test_modality_dropout_drops_whole_modalities_in_training_only():
    v, t = np.ones((3, D), "float32"), np.full((3, D), 2.0, "float32")
    layer = FUSION_LAYERS["modality_dropout"](dim=D, p_img=1.0, p_txt=0.0)
    dropped = keras.ops.convert_to_numpy(layer(v, t, training=True))
    np.testing.assert_allclose(dropped, numpy_fusion(layer, 0 * v, t), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(v, t)), numpy_fusion(layer, v, t), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fusion_type", list(FUSION_LAYERS))
def test_config_round_trip(fusion_type):
    run_serialization_test(build_vector_fusion(fusion_type, D, HEADS, layers=2))


def test_unknown_type_is_refused_with_the_closest_name():
    assert canonical_fusion_type("Cross-Attention") == "cross_attention"
    with pytest.raises(ValueError, match="Did you mean 'cross_attention'"):
        build_vector_fusion("crossattn", D)

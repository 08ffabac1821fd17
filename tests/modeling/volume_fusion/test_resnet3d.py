"""The 3D ResNet reproduces MONAI's forward pass from its weights, and has MONAI's parameter count."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from modeling.backbones.resnet3d import EXPANSION, ZeroChannelPadding, resnet3d, stage_widths
from modeling.backbones.resnet3d_convert import load_torch_state_dict, read_state_dict, run
from tests.checkers import run_serialization_test

# Written by the original PyTorch code (MONAI 1.6.1); copied from the project's shared fixtures.
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "volume_fusion"
CASES = {"C_monai_resnet18_3d": 18, "C_monai_resnet50_3d": 50}
STAGE_OUTPUTS = {
    "after_maxpool": "maxpool",
    "after_layer1": "layer1_{}_out",
    "after_layer2": "layer2_{}_out",
    "after_layer3": "layer3_{}_out",
    "after_layer4": "layer4_{}_out",
}


def stage_model(model, depth):
    from modeling.backbones.resnet3d import DEPTHS

    blocks = DEPTHS[depth][1]
    names = {
        key: name.format(blocks[int(key[-1]) - 1] - 1) if "{}" in name else name for key, name in STAGE_OUTPUTS.items()
    }
    outputs = {"features": model.output} | {key: model.get_layer(name).output for key, name in names.items()}
    return keras.Model(model.input, outputs)


@pytest.mark.multibackend
@pytest.mark.parametrize("stem", sorted(CASES))
def test_monai_weights_reproduce_every_fixture_output(stem):
    sidecar = json.loads((FIXTURES / f"{stem}.json").read_text())
    widen = float(sidecar["constructor"].split("widen_factor=")[1].rstrip(")"))
    model = resnet3d(CASES[stem], (32, 32, 32, 1), widen_factor=widen)
    loaded = load_torch_state_dict(model, read_state_dict(FIXTURES / f"{stem}.npz"))
    assert len(loaded) == len([e for e in sidecar["state_dict"] if e["name"].endswith(".weight")])
    data = np.load(FIXTURES / f"{stem}.npz")
    got = stage_model(model, CASES[stem])(data["input__x"].transpose(0, 2, 3, 4, 1), training=False)
    got = {key: keras.ops.convert_to_numpy(value) for key, value in got.items()}  # eager: no compile of one call
    tolerance = sidecar["tolerance"]
    assert set(got) == {key.removeprefix("output__") for key in data.files if key.startswith("output__")}
    for key, value in got.items():
        expected = data[f"output__{key}"]
        if expected.ndim == 5:
            expected = expected.transpose(0, 2, 3, 4, 1)
        atol = tolerance["atol_times_max_abs_expected"] * max(1.0, np.abs(expected).max())
        np.testing.assert_allclose(value, expected, rtol=tolerance["rtol"], atol=atol, err_msg=key)


def monai_parameter_count(depth, in_channels=1, widen_factor=1.0):
    """``sum(p.numel() for p in parameters())`` of MONAI's ResNet without its classifier, counted from
    the layout (not from the Keras model): BatchNorm running statistics are buffers, not parameters."""
    kind, blocks = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}[depth]
    expansion = {"basic": 1, "bottleneck": 4}[kind]

    def conv(cin, cout, k, bias=False):
        return cin * cout * k**3 + (cout if bias else 0)

    def bn(c):
        return 2 * c  # gamma and beta

    widths = [int(c * widen_factor) for c in (64, 128, 256, 512)]
    total = conv(in_channels, widths[0], 7) + bn(widths[0])
    cin = widths[0]
    for stage, (width, count) in enumerate(zip(widths, blocks, strict=True)):
        for index in range(count):
            if kind == "basic":
                total += conv(cin, width, 3) + bn(width) + conv(width, width, 3) + bn(width)
            else:
                total += conv(cin, width, 1) + bn(width) + conv(width, width, 3) + bn(width)
                total += conv(width, 4 * width, 1) + bn(4 * width)
            if index == 0 and (stage > 0 or cin != width * expansion):
                total += conv(cin, width * expansion, 1, bias=True) + bn(width * expansion)
            cin = width * expansion
    return total


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_resnet50_parameter_count_equals_monai_without_classifier():
    model = resnet3d(50, (None, None, None, 1))
    assert trainable_count(model) == monai_parameter_count(50)
    assert model.output.shape == (None, 2048)
    for depth in (18, 34):
        assert trainable_count(resnet3d(depth, (None, None, None, 1))) == monai_parameter_count(depth)
    # the layout count agrees with what torch counted for the fixtures' modules
    for stem, depth in CASES.items():
        sidecar = json.loads((FIXTURES / f"{stem}.json").read_text())
        widen = float(sidecar["constructor"].split("widen_factor=")[1].rstrip(")"))
        assert monai_parameter_count(depth, widen_factor=widen) == sidecar["param_counts"]["parameters"]


def test_medicalnet_options_strided_stem_shortcut_a_and_channels():
    model = resnet3d(18, (16, 16, 16, 3), widen_factor=0.0625, stem_stride=2, shortcut_type="A", bias_downsample=False)
    assert not any("downsample_0" in layer.name for layer in model.layers)  # type A: no shortcut weights
    assert model.get_layer("maxpool").output.shape == (None, 4, 4, 4, 4)  # 16 -> stem 8 -> pool 4
    features = model.predict(np.random.default_rng(0).uniform(size=(2, 16, 16, 16, 3)).astype("float32"), verbose=0)
    assert features.shape == (2, stage_widths(0.0625)[3] * EXPANSION["basic"])
    run_serialization_test(ZeroChannelPadding(5))


def test_converter_command_and_mismatch_errors(tmp_path):
    output = run([str(FIXTURES / "C_monai_resnet18_3d.npz"), str(tmp_path / "r18.weights.h5"), "--depth", "18",
                  "--widen_factor", "0.125"])  # fmt: skip
    model = resnet3d(18, (32, 32, 32, 1), widen_factor=0.125)
    model.load_weights(output)
    state = read_state_dict(FIXTURES / "C_monai_resnet18_3d.npz")
    kernel = keras.ops.convert_to_numpy(model.get_layer("conv1").kernel)
    np.testing.assert_array_equal(kernel, state["conv1.weight"].transpose(2, 3, 4, 1, 0))
    with pytest.raises(ValueError, match="Keras layers without a module"):
        load_torch_state_dict(resnet3d(34, (None, None, None, 1), widen_factor=0.125), state)
    with pytest.raises(ValueError, match="modules without a Keras layer .*'extra'"):
        load_torch_state_dict(model, state | {"extra.weight": np.zeros((2, 2), "float32")})
    assert load_torch_state_dict(model, state | {"fc.weight": np.zeros((2, 64), "float32")}, ignore=("fc.",))


def test_pth_checkpoints_need_torch(tmp_path):
    torch = pytest.importorskip("torch")
    state = read_state_dict(FIXTURES / "C_monai_resnet18_3d.npz")
    torch.save({"state_dict": {f"module.{k}": torch.from_numpy(v) for k, v in state.items()}}, tmp_path / "m.pth")
    again = read_state_dict(tmp_path / "m.pth")
    assert sorted(again) == sorted(state)

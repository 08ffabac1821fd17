"""Gate-weight and attention-map loggers: logged keys, JSON, PNG files, clear errors."""

import importlib.util
import json
import warnings

import keras
import numpy as np
import pytest

from callbacks import AttentionMapLogger, GateWeightLogger
from modeling.boneage import attn_sex_model, attn_sex_model_improved
from tests.checkers import tiny_backbone

pytestmark = pytest.mark.multibackend

TENSORBOARD = keras.backend.backend() == "tensorflow" and importlib.util.find_spec("tensorboard") is not None

IMG_DIMS = (32, 32, 3)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = {"backbone": tiny_backbone, "weights": None, "dense_units": 16, "gender_units": 8}


def data(size=6):
    rng = np.random.default_rng(0)
    inputs = [
        rng.uniform(-1, 1, size=(size, *IMG_DIMS)).astype("float32"),
        (np.arange(size) % 2).reshape(size, 1).astype("float32"),
    ]
    return inputs, rng.normal(size=(size, 1)).astype("float32")


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    keras.utils.set_random_seed(5)
    folder = tmp_path_factory.mktemp("interpretability")
    model = attn_sex_model_improved(IMG_DIMS, **TINY)
    inputs, targets = data()
    gates = GateWeightLogger((inputs, targets), folder / "gate", bins=4, batch_size=4, log_dir=folder / "tb")
    maps = AttentionMapLogger(inputs, folder / "attention", every=2, max_images=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(inputs, targets, epochs=3, batch_size=3, verbose=0, callbacks=[gates, maps])
    skipped = [w for w in caught if "writes no TensorBoard histograms" in str(w.message)]
    return folder, gates, maps, history, skipped


def test_gate_logger_writes_scalars_json_and_png(logged_run):
    folder, gates, _, history, _ = logged_run
    means, stds = history.history["gate_mean"], history.history["gate_std"]
    assert len(means) == len(stds) == 3
    assert all(0.0 < m < 1.0 for m in means) and all(s >= 0.0 for s in stds)
    record = json.loads((folder / "gate" / "gate_weights.json").read_text())
    assert record["layer"] == "fusion_gate" and record["bin_edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert record["epoch"] == [0, 1, 2] and record["gate_mean"] == means
    assert all(sum(counts) == 6 * 8 for counts in record["histogram"])  # 6 samples x 8 gate units
    assert (folder / "gate" / "gate_weights.png").read_bytes().startswith(PNG_SIGNATURE)
    assert gates.history["histogram"] == record["histogram"]


def test_gate_histograms_go_to_tensorboard_or_a_warning_says_why_not(logged_run):
    folder, *_, skipped = logged_run
    events = list((folder / "tb" / "gate").glob("events.out.tfevents.*"))
    assert bool(events) == TENSORBOARD
    assert len(skipped) == (0 if TENSORBOARD else 1)


def test_attention_logger_writes_overlays_every_n_epochs(logged_run):
    folder, _, maps, *_ = logged_run
    assert [p.rsplit("/", 1)[-1] for p in maps.saved] == ["attention_epoch_002.png"]
    assert (folder / "attention" / "attention_epoch_002.png").read_bytes().startswith(PNG_SIGNATURE)


def test_loggers_refuse_models_without_their_layer(tmp_path):
    inputs, _ = data()
    no_gate = attn_sex_model(IMG_DIMS, **TINY)
    logger = GateWeightLogger(inputs, tmp_path)
    logger.set_model(no_gate)
    with pytest.raises(ValueError, match="gated fusion .*'fusion_gate'"):
        logger.on_train_begin()
    maps = AttentionMapLogger(inputs, tmp_path, layer_name="fusion_gate")
    maps.set_model(attn_sex_model_improved(IMG_DIMS, **TINY))
    with pytest.raises(ValueError, match=r"\(batch, h, w, 1\)"):
        maps.on_train_begin()


def test_bad_arguments_fail(tmp_path):
    inputs, _ = data()
    with pytest.raises(ValueError, match="bins"):
        GateWeightLogger(inputs, tmp_path, bins=0)
    with pytest.raises(ValueError, match="every"):
        AttentionMapLogger(inputs, tmp_path, every=0)


def test_logger_and_tta_configs_are_plain_json(tmp_path):
    import json

    import numpy as np

    from callbacks import AttentionMapLogger, GateWeightLogger, TestTimeAugmentation
    from modeling.inference import Rotation

    inputs = [np.zeros((2, 32, 32, 3), "float32"), np.ones((2, 1), "float32")]
    gate = GateWeightLogger(inputs, tmp_path / "gate", bins=5, log_dir=tmp_path / "tb")
    attention = AttentionMapLogger(inputs, tmp_path / "maps", every=3, max_images=2)
    tta = TestTimeAugmentation(
        (inputs, np.zeros((2, 1))), epochs=[4, 1], transforms=[Rotation(3.0)], n=4, boneage_std=28.0
    )
    assert json.loads(json.dumps(gate.get_config()))["bins"] == 5
    assert attention.get_config() == {
        "output_dir": str(tmp_path / "maps"),
        "every": 3,
        "layer_name": "attention_map",
        "max_images": 2,
        "name": "attention",
    }
    assert gate.get_config() == {
        "output_dir": str(tmp_path / "gate"),
        "layer_name": "fusion_gate",
        "bins": 5,
        "batch_size": 32,
        "log_dir": str(tmp_path / "tb"),
        "name": "gate",
    }
    config = json.loads(json.dumps(tta.get_config()))
    assert config["epochs"] == [1, 4] and config["n"] == 4 and config["boneage_std"] == 28.0
    assert config["transforms"] == [{**Rotation(3.0).get_config(), "class_name": "Rotation"}]
    assert config["transforms"][0]["max_degrees"] == 3.0


# A gate of another system: "modality_gate" = sigmoid(Dense(4)) of [projection(features), extra],
# either in the model itself or in nested blocks fed by the model's "projection" layer.
def gated_mix(left, right):
    gate = keras.layers.Dense(4, activation="sigmoid", name="modality_gate")(keras.layers.Concatenate()([left, right]))
    return keras.layers.Multiply()([gate, keras.layers.Dense(4)(left)])


def gated_model(blocks=()):
    features, extra = keras.Input((6,), name="features"), keras.Input((3,), name="extra")
    projected = keras.layers.Dense(5, name="projection")(features)
    mixed = [gated_mix(projected, extra)] if not blocks else []
    for name in blocks:
        left, right = keras.Input((5,)), keras.Input((3,))
        mixed.append(keras.Model([left, right], gated_mix(left, right), name=name)([projected, extra]))
    joined = mixed[0] if len(mixed) == 1 else keras.layers.Concatenate()(mixed)
    model = keras.Model([features, extra], keras.layers.Dense(1)(joined))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def gate_data(size=7):
    rng = np.random.default_rng(1)
    inputs = {
        "features": rng.normal(size=(size, 6)).astype("float32"),
        "extra": rng.normal(size=(size, 3)).astype("float32"),
    }
    return inputs, rng.normal(size=(size, 1)).astype("float32")


class DirectGates(keras.callbacks.Callback):
    """Mean and std of the gate after every epoch, computed in numpy from the layers' weights."""

    def __init__(self, inputs, block=None):
        super().__init__()
        self.inputs, self.block, self.means, self.stds = inputs, block, [], []

    def on_epoch_end(self, epoch, logs=None):
        owner = self.model if self.block is None else self.model.get_layer(self.block)
        (p_kernel, p_bias), (g_kernel, g_bias) = (
            [keras.ops.convert_to_numpy(w) for w in layer.weights]
            for layer in (self.model.get_layer("projection"), owner.get_layer("modality_gate"))
        )
        projected = self.inputs["features"] @ p_kernel + p_bias
        logits = np.concatenate([projected, self.inputs["extra"]], axis=1) @ g_kernel + g_bias
        gates = 1.0 / (1.0 + np.exp(-logits.astype("float64")))
        self.means.append(gates.mean())
        self.stds.append(gates.std())


@pytest.mark.parametrize(
    "blocks, layer_name, block",
    [
        ((), "modality_gate", None),  # in the model itself
        (("fusion_block",), "modality_gate", "fusion_block"),  # found inside the nested model
        (("block_a", "block_b"), "block_b/modality_gate", "block_b"),  # named by its nested model
    ],
)
def test_gate_logger_logs_any_named_gate_as_computed_directly(tmp_path, blocks, layer_name, block):
    model = gated_model(blocks)
    inputs, targets = gate_data()
    logger = GateWeightLogger((inputs, targets), tmp_path, layer_name=layer_name, bins=5, batch_size=3, name="modality")
    direct = DirectGates(inputs, block)
    history = model.fit(inputs, targets, epochs=3, batch_size=4, verbose=0, callbacks=[logger, direct])
    np.testing.assert_allclose(history.history["modality_mean"], direct.means, rtol=1e-5)
    np.testing.assert_allclose(history.history["modality_std"], direct.stds, rtol=1e-4)
    assert len(set(history.history["modality_mean"])) == 3  # it trains: a new value every epoch
    assert "gate_mean" not in history.history
    record = json.loads((tmp_path / "modality_weights.json").read_text())
    assert record["layer"] == layer_name and record["modality_mean"] == history.history["modality_mean"]
    assert all(sum(counts) == 7 * 4 for counts in record["histogram"])  # 7 samples x 4 gate units
    assert (tmp_path / "modality_weights.png").read_bytes().startswith(PNG_SIGNATURE)
    assert not (tmp_path / "gate_weights.json").exists()


def test_gate_in_several_nested_models_must_be_named_by_its_model(tmp_path):
    logger = GateWeightLogger(gate_data()[0], tmp_path, layer_name="modality_gate")
    logger.set_model(gated_model(("block_a", "block_b")))
    with pytest.raises(ValueError, match=r"\['block_a', 'block_b'\].*'block_a/modality_gate'"):
        logger.on_train_begin()
    logger = GateWeightLogger(gate_data()[0], tmp_path, layer_name="block_c/modality_gate")
    logger.set_model(gated_model(("block_a", "block_b")))
    with pytest.raises(ValueError, match=r"nested models: \['block_a', 'block_b'\]"):
        logger.on_train_begin()


def test_attention_logger_takes_a_nested_map_and_a_file_prefix(tmp_path):
    image = keras.Input((16, 16, 3), name="image")
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    saliency = keras.layers.Conv2D(1, 1, activation="tanh", name="saliency")(features)
    encoder = keras.Model(image, keras.layers.Multiply()([features, saliency]), name="encoder")
    outer_image = keras.Input((16, 16, 3), name="image")
    pooled = keras.layers.GlobalAveragePooling2D()(encoder(outer_image))
    model = keras.Model(outer_image, keras.layers.Dense(1)(pooled))
    model.compile(optimizer="adam", loss="mse")
    images = np.random.default_rng(2).uniform(-1, 1, size=(4, 16, 16, 3)).astype("float32")
    maps = AttentionMapLogger(images, tmp_path, layer_name="saliency", max_images=2, name="saliency")
    model.fit(images, np.zeros((4, 1), "float32"), epochs=2, verbose=0, callbacks=[maps])
    assert [path.rsplit("/", 1)[-1] for path in maps.saved] == ["saliency_epoch_001.png", "saliency_epoch_002.png"]
    assert (tmp_path / "saliency_epoch_002.png").read_bytes().startswith(PNG_SIGNATURE)
    assert maps.get_config()["name"] == "saliency"


@pytest.mark.parametrize("outer", ["functional", "sequential"])
def test_gate_logger_reaches_into_nested_sequentials(tmp_path, outer):
    inner = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, activation="sigmoid", name="unit_gate"), keras.layers.Dense(2)],
        name="encoder",
    )
    if outer == "sequential":
        model = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(1)])
    else:
        features = keras.Input((3,))
        model = keras.Model(features, keras.layers.Dense(1)(inner(features, training=False)))
    data = np.random.default_rng(3).normal(size=(5, 3)).astype("float32")
    logger = GateWeightLogger(data, tmp_path, layer_name="unit_gate", bins=2)
    logger.set_model(model)
    logger.on_train_begin()
    logs = {}
    logger.on_epoch_end(0, logs)
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in inner.get_layer("unit_gate").weights)
    gates = 1.0 / (1.0 + np.exp(-(data @ kernel + bias).astype("float64")))
    assert logs == pytest.approx({"gate_mean": gates.mean(), "gate_std": gates.std()}, rel=1e-5)

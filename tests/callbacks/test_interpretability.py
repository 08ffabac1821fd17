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

    from callbacks import AttentionMapLogger, GateWeightLogger, Rotation, TestTimeAugmentation

    inputs = [np.zeros((2, 32, 32, 3), "float32"), np.ones((2, 1), "float32")]
    gate = GateWeightLogger(inputs, tmp_path / "gate", bins=5, log_dir=tmp_path / "tb")
    attention = AttentionMapLogger(inputs, tmp_path / "maps", every=3, max_images=2)
    tta = TestTimeAugmentation((inputs, np.zeros((2, 1))), epochs=[4, 1], transforms=[Rotation(3.0)], n=4, boneage_std=28.0)
    assert json.loads(json.dumps(gate.get_config()))["bins"] == 5
    assert attention.get_config() == {"output_dir": str(tmp_path / "maps"), "every": 3, "layer_name": "attention_map", "max_images": 2}
    config = json.loads(json.dumps(tta.get_config()))
    assert config["epochs"] == [1, 4] and config["n"] == 4 and config["boneage_std"] == 28.0
    assert config["transforms"] == [{"max_degrees": 3.0, "class_name": "Rotation"}]

"""The training command end to end on tiny synthetic hips: outputs, resume after a kill, bad flags, data parallel."""

import json
import socket

import keras
import numpy as np
import pandas as pd
import pytest

from tests.checkers import run_on_two_jax_cpu_devices
from training.volume_fusion import phantom
from training.volume_fusion import train as train_volume_fusion
from training.volume_fusion.config import VolumeFusionConfig

TINY = ["--volume_size", "12", "--widen_factor", "0.0625", "--batch_size", "4", "--jit_compile", "off"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hips") / "data"
    phantom.make_dataset(folder, n_train=16, n_val=8, n_test=8, size=12)
    return folder


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("run") / "run"
    argv = ["--data_dir", str(data_dir), *TINY, "--epochs", "3", "--output_dir", str(output), "--select_by", "auc"]
    return output, train_volume_fusion.run(argv)


def test_results_predictions_and_plots(finished_run, data_dir):
    output, results = finished_run
    assert json.loads((output / "results.json").read_text()) == results
    assert results["epochs_trained"] == 3 and results["n_test"] == 8
    for key in ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc", "pr_auc", "confusion_matrix"):
        assert key in results["test"] and key in results["val"]
    predictions = pd.read_csv(output / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    assert len(test) == 8 and test["probability"].between(0, 1).all()
    from training.classification_metrics import binary_metrics

    assert binary_metrics(test["target"], test["probability"]) == results["test"]
    model = keras.saving.load_model(output / "checkpoint.keras", safe_mode=True)
    assert sorted(model.input) == ["metadata", "volume"]
    assert set(results["thresholds_from_val"]) == {"youden", "f1"}
    log = pd.read_csv(output / "training_log.csv")
    expected_lr = [1e-7 + (1e-4 - 1e-7) * (1 + np.cos(np.pi * e / 3)) / 2 for e in range(3)]
    np.testing.assert_allclose(log["learning_rate"], expected_lr, rtol=1e-5)  # cosine annealing per epoch
    assert {path.name for path in (output / "plots").iterdir()} >= {"test_roc.png", "test_pr.png"}
    with pytest.raises(SystemExit, match="already holds a finished train-volume-fusion run"):
        train_volume_fusion.run(["--data_dir", str(data_dir), *TINY, "--epochs", "3", "--output_dir", str(output),
                                 "--select_by", "auc"])  # fmt: skip


def test_resume_after_a_kill(data_dir, tmp_path, monkeypatch):
    argv = ["--data_dir", str(data_dir), *TINY, "--epochs", "3", "--output_dir", str(tmp_path / "run"),
            "--model", "metadata_only", "--loss", "bce"]  # fmt: skip

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("simulated kill")

    original = train_volume_fusion.callbacks_for
    monkeypatch.setattr(train_volume_fusion, "callbacks_for", lambda *a: original(*a) + [Crash()])
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_volume_fusion.run(argv)
    monkeypatch.setattr(train_volume_fusion, "callbacks_for", original)
    results = train_volume_fusion.run(argv)
    assert results["epochs_trained"] == 3  # epochs 1-2 before the kill, epoch 3 after resuming


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--focal_alpha", "2"], "--focal_alpha must be 'dynamic' or a number in"),
        (["--gender_column", "Sex"], "--gender_column 'Sex' is not in --metadata_columns"),
        (["--train_table", "a.xlsx"], "go together"),
        (["--min_lr", "1"], "--min_lr must be in"),
    ],
)
def test_bad_flags_fail_before_training(flags, message, capsys):
    with pytest.raises(SystemExit):
        train_volume_fusion.run(flags)
    assert message in capsys.readouterr().err


def test_bad_data_fails_naming_the_file(data_dir, tmp_path):
    with pytest.raises(
        SystemExit, match=r"Data error: .*train.xlsx, sheet .2year model. lacks the column\(s\) \['BMI'\]"
    ):
        train_volume_fusion.run(["--data_dir", str(data_dir), *TINY, "--metadata_columns", "Age,BMI",
                                 "--gender_column", "none", "--output_dir", str(tmp_path / "r")])  # fmt: skip


def test_original_preset_restores_the_original_settings():
    config = VolumeFusionConfig.from_preset("original")
    assert (config.depth, config.volume_size, config.batch_size, config.epochs) == (50, 64, 128, 100)
    assert (config.optimizer, config.lr, config.min_lr, config.seed, config.select_by) == (
        "adam",
        1e-4,
        1e-7,
        42,
        "accuracy",
    )
    assert (config.loss, config.pos_weight, config.label_smoothing) == ("bce", 3.0, 0.01)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_data_parallel_on_two_logical_cpu_devices(data_dir, tmp_path):
    # the metadata-only model keeps the JAX compile short (a 3D CNN's takes minutes on 2 shared cores)
    argv = ["--data_dir", str(data_dir), *TINY, "--epochs", "1", "--distribute", "data_parallel", "--no-augment",
            "--model", "metadata_only", "--output_dir", str(tmp_path / "run")]  # fmt: skip
    run_on_two_jax_cpu_devices(["-m", "training.volume_fusion.train", *argv])
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert (results["distribute"], results["replicas"], results["backend"]) == ("data_parallel", 2, "jax")
    assert results["n_test"] == 8 and results["epochs_trained"] == 1

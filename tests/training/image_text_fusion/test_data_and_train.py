"""Data layouts and their errors, the embedded generator, metrics, config, and one end-to-end run."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from training.cli import ConfigError
from training.data.tables import DataError
from training.image_text_fusion import train as train_module
from training.image_text_fusion.config import FusionConfig
from training.image_text_fusion.data import label_maps, read_medpix_split, read_wound_split
from training.image_text_fusion.metrics import mcnemar, task_metrics
from training.image_text_fusion.synthetic import write_synthetic_wound
from training.image_text_fusion.train import train


@pytest.fixture(scope="module")
def wound(tmp_path_factory):
    return write_synthetic_wound(tmp_path_factory.mktemp("wound"), samples=40, image_size=16)


def test_generator_is_deterministic_and_splits_70_15_15(wound, tmp_path):
    again = write_synthetic_wound(tmp_path, samples=40, image_size=16)
    assert (wound / "metadata.csv").read_text() == (again / "metadata.csv").read_text()
    assert [len(read_wound_split(wound, s)[0]) for s in ("train", "dev", "test")] == [28, 6, 6]


def test_wound_errors_name_the_column_row_and_labels(wound, tmp_path):
    table = pd.read_csv(wound / "metadata_train.csv")
    table.drop(columns="severity").to_csv(tmp_path / "metadata_train.csv", index=False)
    with pytest.raises(DataError, match="missing column.*severity"):
        read_wound_split(tmp_path, "train")
    bad = table.copy()
    bad["file_path"] = str(wound) + "/" + bad["file_path"]
    bad.loc[1, "description"] = " "
    bad.loc[2, "file_path"] = "nowhere.png"
    bad.to_csv(tmp_path / "metadata_train.csv", index=False)
    with pytest.raises(DataError, match="line 3: description: the text is empty"):
        read_wound_split(tmp_path, "train")
    rows, report = read_wound_split(tmp_path, "train", on_error="skip")
    assert len(rows) == len(table) - 2 and report.as_dict()["skipped"] == {"empty text": 1, "missing image": 1}
    with pytest.raises(DataError, match="dev split has task-1 labels unseen in train: \\['z'\\]"):
        label_maps([("p", "t", "a", "b")], {"dev": [("p", "t", "z", "b")]})


def test_medpix_missing_key_is_named(tmp_path):
    (tmp_path / "splitted_dataset").mkdir()
    record = {"image": "x", "Type": "CT", "Description": {"Caption": "a"}}
    (tmp_path / "splitted_dataset" / "descriptions_train.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match="line 2: missing key\\(s\\) Location Category"):
        read_medpix_split(tmp_path, "train")


def test_metrics_by_hand():
    metrics = task_metrics(np.array([0, 0, 1, 2]), np.eye(3)[[0, 1, 1, 2]] * 5)
    assert metrics["accuracy"] == 0.75
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    result = mcnemar([1, 1, 1, 0, 1], [0, 0, 1, 0, 1])  # discordant 2 vs 0: p = 2 * 0.5^2
    assert (result["only_a_correct"], result["only_b_correct"], result["p_value"]) == (2, 0, 0.5)


def test_config_refuses_unknown_keys_and_fusion_types():
    with pytest.raises(ConfigError, match="Unknown key 'fusion_dims' in section 'teacher'; did you mean 'fusion_dim'"):
        FusionConfig.from_mapping({"teacher": {"fusion_dims": 8}})
    with pytest.raises(ConfigError, match="Unknown fusion type 'crossattn'"):
        FusionConfig.from_mapping({"fusion": {"type": "crossattn"}})
    assert FusionConfig.from_mapping({"fusion": {"type": "Cross-Attention"}}).fusion_type == "cross_attention"


def tiny_config(output_dir, **overrides):
    """40 samples (28 train: 2 steps of 16 per epoch), 16 px images, 8 tokens, width-8 fusion."""
    sizes = dict(samples=40, teacher_epochs=1, student_epochs=1, image_size=16, patch_size=8, max_length=8)
    widths = dict(teacher_fusion_dim=8, student_fusion_dim=8, teacher_fusion_heads=2, student_fusion_heads=2)
    layers = dict(teacher_vision_layers=1, teacher_text_layers=1, vocabulary_size=60, verbose=0)
    return FusionConfig(output_dir=str(output_dir), **{**sizes, **widths, **layers, **overrides})


class Killed(Exception):
    pass


def test_killed_in_the_student_phase_resumes_there_without_redoing_the_teacher(tmp_path, monkeypatch):
    seen = []  # (phase, epoch, optimizer iterations) when each epoch begins, after the restore

    class Probe(keras.callbacks.Callback):
        def __init__(self, phase):
            super().__init__()
            self.phase = phase

        def on_epoch_begin(self, epoch, logs=None):
            seen.append((self.phase, epoch, int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))))

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise Killed

    original = train_module.phase_callbacks
    kill = [Kill()]

    def probed(run, phase, tracked=()):
        return original(run, phase, tracked) + [Probe(phase)] + (kill if phase == "student" else [])

    monkeypatch.setattr(train_module, "phase_callbacks", probed)
    config = tiny_config(tmp_path / "run", student_epochs=3)
    with pytest.raises(Killed):
        train(config)
    assert seen == [("teacher", 0, 0), ("student", 0, 0)]
    kill.clear()
    seen.clear()
    results = train(config)
    assert seen == [("student", 1, 2), ("student", 2, 4)]  # no teacher epoch; 2 steps per epoch before
    run = tmp_path / "run"
    assert list(pd.read_csv(run / "logs" / "student_history.csv")["epoch"]) == [0, 1, 2]
    assert json.loads((run / "results.json").read_text())["dev_mean_macro_f1"] == results["dev_mean_macro_f1"]
    assert set(results["student"]) == {"type", "severity"} and (run / "best_student.keras").is_file()
    assert sum(map(sum, results["student"]["severity"]["confusion_matrix"])) == 6  # the test split
    assert json.loads((run / "labels.json").read_text())["task2"] == ["high", "low", "medium"]
    assert not (run / "backup_student").exists() and not (run / "backup_teacher").exists()


def test_mcnemar_between_runs(tmp_path):
    from training.image_text_fusion.compare import compare_runs

    labels = np.array([0, 1, 1, 0])
    for name, logits in {"a": np.eye(2)[[0, 1, 1, 0]], "b": np.eye(2)[[1, 0, 1, 0]]}.items():
        (tmp_path / name).mkdir()
        np.savez(
            tmp_path / name / "test_predictions.npz",
            logits_modality=logits,
            logits_location=logits,
            labels_task1=labels,
            labels_task2=labels,
        )
    assert compare_runs(tmp_path / "a", tmp_path / "b")["task1"] == {
        "only_a_correct": 2,
        "only_b_correct": 0,
        "p_value": 0.5,
    }

"""The sweep command's table (fusion type x loss) on a stand-in trainer: shape, values, teacher reuse."""

import pandas as pd

from training.image_text_fusion import sweep as sweep_module


def test_sweep_command_writes_the_seed_shaped_table_and_reuses_each_teacher(tmp_path, monkeypatch):
    calls = []

    def fake_train(config):  # accuracy 0.1 * (run number), F1 half of it, no AUC for severity
        calls.append((config.fusion_type, config.loss_type, config.teacher_model))
        accuracy = 0.1 * len(calls)
        metrics = {"accuracy": accuracy, "macro_f1": accuracy / 2, "auc_ovr": 0.9, "confusion_matrix": []}
        return {"student": {"type": metrics, "severity": {**metrics, "auc_ovr": None}}}

    monkeypatch.setattr(sweep_module, "train", fake_train)
    out = tmp_path / "sweep"
    sweep_module.main(["--fusion_types", "FiLM,gated", "--loss_types", "vanilla,rkd", "--output_dir", str(out)])
    first = str(out / "film-vanilla" / "teacher.keras")
    assert calls == [
        ("film", "vanilla", None),
        ("film", "rkd", first),  # the teacher of the fusion type's first run
        ("gated", "vanilla", None),
        ("gated", "rkd", str(out / "gated-vanilla" / "teacher.keras")),
    ]
    table = pd.read_csv(out / "sweep.csv")
    assert list(table.columns) == [
        "Fusion Type",
        "Loss",
        "test_type_acc",
        "test_severity_acc",
        "test_type_f1",
        "test_severity_f1",
        "test_type_auc",
        "test_severity_auc",
    ]
    assert list(table["test_severity_f1"].round(2)) == [0.05, 0.1, 0.15, 0.2]
    lines = (out / "sweep.md").read_text().splitlines()
    assert lines[5] == "| gated | rkd | **0.400** | **0.400** | **0.200** | **0.200** | **0.900** | n/a |"

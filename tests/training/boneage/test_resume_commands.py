"""The training command's resume paths end to end: a crash mid-phase, a kill while evaluating, changed settings, foreign folders."""

import json

import keras
import numpy as np
import pytest

from tests.training.boneage.commands import TINY
from training.boneage import evaluate, phantom
from training.boneage import train as train_boneage


def test_resume_after_an_interruption_continues_exactly(data_dir, tmp_path, monkeypatch, capsys):
    """Killed after phase-2 epoch 1 (CLR, unfreezing at phase-2 epoch 1), resumed: the logs of an
    uninterrupted run, epoch by epoch (the shared mechanism is tested in tests/callbacks)."""

    def argv(name):
        return [
            "--data_dir",
            str(data_dir),
            *TINY,
            "--epochs_frozen",
            "1",
            "--fine_tune",
            "--epochs_finetune",
            "3",
            "--use_cyclical_lr",
            "--clr_step_size",
            "2",
            "--unfreeze_schedule",
            "1:0.5",
            "--output_dir",
            str(tmp_path / name),
            "--no-use_tta",
        ]

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if self.params["epochs"] == 3 and epoch == 0:
                raise RuntimeError("simulated crash in phase 2")

    original = train_boneage.standard_callbacks
    monkeypatch.setattr(train_boneage, "standard_callbacks", lambda *a: original(*a) + [Crash()])
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_boneage.run(argv("killed"))
    monkeypatch.setattr(train_boneage, "standard_callbacks", original)
    capsys.readouterr()
    results = train_boneage.run(argv("killed"))
    assert "Phase 1 already finished" in capsys.readouterr().out
    # phase 1 (1 epoch) + phase 2 epoch 1 before the crash + phase 2 epochs 2-3 after resuming
    assert results["epochs_trained"] == 4
    straight = train_boneage.run(argv("straight"))
    resumed_log = train_boneage.read_training_log(tmp_path / "killed")
    straight_log = train_boneage.read_training_log(tmp_path / "straight")
    assert {"learning_rate", "backbone_trainable_weights"} <= set(resumed_log.columns)
    for column in ("loss", "val_loss", "learning_rate", "backbone_trainable_weights"):
        np.testing.assert_allclose(resumed_log[column], straight_log[column], rtol=1e-5, err_msg=column)
    assert results["test_mae_months"] == pytest.approx(straight["test_mae_months"], rel=1e-5)


def test_a_run_killed_after_training_only_re_evaluates(data_dir, tmp_path, monkeypatch, capsys):
    argv = [
        "--data_dir",
        str(data_dir),
        *TINY,
        "--epochs_frozen",
        "1",
        "--fine_tune",
        "--epochs_finetune",
        "1",
        "--output_dir",
        str(tmp_path / "run"),
        "--no-use_tta",
    ]
    original = train_boneage.evaluate_and_report

    def killed_while_evaluating(*args):
        raise KeyboardInterrupt("killed while evaluating")

    monkeypatch.setattr(train_boneage, "evaluate_and_report", killed_while_evaluating)
    with pytest.raises(KeyboardInterrupt):
        train_boneage.run(argv)
    monkeypatch.setattr(train_boneage, "evaluate_and_report", original)
    capsys.readouterr()
    first = train_boneage.run(argv)
    assert "Phase 2 already finished" in capsys.readouterr().out
    assert first["epochs_trained"] == 2
    manifest = json.loads((tmp_path / "run" / "run_manifest.json").read_text())
    assert manifest["finished"] and {"results.json", "best.keras", "predictions_test.csv"} <= set(manifest["files"])
    again = evaluate.evaluate(
        tmp_path / "run" / "best.keras", data_dir / phantom.TEST_CSV, output_dir=tmp_path / "eval"
    )
    assert again["test_mae_months"] == pytest.approx(first["test_mae_months"], rel=1e-5)


def test_an_unfinished_run_with_other_settings_is_refused_then_restarted_with_overwrite(
    data_dir, tmp_path, monkeypatch
):
    argv = [
        "--data_dir",
        str(data_dir),
        *TINY,
        "--epochs_frozen",
        "1",
        "--no-fine_tune",
        "--no-use_tta",
        "--output_dir",
        str(tmp_path / "run"),
    ]
    monkeypatch.setattr(train_boneage, "evaluate_and_report", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        train_boneage.run(argv)
    monkeypatch.undo()
    (tmp_path / "run" / "my_notes.txt").write_text("the user's own file")
    with pytest.raises(SystemExit, match=r"other settings.*lr: 0\.0001 -> 0\.001"):
        train_boneage.run([*argv, "--lr", "0.001"])
    results = train_boneage.run([*argv, "--lr", "0.001", "--overwrite"])
    assert results["config"]["lr"] == 0.001 and results["epochs_trained"] == 1
    assert (tmp_path / "run" / "my_notes.txt").read_text() == "the user's own file"


def test_a_folder_that_is_not_a_run_is_never_written(data_dir, tmp_path):
    folder = tmp_path / "my_data"
    folder.mkdir()
    (folder / "scan.png").write_bytes(b"not ours")
    argv = [
        "--data_dir",
        str(data_dir),
        *TINY,
        "--epochs_frozen",
        "1",
        "--no-fine_tune",
        "--output_dir",
        str(folder),
        "--overwrite",
    ]
    with pytest.raises(SystemExit, match="not a run of this project"):
        train_boneage.run(argv)
    assert sorted(path.name for path in folder.iterdir()) == ["scan.png"]

"""The image + text fusion search: two real trials of a tiny YAML run through the command (ranges, best
trial, report, resume), Hyperband's epochs as student epochs, the space per fusion/loss type, errors.

KerasTuner's distributed mode is shared code, covered by tests/training/implant_dimensions/test_tuning.py.
"""

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.training.image_text_fusion.test_scale_out import TINY_YAML
from training.cli import ConfigError
from training.image_text_fusion.config import FusionConfig
from training.image_text_fusion.tuning import run_command, search_space, tune
from training.tuning import TrialError

# the original's ranges (tools/optuna_tune.py), and the --fusion_dims / --fusion_heads the test passes
RANGES = {
    "teacher_lr": (1e-6, 5e-4),
    "student_lr": (1e-5, 1e-3),
    "alpha": (0.1, 2.0),
    "beta": (10.0, 500.0),
    "T": (1.0, 10.0),
    "teacher_dropout": (0.0, 0.5),
    "student_dropout": (0.0, 0.5),
}
CHOICES = {f"{role}_fusion_{key}": values for role in ("teacher", "student") for key, values in
           (("dim", {8, 16}), ("heads", {2, 4}))}  # fmt: skip


@pytest.fixture(autouse=True)
def single_process(monkeypatch):
    monkeypatch.delenv("KERASTUNER_ORACLE_IP", raising=False)


def _trials(project):
    return {path.parent.name: json.loads(path.read_text()) for path in sorted(project.glob("trial_*/trial.json"))}


def test_two_trials_stay_in_the_ranges_report_the_best_and_a_second_call_resumes(tmp_path, eager_tensorflow):
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    argv = ["--config", str(tmp_path / "tiny.yaml"), "--max_trials", "2", "--tuning_dir", str(tmp_path / "search")]
    argv += ["--fusion_dims", "8,16", "--fusion_heads", "2,4"]
    outcome = run_command(argv)
    project = tmp_path / "search" / "image_text_fusion_bayesian"
    trials = _trials(project)
    assert len(trials) == 2 and {t["status"] for t in trials.values()} == {"COMPLETED"}
    objectives = {}
    for name, trial in trials.items():
        values = trial["hyperparameters"]["values"]
        assert set(values) == set(RANGES) | set(CHOICES)  # cross_attention: no depth; combined: alpha, beta, T
        for key, (low, high) in RANGES.items():
            assert low <= values[key] <= high, (name, key)
        for key, allowed in CHOICES.items():
            assert values[key] in allowed, (name, key)
        run = project / name / "run"
        trained = json.loads((run / "run_manifest.json").read_text())["config"]
        assert {key: trained[key] for key in values} == values  # the trial trained with its values
        assert (trained["teacher_epochs"], trained["student_epochs"], trained["samples"]) == (1, 1, 46)  # the YAML's
        results = json.loads((run / "results.json").read_text())
        objectives[name] = results["dev_mean_macro_f1"]
        metrics = {key: metric["observations"][0]["value"][0] for key, metric in trial["metrics"]["metrics"].items()}
        assert metrics["dev_mean_macro_f1"] == pytest.approx(objectives[name]) == trial["score"]
        assert metrics["test_severity_f1"] == pytest.approx(results["student"]["severity"]["macro_f1"])
    best_value = max(objectives.values())
    best = json.loads((project / "best_hyperparameters.json").read_text())
    assert (best["objective"], best["direction"], best["trials"]) == ("dev_mean_macro_f1", "max", {"COMPLETED": 2})
    assert best["best_value"] == pytest.approx(best_value)
    tied = [trials[name]["hyperparameters"]["values"] for name, value in objectives.items() if value == best_value]
    assert best["best_hyperparameters"] in tied
    assert outcome["best_hyperparameters"] == best["best_hyperparameters"]
    table = pd.read_csv(project / "trials.csv", dtype={"trial_id": str})
    assert table.set_index("trial_id")["dev_mean_macro_f1"].to_dict() == pytest.approx(
        {name.removeprefix("trial_"): value for name, value in objectives.items()}
    )
    assert sorted(path.name for path in (project / "plots").iterdir()) == sorted(
        f"objective_vs_{key}.png" for key in (*RANGES, *CHOICES)
    )
    again = run_command(argv)
    assert again["trials_run"] == [] and again["best_hyperparameters"] == best["best_hyperparameters"]
    assert _trials(project) == trials


def formula_train(config):
    """Stands in for `train`: dev score ``student_lr * 100 + student_fusion_layers / 10``; records the epochs."""
    run = Path(config.output_dir)
    run.mkdir(parents=True)
    (run / "ran.json").write_text(json.dumps([config.teacher_epochs, config.student_epochs]))
    return {"dev_mean_macro_f1": config.student_lr * 100 + config.student_fusion_layers / 10}


def test_hyperband_epochs_become_the_student_epochs(tmp_path):
    config = FusionConfig(fusion_type="simple", loss_type="rkd", student_epochs=3, teacher_epochs=5)
    outcome = tune(config, "hyperband", tuning_dir=tmp_path, fusion_dims=(8,), fusion_heads=(2,),
                   train_function=formula_train, verbose=0)  # fmt: skip
    project = tmp_path / "image_text_fusion_hyperband"
    trials = _trials(project)
    assert len(trials) == 6  # brackets of 3 x 1 epoch, then 1 + 2 trials of 3 epochs
    for name, trial in trials.items():
        values = trial["hyperparameters"]["values"]
        assert json.loads((project / name / "run" / "ran.json").read_text()) == [5, values["tuner/epochs"]]
        assert 1 <= values["teacher_fusion_layers"] <= 4 and 1 <= values["student_fusion_layers"] <= 3  # simple: depth
        assert values["student_fusion_dim"] == 8 and "alpha" not in values  # one value: fixed; rkd: no weights
        assert trial["score"] == pytest.approx(values["student_lr"] * 100 + values["student_fusion_layers"] / 10)
    assert outcome["best_value"] == max(t["score"] for t in trials.values())


def test_the_space_follows_the_fusion_loss_and_teacher_settings():
    given_teacher = search_space(FusionConfig(fusion_type="gated", loss_type="vanilla", teacher_model="t.keras"))
    assert sorted(given_teacher.values) == ["T", "alpha", "beta", "student_dropout", "student_fusion_dim", "student_lr"]
    with pytest.raises(ConfigError, match=r"divide by every --fusion_heads value: not 8 by 16, 12 by 8, 12 by 16"):
        search_space(FusionConfig(), fusion_dims=(8, 12), fusion_heads=(4, 8, 16))
    assert "student_fusion_heads" not in search_space(FusionConfig(fusion_type="film"), (8, 12), (16,)).values


def test_a_missing_objective_stops_the_search_naming_the_trial(tmp_path):
    with pytest.raises(
        TrialError, match=r"Trial 0: .* no 'dev_mean_macro_f1', the objective 'dev_mean_macro_f1' \(it returned \['x'\]"
    ):
        tune(FusionConfig(), max_trials=1, tuning_dir=tmp_path, train_function=lambda config: {"x": 1.0})


def test_overwrite_starts_the_search_anew(tmp_path):
    config = FusionConfig(fusion_type="simple", loss_type="crd")
    first = tune(config, max_trials=1, tuning_dir=tmp_path, train_function=formula_train, verbose=0)
    resumed = tune(config, max_trials=1, tuning_dir=tmp_path, train_function=formula_train, verbose=0)
    config.overwrite = True
    anew = tune(config, max_trials=1, tuning_dir=tmp_path, train_function=formula_train, verbose=0)
    assert (first["trials_run"], resumed["trials_run"], anew["trials_run"]) == (["0"], [], ["0"])
    trials = _trials(tmp_path / "image_text_fusion_bayesian")
    assert list(trials) == ["trial_0"] and anew["best_value"] == trials["trial_0"]["score"]  # the old one is gone


def test_a_trial_stopped_midway_runs_again_in_its_folder_with_its_values(tmp_path):
    """KerasTuner retries the trial that was running (once the search has a saved state: a first trial
    completed); `train` then resumes the unfinished run it finds there."""
    calls = []

    def killed_in_the_second_trial(config):
        run = Path(config.output_dir)
        calls.append((run.parent.name, config.student_lr, (run / "epoch_1").exists()))
        if len(calls) == 2:
            (run / "epoch_1").mkdir(parents=True)  # what the killed run left
            raise KeyboardInterrupt
        return {"dev_mean_macro_f1": 0.1 * len(calls)}

    config = FusionConfig(fusion_type="gated", loss_type="crd")
    with pytest.raises(KeyboardInterrupt):
        tune(config, max_trials=2, tuning_dir=tmp_path, train_function=killed_in_the_second_trial, verbose=0)
    outcome = tune(config, max_trials=2, tuning_dir=tmp_path, train_function=killed_in_the_second_trial, verbose=0)
    assert [call[0] for call in calls] == ["trial_0", "trial_1", "trial_1"] and outcome["trials_run"] == ["1"]
    assert calls[2][1:] == (calls[1][1], True)  # same values, the killed run's folder kept
    assert outcome["best_trial"] == "1" and outcome["best_value"] == pytest.approx(0.3)

"""The implant-dimension search: KerasTuner's distributed mode (a chief and two workers on 127.0.0.1),
the report, Hyperband's epochs, one trial through the real `train`, and the metric/checkpoint errors.

Most trials use `formula_train`, a stand-in for `train` whose results are a formula of the trial's
settings, so every value the search and the report show can be checked by hand.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modeling.implant_dimensions.models import embedding_model
from training.cli import ConfigError
from training.implant_dimensions.config import ImplantConfig
from training.implant_dimensions.phantom import make_phantom
from training.implant_dimensions.report import main as report_main
from training.implant_dimensions.tuning import run_trial, tune
from training.tuning import TrialError

TINY = dict(
    image_size=16,
    patch_size=8,
    vit_layers=1,
    vit_hidden_dim=16,
    batch_size=8,
    epochs=1,
    pretrain_epochs=1,
    warmup_epochs=1,
    jit_compile="off",
)
ATTENTION_MAE = {"dual": 0.3, "triple": 0.1, "hierarchical": 0.2}
BARRIER = "IMPLANT_TUNING_TEST_BARRIER"  # folder where each worker signs in before its first trial
ROOT = Path(__file__).resolve().parents[3]


def formula_mae(values):
    """The stand-in's validation MAE (length, diameter) for a trial's hyper-parameter values."""
    length = 10 * values["weight_decay"] + values["unfreeze_epoch"] / 10 + values["model_embed_dim"] / 1000
    diameter = ATTENTION_MAE[values["attention_type"]] + values["company_embed_dim"] / 1000
    return length, diameter


def formula_train(config):
    """Stands in for `train`: records the trial's worker and epochs, returns `formula_mae` as results."""
    barrier = os.environ.get(BARRIER)
    if barrier:  # both workers must have started before either trains, so the trials are shared
        Path(barrier, os.environ["KERASTUNER_TUNER_ID"]).touch()
        deadline = time.time() + 120
        while len(os.listdir(barrier)) < 2 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    length, diameter = formula_mae(vars(config))
    run = Path(config.output_dir)
    run.mkdir(parents=True)
    (run / "ran.json").write_text(
        json.dumps({"worker": os.environ.get("KERASTUNER_TUNER_ID"), "epochs": config.epochs})
    )
    return {"val_length_mae": length, "val_diameter_mae": diameter, "val_avg_mae": (length + diameter) / 2}


WORKER_SCRIPT = """
import sys
from tests.training.implant_dimensions.test_tuning import TINY, formula_train
from training.implant_dimensions.config import ImplantConfig
from training.implant_dimensions.tuning import tune

tune(ImplantConfig(**TINY), max_trials=4, tuning_dir=sys.argv[1], unfreeze_scale=0.2, train_function=formula_train,
     verbose=0)
"""


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _trials(project):
    return {path.parent.name: json.loads(path.read_text()) for path in sorted(project.glob("trial_*/trial.json"))}


@pytest.fixture(scope="module")
def distributed_search(tmp_path_factory):
    """A chief and two workers (each with its own folder, as on three machines) share one search."""
    root = tmp_path_factory.mktemp("distributed")
    (root / "barrier").mkdir()
    port = str(_free_port())
    processes = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = dict(
            os.environ,
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=port,
            PYTHONPATH=str(ROOT),
            **{BARRIER: str(root / "barrier")},
        )
        log = open(root / f"{tuner_id}.log", "w")  # noqa: SIM115 (closed below)
        command = [sys.executable, "-c", WORKER_SCRIPT, str(root / tuner_id)]
        processes[tuner_id] = (subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log)
    try:
        for tuner_id, (process, log) in processes.items():
            code = process.wait(timeout=150)
            log.close()
            assert code == 0, f"{tuner_id} exited with {code}:\n{(root / f'{tuner_id}.log').read_text()[-3000:]}"
    finally:
        for process, log in processes.values():
            if process.poll() is None:
                process.kill()
            log.close()
    return root


def test_a_chief_and_two_workers_share_one_search(distributed_search):
    project = distributed_search / "chief" / "implant_dimensions_bayesian"
    trials = _trials(project)
    assert len(trials) == 4 and {t["status"] for t in trials.values()} == {"COMPLETED"}
    ran = {
        worker: {path.parents[1].name for path in (distributed_search / worker).glob("*/trial_*/run/ran.json")}
        for worker in ("tuner0", "tuner1")
    }
    assert ran["tuner0"] and ran["tuner1"] and not ran["tuner0"] & ran["tuner1"]  # both worked, no trial twice
    assert ran["tuner0"] | ran["tuner1"] == set(trials)
    assert not list((distributed_search / "chief").glob("*/trial_*/run"))  # the chief only serves the oracle
    for trial in trials.values():
        values = trial["hyperparameters"]["values"]
        assert 3 <= values["unfreeze_epoch"] <= 6 and 6 <= values["full_unfreeze_epoch"] <= 12  # 0.2 x (15-30, 30-60)
        assert trial["score"] == pytest.approx(np.mean(formula_mae(values)), rel=1e-9)
    best = json.loads((project / "best_hyperparameters.json").read_text())
    assert best["best_value"] == min(t["score"] for t in trials.values())
    assert best["best_hyperparameters"] == trials[f"trial_{best['best_trial']}"]["hyperparameters"]["values"]


def test_the_report_tables_and_plots_every_trial(distributed_search, tmp_path):
    report = report_main([f"--tuning_dir={distributed_search / 'chief'}", f"--output_dir={tmp_path}"])
    table = pd.read_csv(tmp_path / "trials.csv", dtype={"trial_id": str})
    assert len(table) == 4 and list(table.columns[:3]) == ["trial_id", "status", "avg_mae"]
    for _, row in table.iterrows():
        length, diameter = formula_mae(row)
        assert row["val_length_mae"] == pytest.approx(length) and row["val_diameter_mae"] == pytest.approx(diameter)
        assert row["avg_mae"] == pytest.approx((length + diameter) / 2)
    assert report["best"]["avg_mae"] == table["avg_mae"].min()
    chief = pd.read_csv(distributed_search / "chief/implant_dimensions_bayesian/trials.csv", dtype={"trial_id": str})
    pd.testing.assert_frame_equal(chief, table)  # the chief wrote the same report when the search ended
    searched = {"model_size", "weight_decay", "company_embed_dim", "model_embed_dim", "attention_type"}
    searched |= {"unfreeze_epoch", "full_unfreeze_epoch"}
    assert set(report["plots"]) == searched
    for name, path in report["plots"].items():
        assert path == tmp_path / "plots" / f"objective_vs_{name}.png"
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (400, 280)  # 5 x 3.5 inches at 80 dpi


def test_hyperband_epochs_become_the_trials_epochs(tmp_path, monkeypatch):
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_TUNER_ID", BARRIER):
        monkeypatch.delenv(name, raising=False)
    outcome = tune(
        ImplantConfig(**dict(TINY, epochs=3)), "hyperband", tuning_dir=tmp_path, train_function=formula_train, verbose=0
    )
    project = tmp_path / "implant_dimensions_hyperband"
    trials = _trials(project)
    assert len(trials) == 6 and outcome["role"] == "single"  # brackets of 3 x 1 epoch, then 1 + 2 trials of 3 epochs
    for name, trial in trials.items():
        ran = json.loads((project / name / "run" / "ran.json").read_text())
        assert ran["epochs"] == trial["hyperparameters"]["values"]["tuner/epochs"]
    assert sorted(t["hyperparameters"]["values"]["tuner/epochs"] for t in trials.values()) == [1, 1, 1, 3, 3, 3]
    assert outcome["best_value"] == min(t["score"] for t in trials.values())


@pytest.fixture
def checkpoints(tmp_path):
    """Untrained tiny embedding models (16-wide ViT features, 16 px) saved as the pretraining saves them."""
    config = ImplantConfig(**TINY)
    paths = {}
    for kind in ("company", "model"):
        paths[kind] = tmp_path / "tiny" / f"embedding_{kind}.keras"
        paths[kind].parent.mkdir(exist_ok=True)
        embedding_model(16, "tiny", 8, None, "embedding", config.vit_overrides).save(paths[kind])
    return paths


def test_one_trial_through_train_reports_its_mean_validation_mae(tmp_path, checkpoints, monkeypatch, eager_tensorflow):
    monkeypatch.delenv("KERASTUNER_ORACLE_IP", raising=False)
    data = make_phantom(tmp_path / "data", n_train=8, n_val=4, n_test=4, image_size=16)
    config = ImplantConfig(
        **TINY,
        data_dir=str(data),
        company_checkpoint=str(checkpoints["company"]),
        model_checkpoint=str(checkpoints["model"]),
    )
    # unfreezing from epoch >= 2 keeps the 1-epoch trial cheap (one train step traced)
    outcome = tune(config, max_trials=1, tuning_dir=tmp_path / "search", model_sizes=("tiny",), unfreeze_scale=0.1)
    results = json.loads((tmp_path / "search/implant_dimensions_bayesian/trial_0/run/results.json").read_text())
    assert results["val_avg_mae"] == pytest.approx((results["val_length_mae"] + results["val_diameter_mae"]) / 2)
    assert outcome["best_value"] == pytest.approx(results["val_avg_mae"])
    assert outcome["table"]["val_length_mae"].tolist() == pytest.approx([results["val_length_mae"]])
    assert "company_embed_dim" not in outcome["best_hyperparameters"]  # fixed by the checkpoints


def test_a_missing_objective_stops_the_search_naming_the_trial(tmp_path, monkeypatch):
    monkeypatch.delenv("KERASTUNER_ORACLE_IP", raising=False)
    with pytest.raises(
        TrialError, match=r"Trial 0: .* no 'val_avg_mae', the objective 'avg_mae' \(it returned \['val_loss'\]"
    ):
        tune(ImplantConfig(**TINY), max_trials=1, tuning_dir=tmp_path, train_function=lambda config: {"val_loss": 1.0})


def test_checkpoints_of_another_vit_size_fail_before_training(tmp_path, checkpoints, monkeypatch):
    monkeypatch.delenv("KERASTUNER_ORACLE_IP", raising=False)
    fixed = ImplantConfig(
        **TINY, company_checkpoint=str(checkpoints["company"]), model_checkpoint=str(checkpoints["model"])
    )
    trained = []
    with pytest.raises(
        ConfigError,
        match=r"model_size 'small': --company_checkpoint .*holds 16-wide ViT features, model_size='small' builds 32-wide",
    ):
        tune(fixed, tuning_dir=tmp_path / "fixed", model_sizes=("tiny", "small"), train_function=trained.append)
    assert not (tmp_path / "fixed").exists() and not trained  # before the search: nothing ran
    template = ImplantConfig(**TINY, company_checkpoint=str(tmp_path / "{model_size}" / "embedding_company.keras"))
    with pytest.raises(ConfigError, match=r"small/embedding_company.keras does not exist"):
        tune(template, tuning_dir=tmp_path / "template", model_sizes=("tiny", "small"), train_function=trained.append)
    # a trial whose size the checkpoints do not have (e.g. a worker started with other flags) stops before training
    with pytest.raises(
        TrialError, match=r"Trial 05 \(model_size='base'\): --company_checkpoint .* 64-wide ones; --model_checkpoint"
    ):
        run_trial(fixed, trained.append, "05", {"model_size": "base"}, None, tmp_path / "trial")
    assert not trained


def test_imagenet_vits_refuse_the_sizes_keras_hub_lacks_before_the_search(tmp_path):
    with pytest.raises(ConfigError, match="--vit_weights imagenet: .* not 'tiny'"):
        tune(ImplantConfig.from_preset("original"), max_trials=1, tuning_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # refused before KerasTuner wrote anything

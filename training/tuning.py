"""Hyper-parameter search shared by the systems: KerasTuner trials that call a training function, its
distributed mode, and a report of every trial (a table and plots of the objective).

* `make_oracle`: a Bayesian or Hyperband oracle over a fixed `keras_tuner.HyperParameters` space,
  the objective given by name and direction ("min" or "max").
* `FunctionTuner`: a KerasTuner tuner (a `BaseTuner` overriding ``run_trial``) whose trials call
  ``train_function(trial_id=..., values=..., epochs=..., trial_dir=...)`` and read the objective from
  the results dict it returns (``result_key``, e.g. ``val_avg_mae`` for the objective ``avg_mae``).
  A missing value stops the search with an error naming the trial; a non-finite one fails only that
  trial. Hyperband's ``tuner/epochs`` becomes the trial's ``epochs`` (``None`` for Bayesian trials).
  Each trial trains from scratch: the systems' learning-rate schedules span the whole run, so a
  longer Hyperband round is not the continuation of a shorter one.
* `search`: runs the search in this process's role (`tuner_role`) and, on the chief or a lone
  process, writes ``best_hyperparameters.json`` and the report.
* `report`: every trial of a tuning folder as ``trials.csv`` (printed too) and one PNG per searched
  hyper-parameter, ``plots/objective_vs_<name>.png`` (matplotlib's Agg canvas, no display needed).

Distributed mode (KerasTuner's own; it reads the environment variables itself): start the same
command once per machine. The chief (``KERASTUNER_TUNER_ID=chief``) serves the oracle over gRPC at
``KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT`` and runs no trial; every worker (a unique
``KERASTUNER_TUNER_ID`` such as ``tuner0``, ``tuner1``, with the chief's IP and port) asks it for
trials until the search is complete. The chief's tuning folder collects every trial's
``trial.json`` (the report reads it); the workers keep their trials' training outputs in their own
folders. The chief returns once every worker has been told to stop.
"""

import json
import math
import os
import re
from pathlib import Path

import keras_tuner
import numpy as np
import pandas as pd
from keras_tuner.engine import base_tuner
from matplotlib.figure import Figure

from training.cli import ConfigError
from training.results import write_csv, write_json

TUNERS = ("bayesian", "hyperband")
EPOCHS = "tuner/epochs"
SEARCH_FILE = "search.json"
TRIALS_FILE = "trials.csv"
BEST_FILE = "best_hyperparameters.json"


class TrialError(keras_tuner.errors.FatalError, ConfigError):
    """A trial that cannot run or cannot report its objective; stops the search. Names the trial."""


def tuner_role():
    """This process's part in the search, as KerasTuner decides it from the environment.

    Returns "chief" (``KERASTUNER_ORACLE_IP`` set and ``KERASTUNER_TUNER_ID`` contains "chief"),
    "worker" (``KERASTUNER_ORACLE_IP`` set otherwise) or "single" (no distributed mode).
    """
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def make_oracle(kind, objective, direction, hyperparameters, max_trials=10, max_epochs=10, factor=3, seed=None):
    """A KerasTuner oracle over ``hyperparameters``.

    Args:
        kind: "bayesian" (Gaussian-process Bayesian optimisation, ``max_trials`` trials) or
            "hyperband" (brackets of budgets up to ``max_epochs``, reduced by ``factor``).
        objective: the objective's name (what the tuner reports, e.g. "avg_mae").
        direction: "min" or "max".
        hyperparameters: the search space, a `keras_tuner.HyperParameters`.
        seed: the oracle's random seed; every integer, 0 included, gives a reproducible search
            (KerasTuner itself treats 0 like ``None``: a new random seed each time).
    """
    if kind not in TUNERS:
        raise ConfigError(f"--tuner must be one of {', '.join(TUNERS)}; got {kind!r}")
    if direction not in ("min", "max"):
        raise ConfigError(f"The objective's direction must be 'min' or 'max'; got {direction!r}")
    if max_trials < 1 or max_epochs < 1 or factor < 2:
        raise ConfigError("--max_trials and --epochs must be >= 1 and --hyperband_factor >= 2")
    common = dict(
        objective=keras_tuner.Objective(objective, direction),
        hyperparameters=hyperparameters,
        seed=None if seed is None else seed + 1,
    )
    if kind == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(max_trials=max_trials, **common)
    return keras_tuner.oracles.HyperbandOracle(max_epochs=max_epochs, factor=factor, **common)


class FunctionTuner(base_tuner.BaseTuner):
    """A tuner whose trials call a training function and report the objective from its results.

    Args:
        oracle: from `make_oracle`.
        train_function: called once per trial as ``train_function(trial_id=, values=, epochs=,
            trial_dir=)`` (``values``: the trial's hyper-parameters without KerasTuner's ``tuner/*``
            entries; ``epochs``: Hyperband's ``tuner/epochs`` or ``None``; ``trial_dir``: an empty
            folder of this process for the trial's outputs); returns a dict of results.
        result_key: the results entry that holds the objective (default: the objective's name).
        fatal_errors: exception types from ``train_function`` that stop the search (as a
            `TrialError` naming the trial) instead of failing one trial, e.g. bad data or settings.
        metric_prefixes: the other results recorded with the trial (finite numbers whose key starts
            with one of these; default: every finite number).
        directory, project_name, overwrite: KerasTuner's; the search resumes unless ``overwrite``.
    """

    def __init__(
        self,
        oracle,
        train_function,
        result_key=None,
        fatal_errors=(),
        metric_prefixes=("",),
        directory=".",
        project_name="search",
        **kwargs,
    ):
        super().__init__(oracle, directory=directory, project_name=project_name, **kwargs)
        self.train_function = train_function
        self.result_key = result_key or oracle.objective.name
        self.fatal_errors = tuple(fatal_errors)
        self.metric_prefixes = tuple(metric_prefixes)
        self.trials_run = []
        objective = oracle.objective
        write_json(
            Path(self.project_dir) / SEARCH_FILE,
            {"objective": objective.name, "direction": objective.direction, "result_key": self.result_key},
        )

    def run_trial(self, trial, **_):
        """Train with the trial's values; returns the objective and the results' other numbers."""
        values = {name: value for name, value in trial.hyperparameters.values.items() if not name.startswith("tuner/")}
        trial_dir = Path(self.get_trial_dir(trial.trial_id))
        trial_dir.mkdir(parents=True, exist_ok=True)
        self.trials_run.append(trial.trial_id)
        try:
            results = self.train_function(
                trial_id=trial.trial_id,
                values=values,
                epochs=trial.hyperparameters.values.get(EPOCHS),
                trial_dir=trial_dir,
            )
        except TrialError:
            raise
        except self.fatal_errors as error:
            raise TrialError(f"Trial {trial.trial_id}: {error}") from error
        return trial_metrics(results, self.result_key, self.oracle.objective.name, trial.trial_id, self.metric_prefixes)


def trial_metrics(results, result_key, objective, trial_id, prefixes=("",)):
    """The metrics a trial reports: ``{objective: results[result_key]}`` plus the results' other finite
    numbers whose key starts with one of ``prefixes``.

    Raises:
        TrialError: ``result_key`` is not in ``results`` (the search cannot rank the trial).
        keras_tuner.errors.FailedTrialError: the value is not finite (only this trial fails).

    >>> trial_metrics({"val_avg_mae": 0.5, "epochs": 3, "name": "x"}, "val_avg_mae", "avg_mae", "07")
    {'avg_mae': 0.5, 'epochs': 3.0}
    """
    if not isinstance(results, dict) or result_key not in results:
        keys = sorted(results) if isinstance(results, dict) else type(results).__name__
        raise TrialError(
            f"Trial {trial_id}: the training function's results have no {result_key!r}, the objective "
            f"{objective!r} (it returned {keys})."
        )
    value = results[result_key]
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise keras_tuner.errors.FailedTrialError(f"Trial {trial_id}: {result_key} is {value!r}, not a finite number.")
    numbers = {
        key: float(item)
        for key, item in results.items()
        if key != result_key
        and key.startswith(prefixes)
        and isinstance(item, (int, float))
        and not isinstance(item, bool)
        and math.isfinite(item)
    }
    return {objective: float(value), **numbers}


def search(tuner, verbose=1):
    """Run ``tuner``'s search in this process's role; the chief and a lone process also report.

    Returns:
        ``{"role", "trials_run"}``, and on the chief or a lone process also the summary written to
        ``<project>/best_hyperparameters.json`` and the report's ``table``.
    """
    role = tuner_role()
    tuner.search(verbose=verbose)
    outcome = {"role": role, "trials_run": list(tuner.trials_run)}
    if role == "worker":  # the chief may be gone already: ask it nothing more
        print(f"Worker {tuner.tuner_id} finished; it ran trials {tuner.trials_run}.")
        return outcome
    best = tuner.oracle.get_best_trials(1)
    statuses = pd.Series([trial.status for trial in tuner.oracle.trials.values()]).value_counts()
    summary = {
        "objective": tuner.oracle.objective.name,
        "direction": tuner.oracle.objective.direction,
        "best_trial": best[0].trial_id if best else None,
        "best_value": best[0].score if best else None,
        "best_hyperparameters": best[0].hyperparameters.values if best else None,
        "trials": {str(status): int(count) for status, count in statuses.items()},
    }
    write_json(Path(tuner.project_dir) / BEST_FILE, summary)
    outcome.update(summary, table=report(tuner.project_dir)["table"])
    return outcome


def find_project(tuning_dir):
    """The search folder under ``tuning_dir`` (itself, or its one sub-folder holding a ``search.json``)."""
    tuning_dir = Path(tuning_dir)
    if (tuning_dir / SEARCH_FILE).exists():
        return tuning_dir
    projects = sorted(path.parent for path in tuning_dir.glob(f"*/{SEARCH_FILE}"))
    if len(projects) != 1:
        found = f"several: {[str(p) for p in projects]}; pass one of them" if projects else "none"
        raise ConfigError(f"--tuning_dir {tuning_dir}: expected one search folder (with {SEARCH_FILE}), found {found}.")
    return projects[0]


def trial_table(project):
    """One row per trial of the search folder ``project``: trial, status, objective, hyper-parameters, other metrics.

    Returns:
        ``(table, search)``: a DataFrame ordered by trial id and the ``search.json`` contents.
    """
    project = Path(project)
    search_info = json.loads((project / SEARCH_FILE).read_text())
    rows = []
    for path in sorted(project.glob("trial_*/trial.json")):
        trial = json.loads(path.read_text())
        metrics = {name: _last_value(metric) for name, metric in trial["metrics"]["metrics"].items()}
        objective = metrics.pop(search_info["objective"], float("nan"))
        rows.append(
            {
                "trial_id": str(trial["trial_id"]),
                "status": trial["status"],
                search_info["objective"]: objective,
                **trial["hyperparameters"]["values"],
                **metrics,
            }
        )
    if not rows:
        raise ConfigError(
            f"No trial_*/trial.json in {project}. In the distributed mode the chief's --tuning_dir holds them."
        )
    return pd.DataFrame(rows), search_info


def _last_value(metric):
    observations = metric["observations"]
    return float(observations[-1]["value"][0]) if observations else float("nan")


def searched_hyperparameters(project):
    """The search space's entries (KerasTuner's ``{"class_name", "config"}``) that are not `Fixed`."""
    oracle = json.loads((Path(project) / "oracle.json").read_text())
    return [entry for entry in oracle["hyperparameters"]["space"] if entry["class_name"] != "Fixed"]


def report(tuning_dir, output_dir=None, show=True):
    """Write (and print) the table of every trial and plot the objective against each searched hyper-parameter.

    Args:
        tuning_dir: a search folder (``<directory>/<project_name>``) or the folder above it.
        output_dir: where ``trials.csv`` and ``plots/`` go (default: the search folder).
        show: print the table and the best trial.

    Returns:
        ``{"table": DataFrame, "csv": path, "plots": {hyper-parameter: png path}, "best": row dict or None}``.
    """
    project = find_project(tuning_dir)
    table, search_info = trial_table(project)
    output_dir = Path(output_dir or project)
    output_dir.mkdir(parents=True, exist_ok=True)
    csv_path = output_dir / TRIALS_FILE
    write_csv(csv_path, table)
    objective, direction = search_info["objective"], search_info["direction"]
    scores = table[objective]
    best = None
    if scores.notna().any():
        best = table.loc[scores.idxmin() if direction == "min" else scores.idxmax()].to_dict()
    space = searched_hyperparameters(project)
    if EPOCHS in table and table[EPOCHS].nunique() > 1:
        space.append({"class_name": "Int", "config": {"name": EPOCHS, "sampling": "linear"}})
    plots = {
        entry["config"]["name"]: plot_objective(table, entry, objective, direction, output_dir / "plots")
        for entry in space
    }
    if show:
        with pd.option_context("display.max_columns", None, "display.width", 200):
            print(table.to_string(index=False))
        if best is not None:
            print(f"Best: trial {best['trial_id']}, {objective} = {best[objective]:.4g} ({direction}imised)")
        print(f"Table: {csv_path}; plots: {output_dir / 'plots'}")
    return {"table": table, "csv": csv_path, "plots": plots, "best": best}


def plot_objective(table, entry, objective, direction, folder):
    """Scatter the objective of every trial against one hyper-parameter (categories on a labelled axis,
    log-sampled floats on a log axis), the best trial marked; returns the PNG's path."""
    name, config = entry["config"]["name"], entry["config"]
    done = table[table[objective].notna() & table[name].notna()] if name in table else table.iloc[:0]
    figure = Figure(figsize=(5, 3.5))
    axes = figure.add_subplot()
    if entry["class_name"] in ("Choice", "Boolean") and not _numeric(config.get("values", [True, False])):
        labels = [str(value) for value in config.get("values", [True, False])]
        positions = np.asarray([labels.index(str(value)) for value in done[name]], dtype=float)
        axes.set_xticks(range(len(labels)), labels)
    else:
        positions = done[name].to_numpy(dtype=float)
        if config.get("sampling") == "log":
            axes.set_xscale("log")
    scores = done[objective].to_numpy(dtype=float)
    axes.scatter(positions, scores, s=25, alpha=0.7, label="trials")
    if len(scores):
        best = int(np.argmin(scores) if direction == "min" else np.argmax(scores))
        axes.scatter(positions[best], scores[best], s=120, marker="*", color="red", label="best")
        axes.legend(fontsize="small")
    axes.set_xlabel(name)
    axes.set_ylabel(f"{objective} ({direction})")
    axes.set_title(f"{objective} against {name} ({len(scores)} trials)")
    figure.subplots_adjust(left=0.17, bottom=0.15, right=0.97, top=0.9)  # tight_layout costs twice the plot
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"objective_vs_{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    figure.savefig(path, dpi=80)
    return path


def _numeric(values):
    return all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values)

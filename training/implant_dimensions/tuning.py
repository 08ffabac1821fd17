"""Hyper-parameter search for the dual-embedding implant regressor: `tune(config, ...)` and
``python -m training.implant_dimensions.tuning --tuner bayesian|hyperband [any train-implant-dimensions flag]``.

The original's search space (its SageMaker launcher): ``model_size`` in ``--model_sizes`` (default
tiny, small, base), ``weight_decay`` log-uniform in [0.01, 0.1], ``company_embed_dim`` and
``model_embed_dim`` in {128, 256, 512}, ``attention_type`` in {dual, triple, hierarchical},
``unfreeze_epoch`` in [15, 30] and ``full_unfreeze_epoch`` in [30, 60]; objective ``avg_mae`` (the
mean of the validation length and diameter MAE), minimised. Every other setting comes from the
training flags (``--preset``, data, ``--epochs``: each Bayesian trial's epochs, Hyperband's largest
budget). Each trial runs `training.implant_dimensions.train.train` in its own folder and its
objective is read from the results it returns (``val_avg_mae``); a trial without it stops the search
with an error naming the trial. (The original's launcher matched ``avg_mae: x`` against the printed
``avg_mae = x;`` and never read a value.)

Scaling to short runs: the unfreeze ranges are the original's for 100 epochs times
``--unfreeze_scale`` (default ``epochs / 100``, at most 1; rounded, at least 1): with the CPU
preset's 30 epochs ``unfreeze_epoch`` is searched in [5, 9] and ``full_unfreeze_epoch`` in [9, 18];
a range that shrinks to one value is fixed.

Checkpoints and sizes (the original let a ViT-Tiny trial load ViT-Base checkpoints):

* no ``--company_checkpoint`` / ``--model_checkpoint``: each trial pretrains its own embedding
  models at its own size and embedding widths;
* given: they fix the embedding widths (not searched), and their ViT width must be the trial's.
  A path may contain ``{model_size}`` (``ckpt/{model_size}/embedding_company.keras``) so each size
  loads its own; otherwise search only the checkpoints' size (``--model_sizes base``). Every
  searched size is checked before the search starts and every trial again before it trains; a
  mismatch is an error naming the size (or trial), the file and both widths.

With ``--vit_hidden_dim`` (the CPU preset's small ViT) ``model_size`` scales that width by timm's
ratios (small 2x, base 4x the tiny width), so the size still matters at CPU scale.

Outputs under ``--tuning_dir`` (default ``runs/implant_tuning``), folder
``implant_dimensions_<tuner>``: KerasTuner's ``oracle.json`` and ``trial_*/trial.json``, each
trial's run in ``trial_*/run``, ``best_hyperparameters.json``, ``trials.csv`` and ``plots/``
(see `training.tuning.report`). A search resumes where it stopped; ``--overwrite`` starts it anew.
The distributed mode (a chief and workers, several machines) is KerasTuner's; see `training.tuning`
and the system README.
"""

import argparse
import dataclasses
import functools
import math
from pathlib import Path

import keras
import keras_tuner

from modeling.backbones.hub import VIT_SIZES
from modeling.implant_dimensions.models import feature_dim
from training.cli import ConfigError, exit_on_user_errors, parse_config
from training.data.tables import DataError
from training.implant_dimensions import train as training
from training.implant_dimensions.config import ImplantConfig
from training.run_directory import RunDirectoryError
from training.tuning import TUNERS, FunctionTuner, TrialError, make_oracle, search, tuner_role

COMMAND = "tune-implant-dimensions"
OBJECTIVE, RESULT_KEY = "avg_mae", "val_avg_mae"
MODEL_SIZES = ("tiny", "small", "base")
EMBED_DIMS = (128, 256, 512)
ATTENTION_TYPES = ("dual", "triple", "hierarchical")
ORIGINAL_EPOCHS = 100
UNFREEZE_RANGES = {"unfreeze_epoch": (15, 30), "full_unfreeze_epoch": (30, 60)}
CHECKPOINT_FLAGS = {"company": "company_checkpoint", "model": "model_checkpoint"}
SIZE_FIELD = "{model_size}"
DEFAULT_TUNING_DIR = "runs/implant_tuning"


def unfreeze_ranges(scale):
    """The original's unfreeze ranges times ``scale``, rounded half up, at least 1.

    >>> unfreeze_ranges(0.3)
    {'unfreeze_epoch': (5, 9), 'full_unfreeze_epoch': (9, 18)}
    """
    if scale <= 0:
        raise ConfigError(f"--unfreeze_scale must be > 0; got {scale}")
    return {
        name: tuple(max(1, math.floor(bound * scale + 0.5)) for bound in bounds)
        for name, bounds in UNFREEZE_RANGES.items()
    }


def search_space(config, model_sizes=MODEL_SIZES, unfreeze_scale=1.0):
    """The search space around ``config`` (an `ImplantConfig`); one-value ranges become `Fixed`.

    The embedding widths are searched only for embedding models the trials pretrain themselves.
    """
    hp = keras_tuner.HyperParameters()
    _choice(hp, "model_size", model_sizes)
    hp.Float("weight_decay", 0.01, 0.1, sampling="log")
    for kind, flag in CHECKPOINT_FLAGS.items():
        if not getattr(config, flag):
            _choice(hp, f"{kind}_embed_dim", EMBED_DIMS)
    _choice(hp, "attention_type", ATTENTION_TYPES)
    for name, (low, high) in unfreeze_ranges(unfreeze_scale).items():
        if low < high:
            hp.Int(name, low, high)
        else:
            hp.Fixed(name, low)
    return hp


def _choice(hp, name, values):
    values = list(values)
    return hp.Choice(name, values) if len(values) > 1 else hp.Fixed(name, values[0])


def sized_config(config, model_size):
    """``config`` at ``model_size``: a small ViT's width scaled by timm's ratio, ``{model_size}`` filled in."""
    changes = {"model_size": model_size}
    if config.vit_hidden_dim:
        changes["vit_hidden_dim"] = config.vit_hidden_dim * feature_dim(model_size) // feature_dim(config.model_size)
    for flag in CHECKPOINT_FLAGS.values():
        if getattr(config, flag):
            changes[flag] = getattr(config, flag).replace(SIZE_FIELD, model_size)
    return dataclasses.replace(config, **changes)


def trial_config(config, values, epochs, trial_dir):
    """The `ImplantConfig` of one trial: ``config`` with the trial's values, epochs and run folder."""
    sized = sized_config(config, values.get("model_size", config.model_size))
    changes = dict(values, output_dir=str(Path(trial_dir) / "run"), overwrite=True)
    if epochs:
        changes["epochs"] = int(epochs)
    return dataclasses.replace(sized, **changes).validated()


def checkpoint_problems(config):
    """Why ``config``'s embedding checkpoints cannot serve it: missing files, another ViT width or image size."""
    width = config.vit_overrides.get("hidden_dim", feature_dim(config.model_size))
    problems = []
    for flag in CHECKPOINT_FLAGS.values():
        path = getattr(config, flag)
        if not path:
            continue
        if not Path(path).is_file():
            problems.append(f"--{flag} {path} does not exist")
            continue
        features, image_size = _checkpoint_shape(str(Path(path).resolve()), Path(path).stat().st_mtime)
        if features != width:
            problems.append(
                f"--{flag} {path} holds {features}-wide ViT features, model_size={config.model_size!r} builds "
                f"{width}-wide ones"
            )
        if image_size != config.image_size:
            problems.append(f"--{flag} {path} takes {image_size} px images, --image_size is {config.image_size}")
    return problems


@functools.lru_cache(maxsize=16)
def _checkpoint_shape(path, _modified):
    model = keras.saving.load_model(path, safe_mode=True)
    return int(model.output["features"].shape[-1]), int(model.input.shape[1])


_HINT = (
    f"Put {SIZE_FIELD} in the checkpoint paths so each size loads its own, search only the checkpoints' "
    "size (--model_sizes), or drop the checkpoint flags so that every trial pretrains its own."
)


def run_trial(config, train_function, trial_id, values, epochs, trial_dir):
    """One trial: check its checkpoints, then ``train_function(trial config)``; returns its results."""
    trial = trial_config(config, values, epochs, trial_dir)
    problems = checkpoint_problems(trial)
    if problems:
        raise TrialError(f"Trial {trial_id} (model_size={trial.model_size!r}): {'; '.join(problems)}. {_HINT}")
    return train_function(trial)


def tune(
    config,
    tuner="bayesian",
    max_trials=16,
    tuning_dir=DEFAULT_TUNING_DIR,
    model_sizes=MODEL_SIZES,
    unfreeze_scale=None,
    hyperband_factor=3,
    train_function=training.train,
    verbose=1,
):
    """Search the original's space around ``config``; in this process's KerasTuner role (see `training.tuning`).

    Args:
        config: an `ImplantConfig`: data, preset, epochs (per Bayesian trial; Hyperband's largest budget).
        tuner: "bayesian" or "hyperband".
        max_trials: trials of the Bayesian search (Hyperband's count follows from epochs and factor).
        tuning_dir: KerasTuner's directory; the search is its ``implant_dimensions_<tuner>`` folder.
        model_sizes: the ViT sizes searched.
        unfreeze_scale: factor on the original's unfreeze ranges (default ``min(1, epochs / 100)``).
        hyperband_factor: Hyperband's reduction factor.
        train_function: called with each trial's `ImplantConfig`, returns its results dict
            (default `training.implant_dimensions.train.train`; tests pass cheaper ones).
        verbose: KerasTuner's verbosity.

    Returns:
        `training.tuning.search`'s outcome: the role and trials run, and on the chief or a lone
        process the best trial, its hyper-parameters and the report's table.
    """
    config = config.validated()
    if config.embeddings != "dual":
        raise ConfigError(f"{COMMAND} searches the dual-embedding regressor; got --embeddings {config.embeddings}")
    unknown = sorted(set(model_sizes) - set(VIT_SIZES))
    if unknown or not model_sizes:
        raise ConfigError(f"--model_sizes must be among {sorted(VIT_SIZES)}; got {list(model_sizes)}")
    for size in model_sizes:  # before any trial: e.g. --vit_weights imagenet has no tiny or small ViT
        sized_config(config, size).validated()
    scale = min(1.0, config.epochs / ORIGINAL_EPOCHS) if unfreeze_scale is None else unfreeze_scale
    space = search_space(config, model_sizes, scale)
    if tuner_role() != "chief":  # the chief trains nothing; its machine may not hold the checkpoints
        problems = [
            f"model_size {size!r}: {p}" for size in model_sizes for p in checkpoint_problems(sized_config(config, size))
        ]
        if problems:
            raise ConfigError(f"Before the search: {'; '.join(problems)}. {_HINT}")
    oracle = make_oracle(tuner, OBJECTIVE, "min", space, max_trials, config.epochs, hyperband_factor, seed=config.seed)
    search_tuner = FunctionTuner(
        oracle,
        functools.partial(run_trial, config, train_function),
        result_key=RESULT_KEY,
        fatal_errors=(ConfigError, DataError, RunDirectoryError),
        metric_prefixes=("val_", "test_", "wall_seconds"),
        directory=tuning_dir,
        project_name=f"implant_dimensions_{tuner}",
        overwrite=config.overwrite,
    )
    search_tuner.search_space_summary()
    return search(search_tuner, verbose=verbose)


def build_parser():
    """The search's own flags; every other flag goes to the training parser."""
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description=__doc__.split("\n\n")[0] + " Every other flag is a train-implant-dimensions flag.",
        allow_abbrev=False,  # --model_size (training) must not read as --model_sizes
    )
    parser.add_argument("--tuner", choices=TUNERS, default="bayesian")
    parser.add_argument("--max_trials", type=int, default=16, help="Bayesian trials (the original's max_jobs)")
    parser.add_argument("--tuning_dir", default=DEFAULT_TUNING_DIR)
    parser.add_argument(
        "--model_sizes", type=lambda text: tuple(text.split(",")), default=MODEL_SIZES, help="e.g. tiny,small,base"
    )
    parser.add_argument("--unfreeze_scale", type=float, help="factor on the unfreeze ranges (default epochs / 100)")
    parser.add_argument("--hyperband_factor", type=int, default=3)
    return parser


def run_command(argv=None):
    """Parse the search flags and the training flags, then `tune`; user errors exit with a message."""
    own, train_argv = build_parser().parse_known_args(argv)
    config = parse_config(training.build_parser(), ImplantConfig, train_argv)
    with exit_on_user_errors():
        return tune(config, **vars(own))  # the flags are tune's arguments


def main(argv=None):
    """Console entry point."""
    run_command(argv)


if __name__ == "__main__":
    main()

"""Hyper-parameter search for the image + text fusion system: `tune(config, ...)` and
``python -m training.image_text_fusion.tuning --tuner bayesian|hyperband [any train-image-text-fusion flag]``.

The original's search space (``tools/optuna_tune.py`` of rupeshsah2038/Multi-Modal; the reference
lists only the values it found): ``teacher_lr`` log-uniform in [1e-6, 5e-4], ``student_lr``
log-uniform in [1e-5, 1e-3], ``alpha`` in [0.1, 2], ``beta`` log-uniform in [10, 500], ``T`` in
[1, 10], ``teacher_fusion_dim`` and ``student_fusion_dim`` in {256, 384, 512, 768}
(``--fusion_dims``), ``teacher_fusion_layers`` in [1, 4], ``student_fusion_layers`` in [1, 3],
``teacher_fusion_heads`` and ``student_fusion_heads`` in {4, 8, 16} (``--fusion_heads``),
``teacher_dropout`` and ``student_dropout`` in [0, 0.5]; objective ``dev_mean_macro_f1`` (the
selected student's mean dev macro F1 of the two tasks), maximised.

Choices of ours: what the configured run does not use is left out (the original searched it
anyway): the loss weights its ``--loss_type`` does not take (``alpha``, ``beta``, ``T``: vanilla and
combined only), ``*_fusion_layers`` / ``*_fusion_heads`` when its fusion type has no depth / no
attention (e.g. ``cross_attention`` ignores the depth), and every ``teacher_*`` value with
``--teacher_model`` (a trained teacher: no teacher phase). Every fusion width must divide by every
head count (torch's attention required it); a one-value list is fixed. The original's optional
searches (batch size, fusion type, loss type, student backbones) are not offered: the sweep command
compares fusion types and losses.

Every other setting comes from the training flags (``--config`` YAML, ``--preset``); the YAML's
``student_epochs`` are each Bayesian trial's student epochs and Hyperband's largest budget (a
trial's ``tuner/epochs`` becomes its ``student_epochs``; ``teacher_epochs`` stay). Each trial runs
`training.image_text_fusion.train.train` in its own folder (its own teacher too, unless
``--teacher_model``) and its objective is read from the results it returns
(``dev_mean_macro_f1``); a trial without it stops the search with an error naming the trial. (The
original scored a failed trial 0.0 and searched on.)

Outputs under ``--tuning_dir`` (default ``runs/image_text_tuning``), folder
``image_text_fusion_<tuner>``: KerasTuner's ``oracle.json`` and ``trial_*/trial.json``, each trial's
run in ``trial_*/run`` (``--output_dir`` is not used), ``best_hyperparameters.json``, ``trials.csv``
(with the selected student's test metrics ``test_<task>_<acc|f1|auc>``) and ``plots/`` (see
`training.tuning.report`). A search resumes where it stopped: KerasTuner reruns the trial that was
running in its folder with its values (once a first trial has completed; before that it starts
over) and `train` resumes that unfinished run from its last epoch. ``--overwrite`` starts the search
anew. The distributed mode (a chief and workers) is KerasTuner's; see `training.tuning`.

Example:

>>> from training.image_text_fusion.config import FusionConfig
>>> space = search_space(FusionConfig(loss_type="rkd", fusion_type="simple"))
>>> sorted(name for name in space.values if name.startswith("student"))
['student_dropout', 'student_fusion_dim', 'student_fusion_heads', 'student_fusion_layers', 'student_lr']
"""

import dataclasses
import functools
import inspect
from pathlib import Path

import keras_tuner

from modeling.fusion import FUSION_LAYERS
from modeling.losses.distillation import LOSS_DEFAULTS
from training.cli import ConfigError, exit_on_user_errors
from training.data.tables import DataError
from training.image_text_fusion import train as training
from training.image_text_fusion.sweep import table_row
from training.run_directory import RunDirectoryError
from training.tuning import TUNERS, FunctionTuner, make_oracle, search

COMMAND = "tune-image-text-fusion"
OBJECTIVE = "dev_mean_macro_f1"
FUSION_DIMS = (256, 384, 512, 768)
FUSION_HEADS = (4, 8, 16)
LEARNING_RATES = {"teacher_lr": (1e-6, 5e-4), "student_lr": (1e-5, 1e-3)}
LOSS_WEIGHTS = {"alpha": (0.1, 2.0, "linear"), "beta": (10.0, 500.0, "log"), "T": (1.0, 10.0, "linear")}
FUSION_LAYER_RANGES = {"teacher": (1, 4), "student": (1, 3)}
DROPOUT = (0.0, 0.5)
DEFAULT_TUNING_DIR = "runs/image_text_tuning"
DEFAULT_MAX_TRIALS = 20  # the original's default --n-trials 50 is ~6 h of the CPU preset
OWN_FLAGS = ("tuner", "max_trials", "tuning_dir", "fusion_dims", "fusion_heads", "hyperband_factor")


def _takes(fusion_type, argument):
    """Whether ``fusion_type``'s layer takes ``argument`` (``num_layers``, ``heads``)."""
    return argument in inspect.signature(FUSION_LAYERS[fusion_type].__init__).parameters


def search_space(config, fusion_dims=FUSION_DIMS, fusion_heads=FUSION_HEADS):
    """The search space around ``config`` (a validated `FusionConfig`); one-value lists become `Fixed`.

    Raises:
        ConfigError: empty lists, or a fusion width that does not divide by a head count.
    """
    if not fusion_dims or not fusion_heads:
        raise ConfigError("--fusion_dims and --fusion_heads need at least one value each")
    heads = _takes(config.fusion_type, "heads")
    if heads:
        bad = [f"{dim} by {count}" for dim in fusion_dims for count in fusion_heads if dim % count]
        if bad:
            raise ConfigError(
                f"Every --fusion_dims value must divide by every --fusion_heads value: not {', '.join(bad)}"
            )
    hp = keras_tuner.HyperParameters()
    roles = ("student",) if config.teacher_model else ("teacher", "student")
    for role in roles:
        low, high = LEARNING_RATES[f"{role}_lr"]
        hp.Float(f"{role}_lr", low, high, sampling="log")
        _choice(hp, f"{role}_fusion_dim", fusion_dims)
        if _takes(config.fusion_type, "num_layers"):
            hp.Int(f"{role}_fusion_layers", *FUSION_LAYER_RANGES[role])
        if heads:
            _choice(hp, f"{role}_fusion_heads", fusion_heads)
        hp.Float(f"{role}_dropout", *DROPOUT)
    for name, (low, high, sampling) in LOSS_WEIGHTS.items():
        if name in LOSS_DEFAULTS[config.loss_type]:
            hp.Float(name, low, high, sampling=sampling)
    return hp


def _choice(hp, name, values):
    values = [int(value) for value in values]
    return hp.Choice(name, values) if len(values) > 1 else hp.Fixed(name, values[0])


def trial_config(config, values, epochs, trial_dir):
    """The `FusionConfig` of one trial: ``config`` with the trial's values, student epochs and run folder.

    ``overwrite``: a finished run of a trial KerasTuner retries is redone; an unfinished one resumes.
    """
    changes = dict(values, output_dir=str(Path(trial_dir) / "run"), overwrite=True)
    if epochs:
        changes["student_epochs"] = int(epochs)
    return dataclasses.replace(config, **changes).validated()


def run_trial(config, train_function, trial_id, values, epochs, trial_dir):
    """One trial: ``train_function(trial config)``; its results, with the student's flat test metrics when present."""
    results = train_function(trial_config(config, values, epochs, trial_dir))
    if isinstance(results, dict) and "student" in results:
        return {**results, **table_row(results)}
    return results


def tune(
    config,
    tuner="bayesian",
    max_trials=DEFAULT_MAX_TRIALS,
    tuning_dir=DEFAULT_TUNING_DIR,
    fusion_dims=FUSION_DIMS,
    fusion_heads=FUSION_HEADS,
    hyperband_factor=3,
    train_function=training.train,
    verbose=1,
):
    """Search the original's space around ``config``; in this process's KerasTuner role (see `training.tuning`).

    Args:
        config: a `FusionConfig`: data, backbones, fusion and loss types, epochs (``student_epochs``:
            per Bayesian trial, Hyperband's largest budget); ``overwrite`` restarts the search.
        tuner: "bayesian" or "hyperband".
        max_trials: trials of the Bayesian search (Hyperband's count follows from epochs and factor).
        tuning_dir: KerasTuner's directory; the search is its ``image_text_fusion_<tuner>`` folder.
        fusion_dims: the fusion widths searched (teacher and student).
        fusion_heads: the attention head counts searched (teacher and student).
        hyperband_factor: Hyperband's reduction factor.
        train_function: called with each trial's `FusionConfig`, returns its results dict
            (default `training.image_text_fusion.train.train`; tests pass cheaper ones).
        verbose: KerasTuner's verbosity.

    Returns:
        `training.tuning.search`'s outcome: the role and trials run, and on the chief or a lone
        process the best trial, its hyper-parameters and the report's table.

    Example:

    >>> outcome = tune(FusionConfig(student_epochs=4), "hyperband", fusion_dims=(32, 64))  # doctest: +SKIP
    >>> outcome["best_hyperparameters"]["student_fusion_dim"]  # doctest: +SKIP
    64
    """
    config = config.validated()
    space = search_space(config, fusion_dims, fusion_heads)
    oracle = make_oracle(
        tuner, OBJECTIVE, "max", space, max_trials, config.student_epochs, hyperband_factor, seed=config.seed
    )
    search_tuner = FunctionTuner(
        oracle,
        functools.partial(run_trial, config, train_function),
        fatal_errors=(ConfigError, DataError, RunDirectoryError),
        metric_prefixes=("test_",),
        directory=tuning_dir,
        project_name=f"image_text_fusion_{tuner}",
        overwrite=config.overwrite,
    )
    search_tuner.search_space_summary()
    return search(search_tuner, verbose=verbose)


def int_list(text):
    """``"8,16"`` -> ``(8, 16)``."""
    return tuple(int(value) for value in text.split(","))


def build_parser():
    """The training command's flags plus the search's own (``--overwrite``: restart the search)."""
    parser = training.command_parser(__doc__.split("\n\n")[0])
    parser.prog = COMMAND
    search_flags = parser.add_argument_group("search")
    search_flags.add_argument("--tuner", choices=TUNERS, default="bayesian")
    search_flags.add_argument("--max_trials", type=int, default=DEFAULT_MAX_TRIALS, help="Bayesian trials")
    search_flags.add_argument("--tuning_dir", default=DEFAULT_TUNING_DIR)
    search_flags.add_argument(
        "--fusion_dims", type=int_list, default=FUSION_DIMS, help="fusion widths searched, e.g. 32,64 at CPU scale"
    )
    search_flags.add_argument("--fusion_heads", type=int_list, default=FUSION_HEADS, help="head counts, e.g. 2,4")
    search_flags.add_argument("--hyperband_factor", type=int, default=3)
    return parser


def run_command(argv=None):
    """Parse the flags, then `tune`; user errors exit with a message. Returns `tune`'s outcome."""
    args = build_parser().parse_args(argv)
    with exit_on_user_errors():
        config = training.config_from_args(args, own=OWN_FLAGS)
        return tune(config, **{name: getattr(args, name) for name in OWN_FLAGS})


def main(argv=None):
    """Console entry point."""
    run_command(argv)


if __name__ == "__main__":
    main()

"""Hyperparameter search for the bone-age models with KerasTuner.

`tune(config, ...)`, and the command ``python -m training.boneage.tune --tuner hyperband --max_epochs 12 [any train-boneage flag]``

Searches the learning rate, dropout rate, dense and sex-branch widths and the loss around the
settings the other flags give (same data, pipeline and model type as ``training.boneage.train``),
minimising validation MAE. Trials are stored under ``--tuning_dir`` so a search resumes where it
stopped; ``best_hyperparameters.json`` holds the winner. Retrain it with ``train-boneage`` rather
than trusting the search's own weights (KerasTuner's advice).
"""

import argparse
import dataclasses
from pathlib import Path

import keras
import keras_tuner

from modeling.backbones import unfreeze_backbone_layers
from training.boneage.data_sources import load_splits, use_default_phantom
from training.boneage.pipeline import make_dataset
from training.boneage.train import build_model, dataset_options, parse_args, recompile, training_options
from training.cli import ConfigError, exit_on_user_errors
from training.results import write_json

TUNERS = ("hyperband", "bayesian", "random")


class BoneAgeHyperModel(keras_tuner.HyperModel):
    """Builds the chosen bone-age model with searched head sizes, dropout, loss and learning rate."""

    def __init__(self, config, target_mean, target_std):
        super().__init__(name=f"boneage_{config.model_type}")
        self.config = config
        self.target_mean = target_mean
        self.target_std = target_std

    def build(self, hp):
        config = dataclasses.replace(
            self.config,
            dropout_rate=hp.Float("dropout_rate", 0.0, 0.6, step=0.1, default=self.config.dropout_rate),
            dense_units=_choice(hp, "dense_units", [32, 64, 128, 256, 512], self.config.dense_units),
            gender_units=_choice(hp, "gender_units", [8, 16, 32], self.config.gender_units),
            loss_type=hp.Choice("loss_type", ["mae", "huber", "wing"], default=self.config.loss_type),
        )
        learning_rate = hp.Float("lr", 1e-5, 1e-2, sampling="log", default=config.lr)
        model, _ = build_model(config, self.target_mean, self.target_std)
        if config.fine_tune:  # trials train the whole backbone, as the CPU preset does
            unfreeze_backbone_layers(model, n_layers=10**6, freeze_batchnorm=config.bn_momentum is None)
        recompile(model, config, learning_rate, self.target_mean, self.target_std)
        return model


def _choice(hp, name, values, current):
    """A choice among ``values`` whose default is the current setting when it is one of them."""
    return hp.Choice(name, values, default=current if current in values else values[len(values) // 2])


def make_tuner(kind, hypermodel, directory, max_trials, max_epochs, seed):
    common = dict(objective="val_mae", directory=directory, project_name=hypermodel.name, seed=seed, overwrite=False)
    if kind == "hyperband":
        return keras_tuner.Hyperband(hypermodel, max_epochs=max_epochs, factor=3, **common)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    return keras_tuner.RandomSearch(hypermodel, max_trials=max_trials, **common)


def tune(config, tuner="hyperband", max_trials=10, max_epochs=12, tuning_dir="runs/tuning"):
    """Search hyperparameters around ``config``; returns (and writes) the best ones.

    Args:
        config: a `BoneAgeConfig` giving the data, pipeline, model type and the searched values' defaults.
        tuner: "hyperband", "bayesian" or "random".
        max_trials: trials of the bayesian and random searches.
        max_epochs: epochs per trial (hyperband: the largest budget).
        tuning_dir: KerasTuner's trial folder; a search resumes where it stopped.

    Returns:
        The summary written to ``<tuning_dir>/best_hyperparameters.json``.
    """
    config = config.validated()
    if tuner not in TUNERS:
        raise ConfigError(f"--tuner must be one of {', '.join(TUNERS)}; got {tuner!r}")
    if max_trials < 1 or max_epochs < 1:
        raise ConfigError("--max_trials and --max_epochs must be positive")
    if config.distribute != "none":
        raise ConfigError("tune-boneage runs its trials in one process; drop --distribute")
    keras.utils.set_random_seed(config.seed)
    use_default_phantom(config, splits=("train", "val"))
    splits = load_splits(config, ("train", "val"))
    train_table = splits["train"].table
    mean, std = float(train_table["boneage"].mean()), float(train_table["boneage"].std(ddof=1))
    common = dataset_options(config, mean, std)
    train_ds = make_dataset(train_table, **training_options(config), **common)
    val_ds = make_dataset(splits["val"].table, clahe=config.use_clahe_val_test, **common)

    search = make_tuner(tuner, BoneAgeHyperModel(config, mean, std), tuning_dir, max_trials, max_epochs, config.seed)
    search.search(train_ds, validation_data=val_ds, epochs=max_epochs, verbose=2)
    best = search.get_best_hyperparameters(1)[0]
    trial = search.oracle.get_best_trials(1)[0]
    summary = {
        "tuner": tuner,
        "best_hyperparameters": best.values,
        "best_val_mae_z": trial.score,
        "best_val_mae_months": trial.score * std,
        "trials": len(search.oracle.trials),
        "model_type": config.model_type,
        "backbone": config.backbone,
    }
    write_json(Path(tuning_dir) / "best_hyperparameters.json", summary)
    print(
        f"Best: {best.values} (val MAE {summary['best_val_mae_months']:.2f} months) -> {tuning_dir}/best_hyperparameters.json"
    )
    return summary


def run(argv=None):
    """The command: the search flags, every other flag as for ``train-boneage``."""
    parser = argparse.ArgumentParser(prog="tune-boneage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tuner", choices=TUNERS, default="hyperband")
    parser.add_argument("--max_trials", type=int, default=10, help="bayesian and random search")
    parser.add_argument("--max_epochs", type=int, default=12, help="epochs per trial (hyperband: the largest budget)")
    parser.add_argument("--tuning_dir", default="runs/tuning")
    own, train_argv = parser.parse_known_args(argv)
    config = parse_args(train_argv)
    with exit_on_user_errors():
        return tune(config, own.tuner, own.max_trials, own.max_epochs, own.tuning_dir)


def main(argv=None):
    """Console entry point."""
    run(argv)


if __name__ == "__main__":
    main()

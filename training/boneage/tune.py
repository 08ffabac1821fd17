"""Hyperparameter search for the bone-age models with KerasTuner.

``python -m training.tune --tuner hyperband --max_epochs 12 [any train_boneage flag]``

Searches the learning rate, dropout rate, dense and sex-branch widths and the loss around the
settings the other flags give (same data, pipeline and model type as ``training.train_boneage``),
minimising validation MAE. Trials are stored under ``--tuning_dir`` so a search resumes where it
stopped; ``best_hyperparameters.json`` holds the winner. Retrain it with ``train_boneage`` rather
than trusting the search's own weights (KerasTuner's advice).
"""

import argparse
from pathlib import Path

import keras
import keras_tuner

from modeling.backbones import unfreeze_backbone_layers
from training.boneage import train as train_boneage
from training.boneage.data_sources import load_splits, use_default_phantom
from training.boneage.pipeline import make_dataset
from training.results import write_json

TUNERS = ("hyperband", "bayesian", "random")


class BoneAgeHyperModel(keras_tuner.HyperModel):
    """Builds the chosen bone-age model with searched head sizes, dropout, loss and learning rate."""

    def __init__(self, args, target_mean, target_std):
        super().__init__(name=f"boneage_{args.model_type}")
        self.args = args
        self.target_mean = target_mean
        self.target_std = target_std

    def build(self, hp):
        args = argparse.Namespace(**vars(self.args))
        args.dropout_rate = hp.Float("dropout_rate", 0.0, 0.6, step=0.1, default=args.dropout_rate)
        args.dense_units = _choice(hp, "dense_units", [32, 64, 128, 256, 512], args.dense_units)
        args.gender_units = _choice(hp, "gender_units", [8, 16, 32], args.gender_units)
        args.loss_type = hp.Choice("loss_type", ["mae", "huber", "wing"], default=args.loss_type)
        learning_rate = hp.Float("lr", 1e-5, 1e-2, sampling="log", default=args.lr)
        model, _ = train_boneage.build_model(args, self.target_mean, self.target_std)
        if args.fine_tune:  # trials train the whole backbone, as the CPU preset does
            unfreeze_backbone_layers(model, n_layers=10**6, freeze_batchnorm=args.bn_momentum is None)
        train_boneage.recompile(model, args, learning_rate, self.target_mean, self.target_std)
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


def run(argv=None):
    parser = argparse.ArgumentParser(prog="tune-boneage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tuner", choices=TUNERS, default="hyperband")
    parser.add_argument("--max_trials", type=int, default=10, help="bayesian and random search")
    parser.add_argument("--max_epochs", type=int, default=12, help="epochs per trial (hyperband: the largest budget)")
    parser.add_argument("--tuning_dir", default="runs/tuning")
    own, train_argv = parser.parse_known_args(argv)
    if own.max_trials < 1 or own.max_epochs < 1:
        parser.error("--max_trials and --max_epochs must be positive")
    args = train_boneage.parse_args(train_argv)
    if args.distribute != "none":
        parser.error("tune-boneage runs its trials in one process; drop --distribute")
    keras.utils.set_random_seed(args.seed)
    use_default_phantom(args, splits=("train", "val"))
    splits = load_splits(args, ("train", "val"))
    train_table = splits["train"].table
    mean, std = float(train_table["boneage"].mean()), float(train_table["boneage"].std(ddof=1))
    common = train_boneage.dataset_options(args, mean, std)
    train_ds = make_dataset(train_table, **train_boneage.training_options(args), **common)
    val_ds = make_dataset(splits["val"].table, clahe=bool(args.use_clahe_val_test), **common)

    tuner = make_tuner(own.tuner, BoneAgeHyperModel(args, mean, std), own.tuning_dir, own.max_trials, own.max_epochs, args.seed)
    tuner.search(train_ds, validation_data=val_ds, epochs=own.max_epochs, verbose=2)
    best = tuner.get_best_hyperparameters(1)[0]
    trial = tuner.oracle.get_best_trials(1)[0]
    summary = {
        "tuner": own.tuner,
        "best_hyperparameters": best.values,
        "best_val_mae_z": trial.score,
        "best_val_mae_months": trial.score * std,
        "trials": len(tuner.oracle.trials),
        "model_type": args.model_type,
        "backbone": args.backbone,
    }
    write_json(Path(own.tuning_dir) / "best_hyperparameters.json", summary)
    print(f"Best: {best.values} (val MAE {summary['best_val_mae_months']:.2f} months) -> {own.tuning_dir}/best_hyperparameters.json")
    return summary


def main(argv=None):
    """Console entry point."""
    run(argv)


if __name__ == "__main__":
    main()

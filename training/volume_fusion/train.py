"""Train a volume + metadata classifier: `train(config)`, and the command
``python -m training.volume_fusion.train [flags]`` (console script ``train-volume-fusion``) that wraps it.

With no flags it writes the embedded synthetic hip dataset once (``data/volume_fusion_phantom``:
NIfTI volumes and Excel workbooks in the original's layout), trains LearnedFeatureFusion3D (concat)
on a ResNet-18 with the focal loss under the CPU preset and writes everything to
``runs/volume_fusion_cpu``. ``--preset original`` restores the original's settings (64^3,
ResNet-50, batch 128, 100 epochs, BCE with pos_weight 3). A run killed part-way resumes where it
stopped when the same command is started again.

Outputs in ``--output_dir``: ``checkpoint.keras`` (the model selected by ``--select_by`` on
validation; volume in [0, 1] and metadata in, one logit out), ``results.json`` (every metric on
validation and test, thresholds chosen on validation applied to test), ``predictions.csv`` (per
case), ``training_log.csv``, TensorBoard logs, ROC and PR curves in ``plots/``, ``run_manifest.json``.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from modeling import create_model
from modeling.backbones.resnet3d_convert import load_torch_state_dict, read_state_dict
from modeling.losses import FocalLoss, WeightedBinaryCrossentropy
from modeling.volume_fusion import FUSIONS
from training.classification_metrics import binary_metrics, curve_figures, operating_thresholds
from training.cli import (
    ConfigError,
    add_preset_and_verbose_arguments,
    add_scale_out_arguments,
    annotate_presets,
    exit_on_user_errors,
    parse_config,
)
from training.distribution import dtype_policy, mixed_precision_policy
from training.results import write_csv, write_json
from training.run_directory import RunDirectory
from training.volume_fusion.config import MODELS, OPTIMIZERS, PRESETS, RESUME_INDEPENDENT, SELECT_BY, VolumeFusionConfig
from training.volume_fusion.data import augmentation, load_splits, make_dataset, metadata_statistics

SYSTEM = "volume_fusion"
COMMAND = "train-volume-fusion"


def build_parser():
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_preset_and_verbose_arguments(parser, PRESETS)
    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=MODELS)
    model.add_argument("--fusion", choices=FUSIONS, help="learned_feature_fusion: how the embeddings combine")
    model.add_argument("--depth", type=int, choices=(10, 18, 34, 50, 101), help="3D ResNet depth")
    model.add_argument("--widen_factor", type=float, help="MONAI width multiplier of the ResNet")
    model.add_argument("--stem_stride", type=int, help="1 (MONAI) or 2 (MedicalNet checkpoints)")
    model.add_argument("--shortcut_type", choices=("A", "B"))
    model.add_argument("--backbone_weights", help="ResNet weights: .weights.h5, or a MONAI/MedicalNet .npz/.pth")
    model.add_argument("--dropout_rate", type=float)
    model.add_argument("--volume_size", type=int, help="volumes are resized to this size^3")
    train_group = parser.add_argument_group("training")
    train_group.add_argument("--loss", choices=("focal", "bce"), help="bce: BCE with --pos_weight (the original's)")
    train_group.add_argument("--focal_gamma", type=float)
    train_group.add_argument("--focal_alpha", help="'dynamic' (per batch from the labels) or a fixed number")
    train_group.add_argument("--label_smoothing", type=float)
    train_group.add_argument("--pos_weight", type=float, help="bce: weight of the positives")
    train_group.add_argument("--optimizer", choices=OPTIMIZERS)
    train_group.add_argument("--lr", type=float)
    train_group.add_argument("--min_lr", type=float, help="cosine annealing floor (per epoch, over --epochs)")
    train_group.add_argument("--weight_decay", type=float)
    train_group.add_argument("--batch_size", type=int)
    train_group.add_argument("--epochs", type=int)
    train_group.add_argument("--select_by", choices=SELECT_BY, help="validation metric of the kept model")
    train_group.add_argument("--seed", type=int)
    data = parser.add_argument_group("data")
    data.add_argument("--data_dir", help="a folder in the embedded layout (default: build the phantom)")
    data.add_argument("--train_table", help=".xlsx or .csv of the training cases")
    data.add_argument("--val_table")
    data.add_argument("--test_table")
    data.add_argument("--image_dir", help="folder of the NIfTI volumes")
    data.add_argument("--train_sheet")
    data.add_argument("--eval_sheet", help="sheet of the validation and test workbooks")
    data.add_argument("--study_column")
    data.add_argument("--side_column")
    data.add_argument("--target_column")
    data.add_argument("--metadata_columns", help="comma-separated, in the model's order")
    data.add_argument("--gender_column", help="metadata column coded m=0/f=1 ('none': no such column)")
    data.add_argument("--path_column", help="a column of volume paths instead of img<study>_annotation-<side>")
    data.add_argument("--on_bad_rows", choices=("raise", "skip"))
    data.add_argument("--augment", action=argparse.BooleanOptionalAction)
    data.add_argument("--flip", action=argparse.BooleanOptionalAction, help="random flips on all three axes")
    data.add_argument("--rotation_degrees", type=float, help="random rotations about each axis, +- degrees")
    data.add_argument("--phantom_n_train", type=int)
    data.add_argument("--phantom_n_val", type=int)
    data.add_argument("--phantom_n_test", type=int)
    output = parser.add_argument_group("output")
    output.add_argument("--output_dir")
    output.add_argument("--overwrite", action="store_true", help="replace a finished run in --output_dir")
    add_scale_out_arguments(parser)
    annotate_presets(parser, {name: VolumeFusionConfig.from_preset(name).to_dict() for name in PRESETS})
    return parser


def parse_args(argv=None):
    """The validated `VolumeFusionConfig` of the flags: unset flags take the preset's value."""
    return parse_config(build_parser(), VolumeFusionConfig, argv)


def make_loss(config):
    if config.loss == "bce":
        return WeightedBinaryCrossentropy(config.pos_weight, config.label_smoothing)
    alpha = config.focal_alpha if config.focal_alpha == "dynamic" else float(config.focal_alpha)
    return FocalLoss(config.focal_gamma, alpha, label_smoothing=config.label_smoothing)


def make_optimizer(config):
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(config.lr, momentum=0.9, weight_decay=config.weight_decay or None)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(config.lr, weight_decay=config.weight_decay or 0.01)
    cls = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}[config.optimizer]
    return cls(config.lr, weight_decay=config.weight_decay or None)


def cosine_annealing(config):
    """PyTorch's CosineAnnealingLR(T_max=epochs, eta_min=min_lr), stepped once per epoch."""

    def schedule(epoch, _lr=None):
        return config.min_lr + (config.lr - config.min_lr) * (1 + math.cos(math.pi * epoch / config.epochs)) / 2

    return schedule


def build_model(config, metadata_mean, metadata_variance):
    """The configured model, backbone weights loaded, compiled with the loss, optimizer and metrics."""
    size = config.volume_size
    kwargs = dict(
        volume_shape=(size, size, size, 1),
        meta_features=len(config.metadata_list),
        backbone={
            "depth": config.depth,
            "widen_factor": config.widen_factor,
            "stem_stride": config.stem_stride,
            "shortcut_type": config.shortcut_type,
        },  # fmt: skip
        dropout_rate=config.dropout_rate,
        metadata_mean=metadata_mean,
        metadata_variance=metadata_variance,
    )
    if config.model == "learned_feature_fusion":
        kwargs["fusion"] = config.fusion
    if config.model == "image_only":
        kwargs.pop("metadata_mean"), kwargs.pop("metadata_variance")
    model = create_model(f"{SYSTEM}/{config.model}", **kwargs)
    if config.backbone_weights:
        load_backbone_weights(model, config.backbone_weights)
    model.compile(
        optimizer=make_optimizer(config),
        loss=make_loss(config),
        metrics=[
            keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy"),  # logit 0 = probability 0.5
            keras.metrics.AUC(from_logits=True, name="auc"),
            keras.metrics.AUC(curve="PR", from_logits=True, name="pr_auc"),
        ],
        jit_compile=config.jit_compile_argument,
    )
    return model


def load_backbone_weights(model, path):
    """Keras weights (``.weights.h5``) or a PyTorch state dict (``.npz`` / ``.pth``) into the backbone."""
    path = Path(path)
    if not any(layer.name == "backbone" for layer in model.layers):
        raise ConfigError(f"--backbone_weights: model {model.name!r} has no image backbone")
    backbone = model.get_layer("backbone")
    if not path.is_file():
        raise ConfigError(f"--backbone_weights: file not found: {path}")
    try:
        if path.name.endswith(".weights.h5"):
            backbone.load_weights(path)
        else:
            load_torch_state_dict(backbone, read_state_dict(path), ignore=("fc.", "conv_seg."))
    except (ValueError, ImportError) as error:
        raise ConfigError(f"--backbone_weights {path}: {error}") from None


class RunFiles:
    """Where one run writes; every path is registered in the run folder's manifest first."""

    def __init__(self, directory):
        self.directory = directory
        self.dir = directory.path
        self.checkpoint = directory.file("checkpoint.keras")
        self.results = directory.file("results.json")
        self.predictions = directory.file("predictions.csv")
        self.log = directory.file("training_log.csv")
        self.final_weights = directory.file("final.weights.h5")
        self.plots = directory.folder("plots")
        self.tensorboard = directory.folder("tensorboard")
        self.backup = directory.folder("backup")


def best_checkpoint_value(run, val_ds, monitor):
    """The saved checkpoint's validation metric (``None`` before there is one), for a resumed run."""
    if not run.checkpoint.exists():
        return None
    return float(keras.saving.load_model(run.checkpoint).evaluate(val_ds, verbose=0, return_dict=True)[monitor])


def callbacks_for(config, run, best_so_far):
    return [
        keras.callbacks.BackupAndRestore(run.backup),
        keras.callbacks.LearningRateScheduler(cosine_annealing(config)),
        keras.callbacks.ModelCheckpoint(
            run.checkpoint,
            monitor=f"val_{config.select_by}",
            mode="max",
            save_best_only=True,
            initial_value_threshold=best_so_far,
        ),
        keras.callbacks.CSVLogger(run.log, append=True),
        keras.callbacks.TensorBoard(run.tensorboard),
        keras.callbacks.TerminateOnNaN(),
    ]


def fit(config, run, splits, dist):
    """Train in the distribution's scope (resuming a killed run); returns the model's input names."""
    mean, variance = metadata_statistics(splits["train"])
    with dist.scope():
        model = build_model(config, mean, variance)
        names = list(model.input)
        sharded = dict(
            batch_size=dist.per_process_batch(config.batch_size),
            num_shards=dist.num_processes,
            shard_index=dist.process_id,
            drop_remainder=dist.kind == "data_parallel",
        )
        train_ds = make_dataset(splits["train"], names, training=True, augment=augmentation(config), seed=config.seed,
                                **sharded)  # fmt: skip
        val_ds = make_dataset(splits["val"], names, **sharded)
        best = best_checkpoint_value(run, val_ds, config.select_by)
        if run.final_weights.exists():
            print(f"Training already finished ({run.final_weights}): evaluating")
            return names
        print(f"Training {model.name}: {model.count_params():,} weights, {config.epochs} epochs")
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.epochs,
            callbacks=callbacks_for(config, run, best),
            verbose=1 if sys.stdout.isatty() else 2,
        )
        model.save_weights(run.final_weights)
    return names


def predict_probabilities(model, split, names, batch_size):
    logits = model.predict(make_dataset(split, names, batch_size), verbose=0)[:, 0]
    return 1.0 / (1.0 + np.exp(-logits.astype("float64")))


def evaluate_and_report(config, run, splits, names):
    """Metrics of the selected checkpoint on validation and test, per-case CSV and ROC/PR plots."""
    model = keras.saving.load_model(run.checkpoint, safe_mode=True)
    results = {f"n_{name}": len(split.targets) for name, split in splits.items()}
    results["skipped_rows"] = {name: split.report["skipped"] for name, split in splits.items()}
    results["unused_volumes"] = {name: split.unused_volumes for name, split in splits.items()}
    probabilities = {
        name: predict_probabilities(model, splits[name], names, config.batch_size) for name in ("val", "test")
    }
    thresholds = operating_thresholds(splits["val"].targets, probabilities["val"])
    results["thresholds_from_val"] = thresholds
    tables = []
    for name, probability in probabilities.items():
        y = splits[name].targets
        results[name] = binary_metrics(y, probability)
        for rule, threshold in thresholds.items():
            if threshold is not None and name == "test":
                results[f"test_at_{rule}_threshold"] = binary_metrics(y, probability, threshold)
        for figure, kind in zip(curve_figures(y, probability, f"{name} ({model.name})"), ("roc", "pr"), strict=False):
            figure.savefig(run.plots / f"{name}_{kind}.png", dpi=100)
        table = splits[name].table[["study", "side", "path", "target"]].assign(split=name, probability=probability)
        tables.append(table.assign(predicted=(probability >= 0.5).astype(int)))
    write_csv(run.predictions, pd.concat(tables, ignore_index=True))
    log = pd.read_csv(run.log)
    results["epochs_trained"] = int(len(log))
    results["best_epoch"] = int(log[f"val_{config.select_by}"].idxmax() + 1)
    return results


def train(config):
    """Train, evaluate and write the outputs of one run; returns the results dictionary.

    Args:
        config: a `VolumeFusionConfig` (e.g. ``VolumeFusionConfig.from_preset("cpu", epochs=2)``).

    Returns:
        The contents of ``results.json`` (plain Python types).

    Raises:
        ConfigError, DataError, RunDirectoryError: naming the flag, file/sheet/row, or folder at fault.
    """
    config = config.validated()
    started = time.time()
    dist = config.start_distribution(config.batch_size)
    keras.utils.set_random_seed(config.seed)
    output_dir = dist.output_dir(config.output_dir)
    run_files = RunFiles(
        RunDirectory(output_dir, COMMAND, config.to_dict(), config.overwrite, resume_independent=RESUME_INDEPENDENT)
    )
    splits = load_splits(config, builder=dist.is_chief)
    for split in splits.values():
        print(f"{split.name}: {len(split.targets)} cases ({int(split.targets.sum())} positive) from {split.source}")
    policy = mixed_precision_policy() if config.mixed_precision else None
    facts = dist.facts() | {"mixed_precision": policy}
    with dtype_policy(policy):
        names = fit(config, run_files, splits, dist)
        if not dist.is_chief:
            worker = facts | {"epochs_trained": int(len(pd.read_csv(run_files.log)))}
            write_json(run_files.results, worker)
            run_files.directory.finish(epochs_trained=worker["epochs_trained"])
            return worker
        results = evaluate_and_report(config, run_files, splits, names)
    results.update({"config": config.to_dict(), **facts, "wall_seconds": round(time.time() - started, 1)})
    write_json(run_files.results, results)
    run_files.directory.finish(epochs_trained=results["epochs_trained"])
    shown = {key: results["test"][key] for key in ("accuracy", "roc_auc", "pr_auc", "f1")}
    print("\nTest:", ", ".join(f"{k} = {v:.3f}" if v is not None else f"{k} = n/a" for k, v in shown.items()))
    print(f"Results: {run_files.results}\nModel: {run_files.checkpoint}\nPlots: {run_files.plots}")
    return results


def run(argv=None):
    """The command: parse the flags into a `VolumeFusionConfig` and `train` it; user errors exit with a message."""
    config = parse_args(argv)
    with exit_on_user_errors():
        return train(config)


def main(argv=None):
    """Console entry point."""
    run(argv)


if __name__ == "__main__":
    main()

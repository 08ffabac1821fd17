"""Train a bone-age model: `train(config)`, and the command ``python -m training.boneage.train [flags]``
(console script ``train-boneage``) that wraps it.

With no flags it builds the synthetic phantom dataset once (``data/phantom``), trains
``attn_sex_model_improved`` with a CPU preset and writes everything to ``runs/boneage_cpu``.
``--preset original`` restores the original's settings (Xception, ImageNet weights, 500 px, ...)
for real data on a GPU. Training runs in two phases, backbone frozen then fine-tuning, and a run
killed part-way resumes where it stopped when the same command is started again.

Outputs in ``--output_dir``: ``best.keras`` (raw pixels + sex -> months; carries image size,
preprocessing, CLAHE and the target statistics), ``checkpoint.keras`` (the best z-score model),
``results.json``, ``predictions_val.csv``, ``predictions_test.csv``, ``training_log_phase{1,2}.csv``,
TensorBoard logs, plots (learning curves, predicted vs true, Bland-Altman, attention maps, gate
weights), and ``run_manifest.json`` (what the run wrote; `training.run_directory`).
"""

import argparse
import functools
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from callbacks import (
    CLR_MODES,
    AttentionMapLogger,
    BackboneFreezer,
    CyclicalLearningRate,
    GateWeightLogger,
    LearningRateLogger,
    with_training_state,
)
from modeling import create_model, list_models
from modeling.backbones import BACKBONE_MAP, BACKBONE_PREPROCESSING, unfreeze_backbone_layers
from modeling.boneage import optimizer, plot_history
from modeling.inference import predict_tta
from modeling.layers import Denormalization
from modeling.losses import LOSS_NAMES, get_loss_function
from modeling.metrics import MAEMonths
from training.boneage.config import CACHE_CHOICES, PRESETS, RESUME_INDEPENDENT, BoneAgeConfig, parse_unfreeze_schedule
from training.boneage.data_sources import add_data_arguments, load_splits, phantom_error_floor, use_default_phantom
from training.boneage.evaluation import agreement_figures, predictions_table, regression_metrics
from training.boneage.pipeline import DataEpoch, make_dataset
from training.cli import (
    add_preset_and_verbose_arguments,
    add_scale_out_arguments,
    annotate_presets,
    exit_on_user_errors,
    parse_config,
)
from training.data.augmentation import Augmentation
from training.data.tables import DataError
from training.distribution import dtype_policy, mixed_precision_policy
from training.results import write_csv, write_json
from training.run_directory import RunDirectory

SYSTEM = "boneage"
# The registry's bone-age models without their system prefix: the --model_type choices.
MODEL_TYPES = [name.split("/", 1)[1] for name in list_models(SYSTEM)]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="train-boneage",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_preset_and_verbose_arguments(parser, PRESETS)
    model = parser.add_argument_group("model")
    model.add_argument("--model_type", choices=MODEL_TYPES)
    model.add_argument("--backbone", choices=sorted(BACKBONE_MAP))
    model.add_argument("--weights", help="imagenet, none, or a path to a local backbone weights file")
    model.add_argument("--activation", help="hidden activation of the baseline model")
    model.add_argument("--dropout_rate", type=float)
    model.add_argument("--dense_units", type=int)
    model.add_argument("--gender_units", type=int)
    model.add_argument("--img_size", type=int)
    model.add_argument(
        "--preprocessing",
        choices=("backbone", "original"),
        help="pixel scaling: what the backbone's ImageNet weights expect, or the original's Xception scaling for all",
    )
    model.add_argument(
        "--bn_momentum",
        type=float,
        help="momentum of the backbone's BatchNorm layers, for training from scratch; when set, those layers "
        "also train in phase 2 instead of staying frozen",
    )

    train = parser.add_argument_group("training")
    train.add_argument("--lr", type=float)
    train.add_argument("--batch_size", "--batch_size_train", type=int, help="training batch size")
    train.add_argument("--batch_size_val", type=int, help="validation batch size (default: --batch_size)")
    train.add_argument("--batch_size_test", type=int, help="test batch size (default: --batch_size)")
    train.add_argument("--epochs_frozen", type=int, help="phase 1: epochs with the backbone frozen")
    train.add_argument("--epochs_finetune", type=int, help="phase 2: epochs after unfreezing (needs --fine_tune)")
    train.add_argument("--fine_tune", action=argparse.BooleanOptionalAction)
    train.add_argument("--unfreeze_layers", type=int, help="weighted backbone layers unfrozen in phase 2; -1 = all")
    train.add_argument("--finetune_lr_factor", type=float, help="phase-2 learning rate = lr x this")
    train.add_argument(
        "--unfreeze_schedule",
        help="progressive unfreezing in phase 2 instead of --unfreeze_layers, e.g. 20:0.5,40:1.0 "
        "(epoch of phase 2: fraction, or count, of weighted backbone layers)",
    )
    train.add_argument("--backbone_lr_multiplier", type=float, help="with --unfreeze_schedule: backbone LR factor")
    train.add_argument("--loss_type", choices=LOSS_NAMES)
    train.add_argument("--huber_delta", type=float)
    train.add_argument("--smooth_l1_sigma", type=float)
    train.add_argument("--wing_w", type=float)
    train.add_argument("--wing_epsilon", type=float)
    train.add_argument(
        "--use_cyclical_lr", action=argparse.BooleanOptionalAction, help="cyclical LR instead of ReduceLROnPlateau"
    )
    train.add_argument("--clr_max_lr", type=float, help="peak of the cycle (default: 10 x --lr)")
    train.add_argument("--clr_step_size", type=int, help="iterations per half cycle")
    train.add_argument("--clr_mode", choices=CLR_MODES)
    train.add_argument("--clr_gamma", type=float)
    train.add_argument("--early_stopping_patience", type=int, help="0 disables early stopping")
    train.add_argument("--gradient_clip_norm", type=float, help="per-variable gradient norm clipping; 0 disables it")
    train.add_argument("--weight_decay", type=float, help="decoupled weight decay (AdamW); 0 = the original's Adam")
    train.add_argument("--seed", type=int)

    data = add_data_arguments(parser)
    data.add_argument(
        "--use_clahe_val_test", action=argparse.BooleanOptionalAction, help="CLAHE on validation and test images"
    )
    data.add_argument(
        "--no_clahe", dest="use_clahe_val_test", action="store_false", help="the original's flag: no CLAHE on val/test"
    )
    data.add_argument(
        "--cache",
        choices=CACHE_CHOICES,
        help="decoded images as uint8: in memory, in the run folder's cache/ (for data larger than RAM), or none",
    )
    data.add_argument("--interpolation", choices=("bilinear", "nearest", "area", "bicubic"))
    data.add_argument("--label_noise_std", type=float, help="Gaussian noise on z-score targets")
    data.add_argument("--mixup_alpha", type=float)
    data.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        help="random flips, rotations, shifts, zooms, brightness, contrast",
    )
    data.add_argument("--augment_rotation", type=float, help="rotations up to +-this many degrees")
    data.add_argument("--augment_shift", type=float, help="shifts up to this fraction of the size")
    data.add_argument("--augment_zoom", type=float, help="zoom factors in [1 - zoom, 1 + zoom] per axis")
    data.add_argument("--augment_brightness", type=float)
    data.add_argument("--augment_contrast", type=float)
    data.add_argument("--phantom_n_train", type=int)
    data.add_argument("--phantom_n_val", type=int)
    data.add_argument("--phantom_n_test", type=int)

    evaluation = parser.add_argument_group("evaluation and output")
    evaluation.add_argument("--use_tta", action=argparse.BooleanOptionalAction)
    evaluation.add_argument("--tta_steps", type=int)
    evaluation.add_argument("--output_dir")
    evaluation.add_argument("--overwrite", action="store_true", help="replace a finished run in --output_dir")
    evaluation.add_argument("--attention_every", type=int, help="save attention overlays every N epochs")

    add_scale_out_arguments(parser)
    annotate_presets(parser, {name: BoneAgeConfig.from_preset(name).to_dict() for name in PRESETS})
    return parser


def parse_args(argv=None):
    """The validated `BoneAgeConfig` of the flags: unset flags take the preset's value."""
    return parse_config(build_parser(), BoneAgeConfig, argv)


# Processes other than 0 of a multi-process run keep their checkpoints and logs in OUTPUT_DIR/process_<i>.
COMMAND = "train-boneage"
PHASES = ("phase1", "phase2")


def open_run_directory(config, output_dir):
    """The run folder: new, resumed (same settings, unfinished) or replaced with ``overwrite``."""
    return RunDirectory(
        output_dir, COMMAND, config.to_dict(), overwrite=config.overwrite, resume_independent=RESUME_INDEPENDENT
    )


def build_model(config, target_mean, target_std):
    preprocessing = "tf" if config.preprocessing == "original" else BACKBONE_PREPROCESSING[config.backbone]
    kwargs = dict(
        img_dims=(config.img_size, config.img_size, 3),
        optim=make_optimizer(config, config.lr),
        metric=["mae", MAEMonths(target_mean, target_std)],
        backbone=config.backbone,
        weights=config.weights,
        dropout_rate=config.dropout_rate,
        dense_units=config.dense_units,
        loss=loss_from_args(config),
        preprocessing=preprocessing,
    )
    if config.model_type == "baseline":
        kwargs["activation"] = config.activation
    if config.model_type in ("sex", "attn_sex", "attn_sex_improved"):
        kwargs["gender_units"] = config.gender_units
    model = create_model(f"{SYSTEM}/{config.model_type}", **kwargs)
    if config.bn_momentum is not None:
        for layer in model.get_layer("backbone").layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = config.bn_momentum
    return model, preprocessing


def loss_from_args(config):
    return get_loss_function(
        config.loss_type,
        huber_delta=config.huber_delta,
        smooth_l1_sigma=config.smooth_l1_sigma,
        wing_w=config.wing_w,
        wing_epsilon=config.wing_epsilon,
    )


def make_optimizer(config, learning_rate):
    """The original's Adam with the run's gradient clipping, AdamW with ``--weight_decay``."""
    return optimizer(
        learning_rate, 0.9, 0.999, 1e-7, 0.0, clipnorm=config.gradient_clip_norm, weight_decay=config.weight_decay
    )


def recompile(model, config, learning_rate, target_mean, target_std):
    """Compile with the run's optimizer (`make_optimizer`), the chosen loss and MAE in z-units and months."""
    model.compile(
        optimizer=make_optimizer(config, learning_rate),
        loss=loss_from_args(config),
        metrics=["mae", MAEMonths(target_mean, target_std)],
        jit_compile=config.jit_compile_argument,
    )


def standard_callbacks(config, run, model, phase, monitor_best, probe, data_epoch, freezer=None):
    """Checkpointing, logging, LR control and the interpretability loggers for one phase.

    ``probe`` is ``None`` when the loggers cannot run (their predictions would span processes).
    ``data_epoch`` is the `DataEpoch` of the training data; ``freezer`` a `BackboneFreezer` or
    ``None``. The last callback keeps the state of all the others over a restart
    (`callbacks.TrainingStateBackup`), so a killed phase resumes exactly where it stopped.
    """
    callbacks = [data_epoch] + ([freezer] if freezer is not None else []) + [LearningRateLogger()]
    if probe is not None and _has_layer(model, "fusion_gate"):
        callbacks.append(GateWeightLogger(probe, run.plots / phase, log_dir=run.tensorboard / phase))
    if probe is not None and _has_layer(model, "attention_map"):
        first_images = {name: value[:4] for name, value in probe.items()}
        callbacks.append(
            AttentionMapLogger(first_images, run.plots / "attention" / phase, every=config.attention_every)
        )
    callbacks += [
        keras.callbacks.ModelCheckpoint(
            run.checkpoint, monitor="val_loss", mode="min", save_best_only=True, initial_value_threshold=monitor_best
        ),
        keras.callbacks.CSVLogger(run.training_log(phase), append=True),
        keras.callbacks.TensorBoard(run.tensorboard / phase),
        keras.callbacks.TerminateOnNaN(),
    ]
    if config.use_cyclical_lr:
        callbacks.append(
            CyclicalLearningRate(config.lr, config.clr_max_lr, config.clr_step_size, config.clr_mode, config.clr_gamma)
        )
    else:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.8, patience=5, min_delta=1e-4, cooldown=5, min_lr=1e-6, verbose=1
            )
        )
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=False
            )
        )
    return with_training_state(callbacks, run.backup / phase)


def validation_probe(model, table, **dataset_options):
    """Fixed validation inputs (as arrays) for the gate and attention loggers."""
    inputs = {}
    for batch, _ in make_dataset(table, **dataset_options):
        for name, value in batch.items():
            inputs.setdefault(name, []).append(np.asarray(value))
    model_inputs = [i.name for i in model.inputs]
    return {name: np.concatenate(parts) for name, parts in inputs.items() if name in model_inputs}


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)


def export_inference_model(checkpoint_model, target_mean, target_std, clahe, interpolation):
    """Raw pixels of any size and sex in, months out; CLAHE inside when validation/test images used it.

    The first layer, ``"resize"``, resizes images of any height and width to the training size
    with the method training used (an identity at the training size), so ``model.predict`` takes
    raw radiographs.
    """
    height, width, channels = checkpoint_model.inputs[0].shape[1:]
    image = keras.Input((None, None, channels), name="image")
    inputs = [image] + [keras.Input(i.shape[1:], name=i.name) for i in checkpoint_model.inputs[1:]]
    x = keras.layers.Resizing(height, width, interpolation=interpolation, name="resize")(image)
    if clahe:
        x = keras.layers.ContrastLimitedAdaptiveHistogramEqualization(
            value_range=(0, 255), clip_limit=2.0, tile_grid_size=(8, 8), name="clahe"
        )(x)
    z = checkpoint_model([x, *inputs[1:]] if len(inputs) > 1 else x)
    months = Denormalization(target_mean, target_std, dtype="float32", name="boneage_months")(z)
    return keras.Model(inputs if len(inputs) > 1 else image, months, name=f"{checkpoint_model.name}_months")


class RunFiles:
    """Where one bone-age run writes; every path is registered in the run folder's manifest first.

    Args:
        directory: the `training.run_directory.RunDirectory` of the run.
    """

    def __init__(self, directory, config):
        self.directory = directory
        self.config = config
        self.dir = directory.path
        self.checkpoint = directory.file("checkpoint.keras")
        self.best = directory.file("best.keras")
        self.results = directory.file("results.json")
        self.phase_weights = {phase: directory.file(f"{phase}_final.weights.h5") for phase in PHASES}
        self.plots = directory.folder("plots")
        self.tensorboard = directory.folder("tensorboard")
        self.backup = directory.folder("backup")
        self.cache = directory.folder("cache")

    def training_log(self, phase):
        return self.directory.file(f"training_log_{phase}.csv")

    def predictions(self, split):
        return self.directory.file(f"predictions_{split}.csv")


def train(config):
    """Train, evaluate and write the outputs of one run; returns the results dictionary.

    A run folder holding an unfinished run with the same settings is resumed where it stopped.

    Args:
        config: a `BoneAgeConfig` (e.g. ``BoneAgeConfig.from_preset("cpu", epochs_finetune=2)``).

    Returns:
        The contents of ``results.json`` (plain Python types).

    Raises:
        ConfigError, DataError, RunDirectoryError: bad settings, bad data or a run folder that
            may not be written, each naming the setting, file and row, or folder at fault.
    """
    config = config.validated()
    started = time.time()
    # first: joining other processes must precede any other use of the devices
    dist = config.start_distribution(config.batch_size)
    keras.utils.set_random_seed(config.seed)
    output_dir = dist.output_dir(config.output_dir)
    run_files = RunFiles(open_run_directory(config, output_dir), config)
    splits, target_mean, target_std = prepare_data(config, dist)
    policy = mixed_precision_policy() if config.mixed_precision else None
    facts = dist.facts() | {"mixed_precision": policy, "jit_compile": config.jit_compile}
    with dtype_policy(policy):
        preprocessing = fit_phases(config, run_files, splits, target_mean, target_std, dist)
        if not dist.is_chief:  # process 0 evaluates and reports for the whole run
            epochs = int(len(read_training_log(run_files.dir)))
            worker = facts | {"epochs_trained": epochs, "wall_seconds": round(time.time() - started, 1)}
            write_json(run_files.results, worker)
            run_files.directory.finish(epochs_trained=epochs)
            print(
                f"Process {dist.process_id}: training finished; process 0 evaluates and writes {config.output_dir}/results.json"
            )
            return worker
        checkpoint_model = keras.saving.load_model(run_files.checkpoint, safe_mode=True)
        inference_model = export_inference_model(
            checkpoint_model, target_mean, target_std, config.use_clahe_val_test, config.interpolation
        )
        inference_model.save(run_files.best)
    results = evaluate_and_report(config, run_files, inference_model, splits, target_mean, target_std)
    results.update(
        {
            "config": config.to_dict(),
            "preprocessing": preprocessing,
            "target_mean_months": target_mean,
            "target_std_months": target_std,
            **facts,
            "wall_seconds": round(time.time() - started, 1),
        }
    )
    write_json(run_files.results, results)
    run_files.directory.finish(epochs_trained=results["epochs_trained"])
    summary = {
        key: results[key]
        for key in (
            "val_mae_months",
            "test_mae_months",
            "test_mae_months_tta",
            "test_mae_to_floor",
            "test_mae_to_floor_tta",
            "test_correlation",
            "wall_seconds",
        )
        if key in results
    }
    print(
        "\nSummary:", ", ".join(f"{k} = {v:.3f}" if isinstance(v, float) else f"{k} = {v}" for k, v in summary.items())
    )
    print(f"Results: {run_files.results}\nModel for prediction: {run_files.best}\nPlots: {run_files.plots}")
    return results


def run(argv=None):
    """The command: parse the flags into a `BoneAgeConfig` and `train` it; user errors exit with a message."""
    config = parse_args(argv)
    with exit_on_user_errors():
        return train(config)


def dataset_options(config, target_mean, target_std):
    """`make_dataset` arguments every split shares."""
    return dict(
        img_size=config.img_size,
        batch_size=config.batch_size,
        target_mean=target_mean,
        target_std=target_std,
        interpolation=config.interpolation,
        seed=config.seed,
    )


def training_options(config):
    """`make_dataset` arguments of the training split: augmentation, mixup, label noise."""
    return dict(
        training=True,
        augmentation=Augmentation(
            rotation_degrees=config.augment_rotation,
            shift=config.augment_shift,
            zoom=config.augment_zoom,
            brightness=config.augment_brightness,
            contrast=config.augment_contrast,
        )
        if config.augment
        else None,
        mixup_alpha=config.mixup_alpha,
        label_noise_std=config.label_noise_std,
    )


def prepare_data(config, dist):
    """The checked splits (building the phantom first when no data is given) and target statistics."""
    use_default_phantom(config, builder=dist.is_chief)
    splits = load_splits(config)
    for split in splits.values():
        print(
            f"{split.name}: {split.report.rows_kept} images from {split.csv} (skipped: {split.report.as_dict()['skipped']})"
        )
    ages = splits["train"].table["boneage"]
    return splits, float(ages.mean()), float(ages.std(ddof=1))


def fit_phases(config, run, splits, target_mean, target_std, dist):
    """Phase 1 (backbone frozen) and phase 2 (fine-tuning), resuming what a killed run left.

    Everything runs in the distribution's scope; each process reads its own shard of the data.
    The training data's order and random draws follow the epoch (`DataEpoch`), so a resumed
    phase reads the batches an uninterrupted one would.
    """
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)  # the data's epoch (outside the distribution)
    with dist.scope():
        return _fit_phases_in_scope(config, run, splits, target_mean, target_std, dist, epoch)


def _fit_phases_in_scope(config, run, splits, target_mean, target_std, dist, epoch):
    model, preprocessing = build_model(config, target_mean, target_std)
    recompile(model, config, config.lr, target_mean, target_std)
    common = dataset_options(config, target_mean, target_std)
    probe = None
    if dist.num_processes == 1:
        probe = validation_probe(model, splits["val"].table.head(64), clahe=config.use_clahe_val_test, **common)
    sharded = common | {
        "batch_size": dist.per_process_batch(config.batch_size),
        "num_shards": dist.num_processes,
        "shard_index": dist.process_id,
        "drop_remainder": dist.kind == "data_parallel",  # every batch splits evenly over the devices
    }
    try:
        train_ds = make_dataset(
            splits["train"].table, **training_options(config), **sharded, epoch=epoch, cache=cache_option(run, "train")
        )
        val_ds = make_dataset(
            splits["val"].table,
            clahe=config.use_clahe_val_test,
            cache=cache_option(run, "val"),
            **(sharded | {"batch_size": dist.per_process_batch(config.split_batch_size("val"))}),
        )
    except ValueError as error:
        raise DataError(str(error)) from None
    fit = functools.partial(
        model.fit, train_ds, validation_data=val_ds, shuffle=False, verbose=1 if sys.stdout.isatty() else 2
    )

    best_so_far = best_checkpoint_loss(run, val_ds)
    if config.epochs_frozen and not run.phase_weights["phase1"].exists():
        print(f"Phase 1: {config.epochs_frozen} epochs with the backbone frozen")
        callbacks = standard_callbacks(config, run, model, "phase1", best_so_far, probe, DataEpoch(epoch))
        fit(epochs=config.epochs_frozen, callbacks=callbacks)
        model.save_weights(run.phase_weights["phase1"])
        best_so_far = best_checkpoint_loss(run, val_ds)
    elif config.epochs_frozen:
        print(f"Phase 1 already finished: loading {run.phase_weights['phase1']}")
        model.load_weights(run.phase_weights["phase1"])

    if config.fine_tune and config.epochs_finetune and run.phase_weights["phase2"].exists():
        print(f"Phase 2 already finished ({run.phase_weights['phase2']}): evaluating")
    elif config.fine_tune and config.epochs_finetune:
        learning_rate = config.lr * (1.0 if config.use_cyclical_lr else config.finetune_lr_factor)
        freezer = None
        if config.unfreeze_schedule:
            schedule = parse_unfreeze_schedule(config.unfreeze_schedule)
            freezer = BackboneFreezer(
                schedule, config.backbone_lr_multiplier, freeze_batchnorm=config.bn_momentum is None, verbose=1
            )
            unfrozen = f"backbone unfrozen on the schedule {schedule}"
        else:
            n_layers = 10**6 if config.unfreeze_layers < 0 else config.unfreeze_layers
            trainable = unfreeze_backbone_layers(model, n_layers=n_layers, freeze_batchnorm=config.bn_momentum is None)
            unfrozen = f"{trainable} backbone weight tensors trainable"
        recompile(model, config, learning_rate, target_mean, target_std)
        data_epoch = DataEpoch(epoch, offset=config.epochs_frozen)
        callbacks = standard_callbacks(config, run, model, "phase2", best_so_far, probe, data_epoch, freezer)
        print(f"Phase 2: {config.epochs_finetune} epochs, {unfrozen}, lr {learning_rate:g}")
        fit(epochs=config.epochs_finetune, callbacks=callbacks)
        model.save_weights(run.phase_weights["phase2"])
    return preprocessing


def cache_option(run, split):
    """`make_dataset`'s ``cache`` for ``split`` under the run's ``--cache``."""
    if run.config.cache == "disk":
        folder = run.cache
        for stale in folder.glob(f"{split}*.lockfile"):  # left by a killed run: tf.data would refuse the cache
            stale.unlink()
        return str(folder / split)
    return run.config.cache == "memory"


def read_training_log(run_dir):
    """Every epoch of a run, both phases and any restarts, as one DataFrame with a ``phase`` column.

    Each phase has its own CSV log because the phases may log different columns.
    """
    parts = [
        pd.read_csv(path).assign(phase=path.stem.rsplit("_", 1)[-1])
        for path in sorted(Path(run_dir).glob("training_log_phase*.csv"))
    ]
    return pd.concat(parts, ignore_index=True)


def best_checkpoint_loss(run, val_ds):
    """Validation loss of the saved best checkpoint (``None`` before there is one), so a resumed
    or second phase only replaces it with a better model."""
    if not run.checkpoint.exists():
        return None
    return float(keras.saving.load_model(run.checkpoint).evaluate(val_ds, verbose=0, return_dict=True)["loss"])


def evaluate_and_report(config, run, inference_model, splits, target_mean, target_std):
    """Metrics in months on validation and test (with TTA if asked), prediction CSVs and plots."""
    results = {f"n_{name}": int(len(split.table)) for name, split in splits.items()}
    results["skipped_rows"] = {name: split.report.as_dict()["skipped"] for name, split in splits.items()}
    common = dataset_options(config, target_mean, target_std)
    for name in ("val", "test"):
        table = splits[name].table
        common["batch_size"] = config.split_batch_size(name)
        dataset = make_dataset(table, **common)  # CLAHE, if used, is inside the exported model
        predicted = inference_model.predict(dataset, verbose=0)[:, 0]
        results.update(regression_metrics(table["boneage"], predicted, table["male"], prefix=f"{name}_"))
        predicted_tta = None
        if config.use_tta:
            # n views of every image go through the model together: keep that pass near one batch
            small_batches = make_dataset(
                table, **(common | {"batch_size": max(1, common["batch_size"] // config.tta_steps)})
            )
            predicted_tta = predict_tta(inference_model, small_batches, n=config.tta_steps, seed=config.seed)[:, 0]
            metrics = regression_metrics(table["boneage"], predicted_tta, table["male"], prefix=f"{name}_")
            results.update({f"{key}_tta": value for key, value in metrics.items() if key != f"{name}_n"})
        write_csv(run.predictions(name), predictions_table(table, predicted, predicted_tta))
        for figure, kind in zip(
            agreement_figures(table["boneage"], predicted, name), ("predicted_vs_true", "bland_altman"), strict=False
        ):
            figure.savefig(run.plots / f"{name}_{kind}.png", dpi=100)
    log = read_training_log(run.dir)
    for figure, kind in zip(plot_history(log.to_dict(orient="list")), ("mae", "loss"), strict=False):
        figure.savefig(run.plots / f"learning_curve_{kind}.png", dpi=100)
    results["epochs_trained"] = int(len(log))
    # the original's keys: best validation MAE in z-units over all epochs (1-based), test MAE in z-units
    best = int(log["val_mae"].to_numpy().argmin())
    results["best_val_mae"] = float(log["val_mae"].iloc[best])
    results["best_val_epoch"] = best + 1
    results["best_val_mae_months"] = results["best_val_mae"] * target_std
    floor = phantom_error_floor(config, "test")
    for key in [key for key in results if key.startswith("test_mae_months")]:
        results[key.replace("months", "zscore")] = results[key] / target_std
        if floor:  # on a phantom: how far from the best possible reader
            results[key.replace("months", "to_floor")] = results[key] / floor
    if floor:
        results["test_error_floor_mae_months"] = floor
    return results


def main(argv=None):
    """Console entry point: `run` without returning its result (a non-None return is an exit status)."""
    run(argv)


if __name__ == "__main__":
    main()

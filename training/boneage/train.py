"""Train a bone-age model: ``python -m training.train_boneage [flags]`` (console script ``train-boneage``).

With no flags it builds the synthetic phantom dataset once (``data/phantom``), trains
``attn_sex_model_improved`` with a CPU preset and writes everything to ``runs/boneage_cpu``.
``--preset original`` restores the original's settings (Xception, ImageNet weights, 500 px, ...)
for real data on a GPU. Training runs in two phases, backbone frozen then fine-tuning, and a run
killed part-way resumes where it stopped when the same command is started again.

Outputs in ``--output_dir``: ``best.keras`` (raw pixels + sex -> months; carries image size,
preprocessing, CLAHE and the target statistics), ``checkpoint.keras`` (the best z-score model),
``results.json``, ``predictions_val.csv``, ``predictions_test.csv``, ``training_log_phase{1,2}.csv``,
TensorBoard logs, and plots (learning curves, predicted vs true, Bland-Altman, attention maps,
gate weights).
"""

import argparse
import functools
import json
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from callbacks import CLR_MODES, AttentionMapLogger, BackboneFreezer, CyclicalLearningRate, GateWeightLogger
from modeling import create_model, list_models
from modeling.backbones import BACKBONE_MAP, BACKBONE_PREPROCESSING, unfreeze_backbone_layers
from modeling.boneage import optimizer, plot_history
from modeling.inference import predict_tta
from modeling.layers import Denormalization
from modeling.losses import LOSS_NAMES, get_loss_function
from modeling.metrics import MAEMonths
from training.boneage.data_sources import add_data_arguments, load_splits, use_default_phantom
from training.distribution import (
    DISTRIBUTE_CHOICES,
    check_distribute_flags,
    dtype_policy,
    make_distribution,
    mixed_precision_policy,
)
from training.boneage.pipeline import make_dataset
from training.data.augmentation import Augmentation
from training.boneage.evaluation import agreement_figures, predictions_table, regression_metrics
from training.results import to_builtin, write_csv, write_json
from training.data.tables import DataError

SYSTEM = "boneage"
# The registry's bone-age models without their system prefix: the --model_type choices.
MODEL_TYPES = [name.split("/", 1)[1] for name in list_models(SYSTEM)]

PRESETS = {
    # Fits in about 10 minutes on 2 CPU cores: MobileNetV2 trained from scratch on 96 px phantoms.
    "cpu": {
        "backbone": "mobilenet_v2",
        "model_type": "attn_sex_improved",
        "weights": "none",
        "img_size": 96,
        "batch_size": 32,
        "lr": 1e-3,
        "dropout_rate": 0.2,
        "dense_units": 64,
        "gender_units": 16,
        "epochs_frozen": 0,
        "epochs_finetune": 24,
        "fine_tune": True,
        "unfreeze_layers": -1,
        "finetune_lr_factor": 1.0,
        "bn_momentum": 0.9,
        "phantom_n_train": 1200,
        "phantom_n_val": 200,
        "phantom_n_test": 300,
        "use_tta": True,
        "tta_steps": 8,
        "output_dir": "runs/boneage_cpu",
    },
    # The original scripts' defaults (train_advanced_FIXED_enhanced.py) for real data on a GPU.
    "original": {
        "backbone": "xception",
        "model_type": "baseline",
        "weights": "imagenet",
        "img_size": 500,
        "batch_size": 64,
        "lr": 1e-4,
        "dropout_rate": 0.5,
        "dense_units": 500,
        "gender_units": 32,
        "epochs_frozen": 5,
        "epochs_finetune": 10,
        "fine_tune": False,
        "unfreeze_layers": 2,
        "finetune_lr_factor": 0.1,
        "use_clahe_val_test": True,
        "preprocessing": "original",
        "interpolation": "nearest",
        "augment_brightness": 0.0,
        "augment_contrast": 0.0,
        "output_dir": "runs/boneage_original",
    },
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="train-boneage", description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="defaults that other flags override")
    model = parser.add_argument_group("model")
    model.add_argument("--model_type", choices=MODEL_TYPES)
    model.add_argument("--backbone", choices=sorted(BACKBONE_MAP))
    model.add_argument("--weights", help="imagenet, none, or a path to a local backbone weights file")
    model.add_argument("--activation", default="tanh", help="hidden activation of the baseline model")
    model.add_argument("--dropout_rate", type=float)
    model.add_argument("--dense_units", type=int)
    model.add_argument("--gender_units", type=int)
    model.add_argument("--img_size", type=int)
    model.add_argument(
        "--preprocessing",
        choices=("backbone", "original"),
        default="backbone",
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
    train.add_argument("--batch_size", type=int)
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
    train.add_argument("--backbone_lr_multiplier", type=float, default=1.0, help="with --unfreeze_schedule: backbone LR factor")
    train.add_argument("--loss_type", choices=LOSS_NAMES, default="mae")
    train.add_argument("--huber_delta", type=float, default=1.0)
    train.add_argument("--smooth_l1_sigma", type=float, default=1.0)
    train.add_argument("--wing_w", type=float, default=10.0)
    train.add_argument("--wing_epsilon", type=float, default=2.0)
    train.add_argument("--use_cyclical_lr", action="store_true", help="cyclical LR instead of ReduceLROnPlateau")
    train.add_argument("--clr_max_lr", type=float, help="peak of the cycle (default: 10 x --lr)")
    train.add_argument("--clr_step_size", type=int, default=2000, help="iterations per half cycle")
    train.add_argument("--clr_mode", choices=CLR_MODES, default="triangular")
    train.add_argument("--clr_gamma", type=float, default=1.0)
    train.add_argument("--early_stopping_patience", type=int, default=0, help="0 disables early stopping")
    train.add_argument("--seed", type=int, default=42)

    data = add_data_arguments(parser)
    data.add_argument("--use_clahe_val_test", action=argparse.BooleanOptionalAction, help="CLAHE on validation and test images")
    data.add_argument("--interpolation", choices=("bilinear", "nearest", "area", "bicubic"), default="bilinear")
    data.add_argument("--label_noise_std", type=float, default=0.0, help="Gaussian noise on z-score targets")
    data.add_argument("--mixup_alpha", type=float, default=0.0)
    data.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True, help="random flips, rotations, shifts, zooms, brightness, contrast")
    data.add_argument("--augment_brightness", type=float, default=0.2)
    data.add_argument("--augment_contrast", type=float, default=0.2)
    data.add_argument("--phantom_n_train", type=int, default=1200)
    data.add_argument("--phantom_n_val", type=int, default=200)
    data.add_argument("--phantom_n_test", type=int, default=300)

    evaluation = parser.add_argument_group("evaluation and output")
    evaluation.add_argument("--use_tta", action=argparse.BooleanOptionalAction)
    evaluation.add_argument("--tta_steps", type=int, default=8)
    evaluation.add_argument("--output_dir")
    evaluation.add_argument("--overwrite", action="store_true", help="replace a finished run in --output_dir")
    evaluation.add_argument("--attention_every", type=int, default=5, help="save attention overlays every N epochs")

    scale = parser.add_argument_group("scale and speed")
    scale.add_argument(
        "--distribute", choices=DISTRIBUTE_CHOICES, default="none",
        help="mirrored: tf.distribute.MirroredStrategy over local devices (TensorFlow); "
        "data_parallel: keras.distribution.DataParallel over every device of every process (JAX)",
    )
    scale.add_argument("--coordinator", help="data_parallel with several processes: HOST:PORT of process 0")
    scale.add_argument("--num_processes", type=int, default=1, help="data_parallel: processes taking part (same flags)")
    scale.add_argument("--process_id", type=int, default=0, help="data_parallel: this process's index; 0 evaluates and reports")
    scale.add_argument("--mixed_precision", action="store_true", help="bfloat16 on CPU, float16 on GPU; float32 outputs and losses")
    scale.add_argument("--jit_compile", choices=("auto", "on", "off"), default="auto", help="XLA compilation of the train step")
    return parser


def parse_args(argv=None):
    """Parse flags; unset flags take the preset's value, then the parser default."""
    parser = build_parser()
    preset_name = parser.parse_known_args(argv)[0].preset
    parser.set_defaults(**PRESETS[preset_name])
    args = parser.parse_args(argv)
    _validate(parser, args)
    return args


def _validate(parser, args):
    positive = ("img_size", "batch_size", "dense_units", "gender_units", "tta_steps", "clr_step_size")
    for name in positive:
        if getattr(args, name) is None or getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer; got {getattr(args, name)}")
    if not args.lr or args.lr <= 0:
        parser.error(f"--lr must be positive; got {args.lr}")
    if args.epochs_frozen < 0 or args.epochs_finetune < 0:
        parser.error("--epochs_frozen and --epochs_finetune must be >= 0")
    if args.epochs_frozen + (args.epochs_finetune if args.fine_tune else 0) == 0:
        parser.error("nothing to train: set --epochs_frozen, or --fine_tune with --epochs_finetune")
    if not 0 <= args.dropout_rate < 1:
        parser.error(f"--dropout_rate must be in [0, 1); got {args.dropout_rate}")
    if args.use_cyclical_lr:
        args.clr_max_lr = args.clr_max_lr if args.clr_max_lr is not None else 10 * args.lr
        if args.clr_max_lr <= args.lr:
            parser.error(f"--clr_max_lr ({args.clr_max_lr}) must exceed --lr ({args.lr}), else the cycle is flat")
    if args.unfreeze_schedule:
        try:
            BackboneFreezer(parse_unfreeze_schedule(args.unfreeze_schedule), args.backbone_lr_multiplier)
        except ValueError as error:
            parser.error(str(error))
    if args.unfreeze_schedule and args.distribute != "none":
        parser.error(f"--unfreeze_schedule cannot be combined with --distribute {args.distribute} (its optimizer rebuild is not distributed)")
    if args.backbone_lr_multiplier != 1.0 and not args.unfreeze_schedule:
        parser.error("--backbone_lr_multiplier works with --unfreeze_schedule only")
    distribute_problem = check_distribute_flags(args.distribute, args.coordinator, args.num_processes, args.process_id)
    if distribute_problem:
        parser.error(distribute_problem)
    if args.label_noise_std < 0 or args.mixup_alpha < 0:
        parser.error("--label_noise_std and --mixup_alpha must be >= 0")
    args.weights = None if str(args.weights).lower() == "none" else args.weights


# Flags that may differ when a killed run is started again (they do not change what is trained).
_RESUME_INDEPENDENT = {"overwrite", "output_dir", "attention_every", "use_tta", "tta_steps", "coordinator"}
# Processes other than 0 of a multi-process run keep their checkpoints and logs in OUTPUT_DIR/process_<i>.
WORKER_DIR_PREFIX = "process_"


class Run:
    """The files of one run and what survives a restart (phase weights, configuration)."""

    def __init__(self, output_dir, overwrite, config):
        self.dir = Path(output_dir)
        self.results = self.dir / "results.json"
        if self.results.exists():
            if not overwrite:
                raise SystemExit(
                    f"{self.dir} already holds a finished run ({self.results}). "
                    "Choose another --output_dir or pass --overwrite."
                )
            for child in self.dir.iterdir():  # other processes' folders (process_*) are theirs to clear
                if not child.name.startswith(WORKER_DIR_PREFIX):
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self.dir / "checkpoint.keras"
        self.best = self.dir / "best.keras"
        self.phase_weights = {phase: self.dir / f"{phase}_final.weights.h5" for phase in ("phase1", "phase2")}
        self.plots = self.dir / "plots"
        self.plots.mkdir(exist_ok=True)
        self._check_same_config(config)

    def _check_same_config(self, config):
        """Refuse to resume a run that was started with other training settings."""
        path = self.dir / "run_config.json"
        current = {key: value for key, value in config.items() if key not in _RESUME_INDEPENDENT}
        if path.exists():
            previous = json.loads(path.read_text())
            changed = sorted(key for key in set(previous) | set(current) if previous.get(key) != current.get(key))
            if changed:
                raise SystemExit(
                    f"{self.dir} holds an unfinished run started with other settings ({', '.join(changed)}). "
                    "Start it again with the same flags to resume, or choose another --output_dir."
                )
        else:
            write_json(path, current)

    def backup_dir(self, phase):
        return self.dir / "backup" / phase


def build_model(args, target_mean, target_std):
    preprocessing = "tf" if args.preprocessing == "original" else BACKBONE_PREPROCESSING[args.backbone]
    kwargs = dict(
        img_dims=(args.img_size, args.img_size, 3),
        optim=optimizer(args.lr, 0.9, 0.999, 1e-7, 0.0),
        metric=["mae", MAEMonths(target_mean, target_std)],
        backbone=args.backbone,
        weights=args.weights,
        dropout_rate=args.dropout_rate,
        dense_units=args.dense_units,
        loss=loss_from_args(args),
        preprocessing=preprocessing,
    )
    if args.model_type == "baseline":
        kwargs["activation"] = args.activation
    if args.model_type in ("sex", "attn_sex", "attn_sex_improved"):
        kwargs["gender_units"] = args.gender_units
    model = create_model(f"{SYSTEM}/{args.model_type}", **kwargs)
    if args.bn_momentum is not None:
        for layer in model.get_layer("backbone").layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = args.bn_momentum
    return model, preprocessing


def parse_unfreeze_schedule(text):
    """``"20:0.5,40:1.0"`` -> ``{20: 0.5, 40: 1.0}`` (a float is a fraction, an int a layer count)."""
    schedule = {}
    for item in text.split(","):
        epoch, _, amount = item.partition(":")
        try:
            schedule[int(epoch)] = float(amount) if "." in amount else int(amount)
        except ValueError:
            raise ValueError(f"--unfreeze_schedule item {item!r} is not EPOCH:AMOUNT (e.g. 20:0.5)") from None
    return schedule


def loss_from_args(args):
    return get_loss_function(
        args.loss_type,
        huber_delta=args.huber_delta,
        smooth_l1_sigma=args.smooth_l1_sigma,
        wing_w=args.wing_w,
        wing_epsilon=args.wing_epsilon,
    )


def recompile(model, args, learning_rate, target_mean, target_std):
    """Compile with the original's Adam (clipnorm 1), the chosen loss and MAE in z-units and months."""
    model.compile(
        optimizer=optimizer(learning_rate, 0.9, 0.999, 1e-7, 0.0),
        loss=loss_from_args(args),
        metrics=["mae", MAEMonths(target_mean, target_std)],
        jit_compile={"auto": "auto", "on": True, "off": False}[args.jit_compile],
    )


def standard_callbacks(args, run, model, phase, monitor_best, probe):
    """Checkpointing, logging, LR control and the interpretability loggers for one phase.

    ``probe`` is ``None`` when the loggers cannot run (their predictions would span processes).
    """
    callbacks = []
    if probe is not None and _has_layer(model, "fusion_gate"):
        callbacks.append(GateWeightLogger(probe, run.plots / phase, log_dir=run.dir / "tensorboard" / phase))
    if probe is not None and _has_layer(model, "attention_map"):
        first_images = {name: value[:4] for name, value in probe.items()}
        callbacks.append(AttentionMapLogger(first_images, run.plots / "attention" / phase, every=args.attention_every))
    callbacks += [
        keras.callbacks.BackupAndRestore(run.backup_dir(phase)),
        keras.callbacks.ModelCheckpoint(
            run.checkpoint, monitor="val_loss", mode="min", save_best_only=True, initial_value_threshold=monitor_best
        ),
        keras.callbacks.CSVLogger(run.dir / f"training_log_{phase}.csv", append=True),
        keras.callbacks.TensorBoard(run.dir / "tensorboard" / phase),
        keras.callbacks.TerminateOnNaN(),
    ]
    if args.use_cyclical_lr:
        callbacks.append(
            CyclicalLearningRate(args.lr, args.clr_max_lr, args.clr_step_size, args.clr_mode, args.clr_gamma)
        )
    else:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.8, patience=5, min_delta=1e-4, cooldown=5, min_lr=1e-6, verbose=1
            )
        )
    if args.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.early_stopping_patience, restore_best_weights=False)
        )
    return callbacks


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
    """Raw pixels and sex in, months out; CLAHE inside when validation/test images used it.

    The first layer, ``"resize"``, is an identity at the model's size that records the resize
    method training used, so prediction resizes images the same way.
    """
    image = keras.Input(checkpoint_model.inputs[0].shape[1:], name="image")
    inputs = [image] + [keras.Input(i.shape[1:], name=i.name) for i in checkpoint_model.inputs[1:]]
    height, width = image.shape[1:3]
    x = keras.layers.Resizing(height, width, interpolation=interpolation, name="resize")(image)
    if clahe:
        x = keras.layers.ContrastLimitedAdaptiveHistogramEqualization(
            value_range=(0, 255), clip_limit=2.0, tile_grid_size=(8, 8), name="clahe"
        )(x)
    z = checkpoint_model([x, *inputs[1:]] if len(inputs) > 1 else x)
    months = Denormalization(target_mean, target_std, dtype="float32", name="boneage_months")(z)
    return keras.Model(inputs if len(inputs) > 1 else image, months, name=f"{checkpoint_model.name}_months")


def run(argv=None):
    """Train, evaluate and write the outputs; returns the results dictionary."""
    args = parse_args(argv)
    started = time.time()
    try:  # first: joining other processes must precede any other use of the devices
        dist = make_distribution(args.distribute, args.batch_size, args.coordinator, args.num_processes, args.process_id)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    keras.utils.set_random_seed(args.seed)
    output_dir = Path(args.output_dir)
    if not dist.is_chief:
        output_dir = output_dir / f"{WORKER_DIR_PREFIX}{dist.process_id}"
    run_files = Run(output_dir, args.overwrite, to_builtin(vars(args)))
    splits, target_mean, target_std = prepare_data(args, dist)
    policy = mixed_precision_policy() if args.mixed_precision else None
    facts = {
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "distribute": args.distribute,
        "replicas": dist.replicas,
        "num_processes": dist.num_processes,
        "process_id": dist.process_id,
        "mixed_precision": policy,
        "jit_compile": args.jit_compile,
    }
    with dtype_policy(policy):
        preprocessing = train(args, run_files, splits, target_mean, target_std, dist)
        if not dist.is_chief:  # process 0 evaluates and reports for the whole run
            worker = facts | {"epochs_trained": int(len(read_training_log(run_files.dir))), "wall_seconds": round(time.time() - started, 1)}
            write_json(run_files.results, worker)
            print(f"Process {dist.process_id}: training finished; process 0 evaluates and writes {args.output_dir}/results.json")
            return worker
        checkpoint_model = keras.saving.load_model(run_files.checkpoint, safe_mode=True)
        inference_model = export_inference_model(
            checkpoint_model, target_mean, target_std, bool(args.use_clahe_val_test), args.interpolation
        )
        inference_model.save(run_files.best)
    results = evaluate_and_report(args, run_files, inference_model, splits, target_mean, target_std)
    results.update(
        {
            "config": {key: value for key, value in vars(args).items()},
            "preprocessing": preprocessing,
            "target_mean_months": target_mean,
            "target_std_months": target_std,
            **facts,
            "wall_seconds": round(time.time() - started, 1),
        }
    )
    write_json(run_files.results, results)
    summary = {key: results[key] for key in ("val_mae_months", "test_mae_months", "test_mae_months_tta", "test_correlation", "wall_seconds") if key in results}
    print("\nSummary:", ", ".join(f"{k} = {v:.3f}" if isinstance(v, float) else f"{k} = {v}" for k, v in summary.items()))
    print(f"Results: {run_files.results}\nModel for prediction: {run_files.best}\nPlots: {run_files.plots}")
    return results


def dataset_options(args, target_mean, target_std):
    """`make_dataset` arguments every split shares."""
    return dict(
        img_size=args.img_size,
        batch_size=args.batch_size,
        target_mean=target_mean,
        target_std=target_std,
        interpolation=args.interpolation,
        seed=args.seed,
    )


def training_options(args):
    """`make_dataset` arguments of the training split: augmentation, mixup, label noise."""
    return dict(
        training=True,
        augmentation=Augmentation(brightness=args.augment_brightness, contrast=args.augment_contrast) if args.augment else None,
        mixup_alpha=args.mixup_alpha,
        label_noise_std=args.label_noise_std,
    )


def prepare_data(args, dist):
    """The checked splits (building the phantom first when no data is given) and target statistics."""
    use_default_phantom(args, builder=dist.is_chief)
    try:
        splits = load_splits(args)
    except DataError as error:
        raise SystemExit(f"Data error: {error}") from None
    for split in splits.values():
        print(f"{split.name}: {split.report.rows_kept} images from {split.csv} (skipped: {split.report.as_dict()['skipped']})")
    ages = splits["train"].table["boneage"]
    return splits, float(ages.mean()), float(ages.std(ddof=1))


def train(args, run, splits, target_mean, target_std, dist):
    """Phase 1 (backbone frozen) and phase 2 (fine-tuning), resuming what a killed run left.

    Everything runs in the distribution's scope; each process reads its own shard of the data.
    """
    with dist.scope():
        return _train_in_scope(args, run, splits, target_mean, target_std, dist)


def _train_in_scope(args, run, splits, target_mean, target_std, dist):
    model, preprocessing = build_model(args, target_mean, target_std)
    recompile(model, args, args.lr, target_mean, target_std)
    common = dataset_options(args, target_mean, target_std)
    probe = None
    if dist.num_processes == 1:
        probe = validation_probe(model, splits["val"].table.head(64), clahe=bool(args.use_clahe_val_test), **common)
    sharded = common | {
        "batch_size": dist.per_process_batch(args.batch_size),
        "num_shards": dist.num_processes,
        "shard_index": dist.process_id,
        "drop_remainder": dist.kind == "data_parallel",  # every batch splits evenly over the devices
    }
    try:
        train_ds = make_dataset(splits["train"].table, **training_options(args), **sharded)
        val_ds = make_dataset(splits["val"].table, clahe=bool(args.use_clahe_val_test), **sharded)
    except ValueError as error:
        raise SystemExit(f"Data error: {error}") from None
    fit = functools.partial(
        model.fit, train_ds, validation_data=val_ds, shuffle=False, verbose=1 if sys.stdout.isatty() else 2
    )

    best_so_far = best_checkpoint_loss(run, val_ds)
    if args.epochs_frozen and not run.phase_weights["phase1"].exists():
        print(f"Phase 1: {args.epochs_frozen} epochs with the backbone frozen")
        fit(epochs=args.epochs_frozen, callbacks=standard_callbacks(args, run, model, "phase1", best_so_far, probe))
        model.save_weights(run.phase_weights["phase1"])
        best_so_far = best_checkpoint_loss(run, val_ds)
    elif args.epochs_frozen:
        print(f"Phase 1 already finished: loading {run.phase_weights['phase1']}")
        model.load_weights(run.phase_weights["phase1"])

    if args.fine_tune and args.epochs_finetune and run.phase_weights["phase2"].exists():
        print(f"Phase 2 already finished ({run.phase_weights['phase2']}): evaluating")
    elif args.fine_tune and args.epochs_finetune:
        learning_rate = args.lr * (1.0 if args.use_cyclical_lr else args.finetune_lr_factor)
        callbacks = standard_callbacks(args, run, model, "phase2", best_so_far, probe)
        if args.unfreeze_schedule:
            schedule = parse_unfreeze_schedule(args.unfreeze_schedule)
            callbacks.insert(0, BackboneFreezer(schedule, args.backbone_lr_multiplier, freeze_batchnorm=args.bn_momentum is None, verbose=1))
            unfrozen = f"backbone unfrozen on the schedule {schedule}"
        else:
            n_layers = 10**6 if args.unfreeze_layers < 0 else args.unfreeze_layers
            trainable = unfreeze_backbone_layers(model, n_layers=n_layers, freeze_batchnorm=args.bn_momentum is None)
            unfrozen = f"{trainable} backbone weight tensors trainable"
        recompile(model, args, learning_rate, target_mean, target_std)
        print(f"Phase 2: {args.epochs_finetune} epochs, {unfrozen}, lr {learning_rate:g}")
        fit(epochs=args.epochs_finetune, callbacks=callbacks)
        model.save_weights(run.phase_weights["phase2"])
    return preprocessing


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


def evaluate_and_report(args, run, inference_model, splits, target_mean, target_std):
    """Metrics in months on validation and test (with TTA if asked), prediction CSVs and plots."""
    results = {f"n_{name}": int(len(split.table)) for name, split in splits.items()}
    results["skipped_rows"] = {name: split.report.as_dict()["skipped"] for name, split in splits.items()}
    common = dataset_options(args, target_mean, target_std)
    for name in ("val", "test"):
        table = splits[name].table
        dataset = make_dataset(table, **common)  # CLAHE, if used, is inside the exported model
        predicted = inference_model.predict(dataset, verbose=0)[:, 0]
        results.update(regression_metrics(table["boneage"], predicted, table["male"], prefix=f"{name}_"))
        predicted_tta = None
        if args.use_tta:
            # n views of every image go through the model together: keep that pass near one batch
            small_batches = make_dataset(table, **(common | {"batch_size": max(1, args.batch_size // args.tta_steps)}))
            predicted_tta = predict_tta(inference_model, small_batches, n=args.tta_steps, seed=args.seed)[:, 0]
            metrics = regression_metrics(table["boneage"], predicted_tta, table["male"], prefix=f"{name}_")
            results.update({f"{key}_tta": value for key, value in metrics.items() if key != f"{name}_n"})
        write_csv(run.dir / f"predictions_{name}.csv", predictions_table(table, predicted, predicted_tta))
        for figure, kind in zip(agreement_figures(table["boneage"], predicted, name), ("predicted_vs_true", "bland_altman")):
            figure.savefig(run.plots / f"{name}_{kind}.png", dpi=100)
    log = read_training_log(run.dir)
    for figure, kind in zip(plot_history(log.to_dict(orient="list")), ("mae", "loss")):
        figure.savefig(run.plots / f"learning_curve_{kind}.png", dpi=100)
    results["epochs_trained"] = int(len(log))
    return results


def main(argv=None):
    """Console entry point: `run` without returning its result (a non-None return is an exit status)."""
    run(argv)


if __name__ == "__main__":
    main()

"""Train a DRR-guided nodule-segmentation model: `train(config)`, and the command
``python -m training.nodule_segmentation.train [flags]`` (console script ``train-nodule-segmentation``).

With no flags it writes the embedded synthetic DRR dataset once (``data/nodule_phantom``), trains
the supervised-attention model with the CPU preset and writes everything to
``runs/nodule_segmentation_cpu``; ``--preset original`` restores the original's settings (512 px,
batch 2, 150 epochs) for real data (``--data_dir``). A run killed part-way resumes where it stopped
when the same command is started again.

Training follows the original: AdamW with three learning-rate groups (backbone 0.1x, attention 2x,
the rest 1x), gradient clipping at global norm 1.0, the `ImprovedCombinedLoss` with its dynamic
attention weight, validation every ``--val_every`` epochs with ReduceLROnPlateau (0.5, patience 15,
min 1e-7) and early stopping counted in validations, and the best model chosen by validation Dice.

Outputs in ``--output_dir``: ``best.keras``, ``results.json`` (validation and test metrics and
alignment figures), ``cases_{val,test}.csv`` (per case), ``training_log.csv``, TensorBoard logs,
``plots/overlays_{val,test}.png`` and ``run_manifest.json``.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import keras
import pandas as pd

from callbacks import AttentionWeightSchedule
from modeling import create_model
from modeling.losses import ImprovedCombinedLoss
from modeling.losses.segmentation import ALIGNMENTS
from modeling.metrics import segmentation_metrics
from modeling.nodule_segmentation.layers import POOLINGS
from modeling.nodule_segmentation.models import RESNET_LAST_STAGE
from modeling.nodule_segmentation.optimizers import GroupedAdamW
from training.cli import (
    ConfigError,
    add_preset_and_verbose_arguments,
    add_scale_out_arguments,
    annotate_presets,
    exit_on_user_errors,
    parse_config,
)
from training.distribution import dtype_policy, mixed_precision_policy
from training.nodule_segmentation.analysis import analyze, overlay_grid
from training.nodule_segmentation.config import (
    MODEL_TYPES,
    PRESETS,
    RESUME_INDEPENDENT,
    NoduleSegmentationConfig,
)
from training.nodule_segmentation.data import ORIGINAL_AUGMENTATION, find_pairs, make_dataset, split_pairs
from training.nodule_segmentation.phantom import write_phantom
from training.results import write_csv, write_json
from training.run_directory import RunDirectory

COMMAND = "train-nodule-segmentation"
SYSTEM = "nodule_segmentation"
MONITOR = "val_segmentation_dice"


def build_parser():
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_preset_and_verbose_arguments(parser, PRESETS)
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model_type",
        choices=MODEL_TYPES,
        help="improved: supervised attention; anatomical, lightweight: the original's unsupervised models",
    )
    model.add_argument("--backbone", help="a keras.applications name (original: ResNet-50)")
    model.add_argument("--weights", help="backbone weights: none, imagenet or a local file")
    model.add_argument("--img_size", type=int, help="square model size, a multiple of 32")
    model.add_argument(
        "--alpha", type=float, help="attention modulation strength (original: 0.3 improved, 0.1 lightweight)"
    )
    model.add_argument(
        "--attention_pooling",
        choices=POOLINGS,
        help="how the attention map reaches the 1/32 feature grid (original: bilinear point sampling)",
    )
    model.add_argument(
        "--detach_fused_attention",
        action=argparse.BooleanOptionalAction,
        help="the segmentation loss does not move the supervised attention through the fusion (improved model only)",
    )
    model.add_argument("--anatomical_upsampling", choices=("exact", "conv_first"))
    model.add_argument("--nodule_branch", choices=("fallback", "pathology"))
    model.add_argument(
        "--train_whole_backbone",
        action=argparse.BooleanOptionalAction,
        help="train every backbone stage, not only the last",
    )
    loss = parser.add_argument_group("loss")
    for name in ("seg_weight", "attention_weight", "dice_weight", "bce_weight", "alignment_weight"):
        loss.add_argument(f"--{name}", type=float)
    loss.add_argument(
        "--alignment",
        choices=ALIGNMENTS,
        help="attention-segmentation alignment term: mse (the original) or 1 - Pearson correlation",
    )
    loss.add_argument(
        "--use_focal_loss", action=argparse.BooleanOptionalAction, help="focal loss on logits instead of BCE"
    )
    loss.add_argument(
        "--align_supervised_attention",
        action=argparse.BooleanOptionalAction,
        help="the alignment MSE also moves the supervised attention (the original); no: only the segmentation",
    )
    train_group = parser.add_argument_group("training")
    for name, kind in (("epochs", int), ("batch_size", int), ("lr", float), ("weight_decay", float)):
        train_group.add_argument(f"--{name}", type=kind)
    train_group.add_argument("--backbone_lr_factor", type=float, help="learning-rate factor of the backbone")
    train_group.add_argument("--attention_lr_factor", type=float, help="learning-rate factor of the attention layers")
    train_group.add_argument("--clip_norm", type=float, help="global gradient-norm clipping")
    train_group.add_argument(
        "--val_every", type=int, help="validate every N epochs (the scheduler and early stopping count validations)"
    )
    train_group.add_argument("--lr_patience", type=int, help="ReduceLROnPlateau patience, in validations")
    train_group.add_argument("--lr_factor", type=float)
    train_group.add_argument("--min_lr", type=float)
    train_group.add_argument("--early_stopping_patience", type=int, help="in validations; 0 disables")
    train_group.add_argument(
        "--time_budget_minutes", type=float, help="stop training after this many minutes; 0: no limit"
    )
    train_group.add_argument("--seed", type=int)
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data_dir", help="folder of <id>_drr.png / <id>_drr_mask.png pairs (default: the embedded phantom)"
    )
    data.add_argument("--val_fraction", type=float)
    data.add_argument("--test_fraction", type=float)
    data.add_argument("--train_list", help="file of training case ids (instead of the seeded split)")
    data.add_argument("--val_list")
    data.add_argument("--test_list")
    data.add_argument("--on_bad_pairs", choices=("raise", "skip"))
    data.add_argument("--skip_empty_masks", action=argparse.BooleanOptionalAction)
    data.add_argument("--augment", action=argparse.BooleanOptionalAction)
    data.add_argument("--phantom_dir")
    data.add_argument("--phantom_n_cases", type=int)
    data.add_argument("--phantom_size", type=int)
    output = parser.add_argument_group("output")
    output.add_argument("--output_dir")
    output.add_argument("--overwrite", action="store_true", help="replace a finished run in --output_dir")
    add_scale_out_arguments(parser)
    annotate_presets(parser, {name: NoduleSegmentationConfig.from_preset(name).to_dict() for name in PRESETS})
    return parser


def parse_args(argv=None):
    """The validated `NoduleSegmentationConfig` of the flags."""
    return parse_config(build_parser(), NoduleSegmentationConfig, argv)


def load_splits(config):
    """The checked pairs split into train / val / test (the phantom is written first when no data is given)."""
    root = config.data_dir
    if root is None:
        write_phantom(config.phantom_dir, config.phantom_n_cases, config.phantom_size, seed=0)
        root = config.phantom_dir
    pairs, report = find_pairs(root, config.on_bad_pairs, config.skip_empty_masks)
    lists = {
        name: getattr(config, f"{name}_list") for name in ("train", "val", "test") if getattr(config, f"{name}_list")
    }
    splits = split_pairs(pairs, config.val_fraction, config.test_fraction, config.seed, lists or None)
    return splits, report


def build_model(config):
    """The model and its compiled loss, optimizer and metrics."""
    kwargs = dict(
        img_size=config.img_size,
        backbone=config.backbone,
        weights=config.weights,
        trainable_stage=None if config.train_whole_backbone else RESNET_LAST_STAGE,
        attention_pooling=config.attention_pooling,
    )
    if config.alpha is not None:
        kwargs["alpha"] = config.alpha
    if config.model_type != "lightweight":
        kwargs.update(
            nodule_branch_kind=config.nodule_branch,
            anatomical_upsampling=config.anatomical_upsampling,
            detach_fused_attention=config.detach_fused_attention,
        )
    model = create_model(f"{SYSTEM}/{config.model_type}", **kwargs)
    loss = ImprovedCombinedLoss(
        seg_weight=config.seg_weight,
        attention_weight=config.attention_weight,
        dice_weight=config.dice_weight,
        bce_weight=config.bce_weight,
        use_focal_loss=config.use_focal_loss,
        alignment_weight=config.alignment_weight,
        alignment=config.alignment,
        align_supervised_attention=config.align_supervised_attention,
        supervise_attention=config.model_type == "improved",
        total_epochs=config.epochs,
    )
    optimizer = GroupedAdamW(
        config.lr,
        weight_decay=config.weight_decay,
        lr_multipliers={r"^conv[1-5]_": config.backbone_lr_factor, "attention": config.attention_lr_factor},
        global_clipnorm=config.clip_norm,
    )
    model.compile(
        optimizer=optimizer,
        loss=[loss],
        metrics={"segmentation": segmentation_metrics()},
        jit_compile=config.jit_compile_argument,
    )
    return model, loss


def best_logged(log_path):
    """The best validation Dice a (killed) run logged, so a resumed run keeps only better models."""
    if not log_path.exists() or log_path.stat().st_size == 0:
        return None
    log = pd.read_csv(log_path)
    return float(log[MONITOR].max()) if MONITOR in log and log[MONITOR].notna().any() else None


class TimeBudget(keras.callbacks.Callback):
    """Stop ``fit`` after the epoch that would make the next one end past ``minutes`` (0: no limit)."""

    def __init__(self, minutes):
        super().__init__()
        self.seconds = 60.0 * minutes
        self.started = self.epoch_started = None

    def on_train_begin(self, logs=None):
        self.started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        if self.seconds and now - self.started + (now - self.epoch_started) > self.seconds:
            print(f"Time budget of {self.seconds / 60:g} min reached after epoch {epoch + 1}: stopping")
            self.model.stop_training = True


def callbacks_for(config, run, loss):
    log = run.file("training_log.csv")
    return [
        keras.callbacks.BackupAndRestore(str(run.folder("backup"))),
        AttentionWeightSchedule(loss),
        keras.callbacks.ModelCheckpoint(
            str(run.file("best.keras")),
            monitor=MONITOR,
            mode="max",
            save_best_only=True,
            initial_value_threshold=best_logged(log),
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr, verbose=1
        ),
        *(
            [keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience)]
            if config.early_stopping_patience
            else []
        ),
        keras.callbacks.CSVLogger(str(log), append=True),
        keras.callbacks.TerminateOnNaN(),
        TimeBudget(config.time_budget_minutes),
        keras.callbacks.TensorBoard(str(run.folder("tensorboard")), write_graph=False),
    ]


def train(config):
    """Train, evaluate and write the outputs of one run; returns the results dictionary.

    Args:
        config: a `NoduleSegmentationConfig` (e.g. ``NoduleSegmentationConfig(epochs=2)``).

    Raises:
        ConfigError, DataError, RunDirectoryError: naming the setting, file or folder at fault.
    """
    config = config.validated()
    started = time.time()
    dist = config.start_distribution(config.batch_size)
    if dist.num_processes > 1:
        raise ConfigError("--num_processes > 1 is not supported by train-nodule-segmentation yet; use one process")
    keras.utils.set_random_seed(config.seed)
    run = RunDirectory(Path(config.output_dir), COMMAND, config.to_dict(), config.overwrite, RESUME_INDEPENDENT)
    splits, report = load_splits(config)
    print(
        ", ".join(f"{name}: {len(pairs)} cases" for name, pairs in splits.items()),
        f"(skipped: {report.as_dict()['skipped']})",
    )
    policy = mixed_precision_policy() if config.mixed_precision else None
    drop = dist.kind != "none"  # every batch splits evenly over the replicas
    with dtype_policy(policy), dist.scope():
        model, loss = build_model(config)
        train_ds = make_dataset(
            splits["train"], config.img_size, config.batch_size, training=True,
            augmentation=ORIGINAL_AUGMENTATION if config.augment else None, seed=config.seed, drop_remainder=drop,
        )  # fmt: skip
        val_ds = make_dataset(splits["val"], config.img_size, config.batch_size, drop_remainder=drop)
        with warnings.catch_warnings():  # epochs without validation have no val_* to monitor, by design
            warnings.filterwarnings("ignore", message=".*(val_loss|val_segmentation_dice).*")
            model.fit(
                train_ds,
                validation_data=val_ds,
                validation_freq=config.val_every,
                epochs=config.epochs,
                callbacks=callbacks_for(config, run, loss),
                verbose=1 if sys.stdout.isatty() else 2,
            )
    best_path = run.file("best.keras")
    if not best_path.exists():  # no validation improved on the start (or none ran): keep the last model
        model.save(best_path)
    best = keras.saving.load_model(best_path, safe_mode=True)
    results = {f"n_{name}": len(pairs) for name, pairs in splits.items()}
    results["skipped_pairs"] = report.as_dict()["skipped"]
    for name in ("val", "test"):
        if not splits[name]:
            continue
        rows, summary, arrays = analyze(best, splits[name], config.batch_size)
        write_csv(run.file(f"cases_{name}.csv"), pd.DataFrame(rows))
        overlay_grid(*arrays).savefig(run.folder("plots") / f"overlays_{name}.png", dpi=80)
        results[name] = summary
    log = pd.read_csv(run.file("training_log.csv"))
    results.update(
        config=config.to_dict(),
        epochs_trained=int(len(log)),
        best_val_dice_soft=best_logged(run.file("training_log.csv")),
        backend=keras.backend.backend(),
        distribute=config.distribute,
        replicas=dist.replicas,
        mixed_precision=policy,
        wall_seconds=round(time.time() - started, 1),
    )
    write_json(run.file("results.json"), results)
    run.finish(epochs_trained=results["epochs_trained"])
    shown = {k: results[s][k] for s in ("val", "test") if s in results for k in ("dice",)}
    print(f"\nSummary: {shown}, wall {results['wall_seconds']} s. Results: {run.path / 'results.json'}")
    return results


def run(argv=None):
    """The command: parse the flags and `train`; user errors exit with a message."""
    config = parse_args(argv)
    with exit_on_user_errors():
        return train(config)


def main(argv=None):
    """Console entry point."""
    run(argv)


if __name__ == "__main__":
    main()

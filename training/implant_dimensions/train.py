"""Train the dual-embedding implant-dimension regressor: `train(config)` and
``python -m training.implant_dimensions.train [flags]`` (console script ``train-implant-dimensions``).

With no flags it builds the embedded synthetic dataset (``data/implant_phantom``), pretrains the
company and the model-type embedding classifiers (unless ``--company_checkpoint`` /
``--model_checkpoint`` are given), then trains the regressor with progressive unfreezing, all with
the CPU preset (a small ViT at 48 px). ``--preset original`` restores the original's settings.

Outputs in ``--output_dir``: ``embedding_{company,model}.keras`` with ``vocabulary_{company,model}.json``
(pretraining), ``best.keras`` (image -> dimensions and attention weights), ``vocabulary.json``,
``training_log.csv`` (per epoch: loss, MAE/RMSE/R^2 per target, ``val_avg_mae``, mean attention
weight per source, trainable weights per embedding model), ``results.json`` and ``run_manifest.json``.
"""

import argparse
import dataclasses
import math
import sys
import time
import typing

import keras
import numpy as np

from callbacks import BackboneFreezer, with_training_state
from modeling.implant_dimensions import (
    DIMENSIONS,
    EMBEDDING_NAMES,
    TARGETS,
    dual_embedding_regression,
    embedding_classifier,
)
from training.cli import (
    ConfigError,
    add_preset_and_verbose_arguments,
    annotate_presets,
    exit_on_user_errors,
    parse_config,
)
from training.implant_dimensions.config import ImplantConfig
from training.implant_dimensions.data import label_indices, make_dataset, read_split, vocabularies
from training.implant_dimensions.phantom import make_phantom
from training.results import write_json
from training.run_directory import RunDirectory

COMMAND = "train-implant-dimensions"


def build_parser():
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    add_preset_and_verbose_arguments(parser, ImplantConfig.PRESETS)
    for field in dataclasses.fields(ImplantConfig):
        if field.name in ("preset", "verbose", "distribute", "coordinator", "num_processes", "process_id"):
            continue
        kind = field.type if field.type in (int, float, str, bool) else typing.get_args(field.type)[0]
        if kind is bool:
            parser.add_argument(f"--{field.name}", action=argparse.BooleanOptionalAction)
        else:
            parser.add_argument(f"--{field.name}", type=_optional(kind))
    annotate_presets(parser, {name: ImplantConfig.from_preset(name).to_dict() for name in ImplantConfig.PRESETS})
    return parser


def _optional(kind):
    def parse(text):
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def warmup_cosine_factor(epoch, warmup_epochs, epochs):
    """The original's LambdaLR factor at 0-based ``epoch``: ``(e+1)/w`` in warmup, then half a cosine.

    >>> [round(warmup_cosine_factor(e, 2, 6), 3) for e in range(6)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    if epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    return 0.5 * (1 + math.cos(math.pi * (epoch - warmup_epochs) / max(1, epochs - warmup_epochs)))


def _schedule(config, epochs):
    return keras.callbacks.LearningRateScheduler(
        lambda epoch, _: config.lr * warmup_cosine_factor(epoch, config.warmup_epochs, epochs)
    )


def _optimizer(config):
    return keras.optimizers.AdamW(config.lr, weight_decay=config.weight_decay, clipnorm=1.0)


class RegressionReport(keras.callbacks.Callback):
    """Per epoch on validation: MAE, RMSE and R^2 per target, ``val_avg_mae``, mean attention weights."""

    def __init__(self, dataset, targets):
        super().__init__()
        self.dataset, self.targets = dataset, targets

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        truth = np.concatenate([np.asarray(y) for _, y in self.dataset])
        predicted = self.model.predict(self.dataset.map(lambda x, y: x), verbose=0)
        logs.update(regression_metrics(truth, predicted[DIMENSIONS], self.targets, prefix="val_"))
        for name, weights in predicted.items():
            if name != DIMENSIONS:
                for i, mean in enumerate(np.asarray(weights).mean(axis=0)):
                    logs[f"{name}_{i}"] = float(mean)


def regression_metrics(truth, predicted, targets, prefix=""):
    """MAE, RMSE and R^2 per target and ``avg_mae`` (their mean MAE), in mm."""
    metrics = {}
    for i, target in enumerate(targets):
        error = predicted[:, i] - truth[:, i]
        variance = float(np.sum((truth[:, i] - truth[:, i].mean()) ** 2))
        metrics[f"{prefix}{target}_mae"] = float(np.mean(np.abs(error)))
        metrics[f"{prefix}{target}_rmse"] = float(np.sqrt(np.mean(error**2)))
        metrics[f"{prefix}{target}_r2"] = float(1 - np.sum(error**2) / variance) if variance else float("nan")
    metrics[f"{prefix}avg_mae"] = float(np.mean([metrics[f"{prefix}{t}_mae"] for t in targets]))
    return metrics


def prepare_splits(config):
    """Train, val (and test) splits; the embedded dataset when no ``--train_json`` is given."""
    if config.train_json is None:
        root = make_phantom(config.data_dir)
        config.train_json, config.val_json, config.test_json = (
            str(root / f"{s}.json") for s in ("train", "val", "test")
        )
    splits = {"train": read_split(config.train_json, config.image_root, "train")}
    splits["val"] = read_split(config.val_json or config.train_json, config.image_root, "val")
    if config.test_json:
        splits["test"] = read_split(config.test_json, config.image_root, "test")
    for split in splits.values():
        print(f"{split.name}: {split.report.rows_kept} entries (skipped: {split.report.as_dict()['skipped']})")
    return splits


def pretrain(config, run, splits, vocabulary, target):
    """Pretrain the ``target`` ("company" or "model") embedding classifier; returns its embedding model.

    Cross-entropy with unknown labels (-1) ignored, AdamW, warmup + cosine, clipnorm 1, the stronger
    augmentation, best weights by validation accuracy; saves ``embedding_<target>.keras``.
    """
    path = run.file(f"embedding_{target}.keras")
    write_json(run.file(f"vocabulary_{target}.json"), {target: vocabulary[target]})
    if path.exists():
        return keras.saving.load_model(path, safe_mode=True)
    dim = config.company_embed_dim if target == "company" else config.model_embed_dim
    model = embedding_classifier(
        num_classes=len(vocabulary[target]),
        image_size=config.image_size,
        model_size=config.model_size,
        embed_dim=dim,
        vit_overrides=config.vit_overrides,
    )
    model.compile(
        _optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        metrics=["accuracy"],
        jit_compile=config.jit_compile_argument,
    )
    data = {
        name: make_dataset(
            splits[name].table,
            config.image_size,
            config.batch_size,
            labels=label_indices(splits[name].table, vocabulary[target], target),
            training=name == "train",
            seed=config.seed,
            strong_augmentation=True,
        )
        for name in ("train", "val")
    }
    best = keras.callbacks.ModelCheckpoint(
        run.file(f"pretrain_{target}.weights.h5"),
        monitor="val_accuracy",
        mode="max",
        save_best_only=True,
        save_weights_only=True,
    )
    print(f"Pretraining the {target} classifier ({len(vocabulary[target])} classes, {config.pretrain_epochs} epochs)")
    model.fit(
        data["train"],
        validation_data=data["val"],
        epochs=config.pretrain_epochs,
        verbose=_verbosity(),
        callbacks=[_schedule(config, config.pretrain_epochs), best],
    )
    model.load_weights(best.filepath)
    embedding = model.get_layer("embedding")
    embedding.save(path)
    return embedding


def _verbosity():
    return 1 if sys.stdout.isatty() else 2


def train(config):
    """Pretrain (if needed), train and evaluate one run; returns the ``results.json`` contents.

    Args:
        config: an `ImplantConfig` (e.g. ``ImplantConfig.from_preset("cpu", epochs=2)``).
    """
    config = config.validated()
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    run = RunDirectory(
        config.output_dir,
        COMMAND,
        config.to_dict(),
        overwrite=config.overwrite,
        resume_independent=("overwrite", "verbose"),
    )
    splits = prepare_splits(config)
    vocabulary = vocabularies(splits["train"], splits["val"])
    write_json(run.file("vocabulary.json"), vocabulary)
    sources = {}
    for target, flag in (("company", config.company_checkpoint), ("model", config.model_checkpoint)):
        sources[target] = (
            keras.saving.load_model(flag, safe_mode=True) if flag else pretrain(config, run, splits, vocabulary, target)
        )
    targets = TARGETS[config.task]
    try:
        model = dual_embedding_regression(
            image_size=config.image_size,
            model_size=config.model_size,
            attention_type=config.attention_type,
            task=config.task,
            company_model=sources["company"],
            model_model=sources["model"],
            vit_overrides=config.vit_overrides,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    model.compile(_optimizer(config), loss={DIMENSIONS: "mse"}, jit_compile=config.jit_compile_argument)
    data = {
        name: make_dataset(
            split.table,
            config.image_size,
            config.batch_size,
            targets=targets,
            training=name == "train",
            seed=config.seed,
        )
        for name, split in splits.items()
    }
    multipliers = {"company": config.company_lr_multiplier, "model": config.model_lr_multiplier}
    freezer = BackboneFreezer(
        submodels={
            EMBEDDING_NAMES[kind]: {
                "schedule": {config.unfreeze_epoch - 1: 0.5, config.full_unfreeze_epoch - 1: 1.0},
                "lr_multiplier": multipliers[kind],
            }
            for kind in ("company", "model")
        },
        freeze_batchnorm=False,
        verbose=1,
    )
    monitor = "val_loss" if config.select_by == "val_loss" else "val_avg_mae"
    callbacks = with_training_state(  # exact resume: optimizer across the unfreeze rebuild, callback state
        [
            freezer,
            _schedule(config, config.epochs),
            RegressionReport(data["val"], targets),
            keras.callbacks.ModelCheckpoint(run.file("best.keras"), monitor=monitor, mode="min", save_best_only=True),
            keras.callbacks.CSVLogger(run.file("training_log.csv"), append=True),
            keras.callbacks.TerminateOnNaN(),
        ],
        run.folder("backup"),
    )
    print(f"Training the dual-embedding regressor ({config.attention_type} attention, {config.epochs} epochs)")
    model.fit(
        data["train"], validation_data=data["val"], epochs=config.epochs, verbose=_verbosity(), callbacks=callbacks
    )
    best = keras.saving.load_model(run.file("best.keras"), safe_mode=True)
    results = {"config": config.to_dict(), "vocabulary_sizes": {k: len(v) for k, v in vocabulary.items()}}
    results["skipped"] = {name: split.report.as_dict()["skipped"] for name, split in splits.items()}
    for name in ("val", "test"):
        if name in data:
            truth = splits[name].table[list(targets)].to_numpy("float32")
            predicted = best.predict(data[name].map(lambda x, y: x), verbose=0)[DIMENSIONS]
            results.update(regression_metrics(truth, predicted, targets, prefix=f"{name}_"))
    results["unfreezing"] = {k: [list(c) for c in v] for k, v in freezer.submodel_changes.items()}
    results["wall_seconds"] = round(time.time() - started, 1)
    write_json(run.file("results.json"), results)
    run.finish(epochs_trained=config.epochs)
    print("Summary:", {k: round(v, 3) for k, v in results.items() if k.endswith("_mae")})
    return results


def run_command(argv=None):
    """Parse the flags into an `ImplantConfig` and `train` it; user errors exit with a message."""
    config = parse_config(build_parser(), ImplantConfig, argv)
    with exit_on_user_errors():
        return train(config)


def main(argv=None):
    """Console entry point."""
    run_command(argv)


if __name__ == "__main__":
    main()

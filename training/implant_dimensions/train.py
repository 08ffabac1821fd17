"""Train the dual-embedding implant-dimension regressor: `train(config)` and
``python -m training.implant_dimensions.train [flags]`` (console script ``train-implant-dimensions``).

With no flags it builds the embedded synthetic dataset (``data/implant_phantom``), pretrains the
company and the model-type embedding classifiers (unless ``--company_checkpoint`` /
``--model_checkpoint`` are given), then trains the regressor with progressive unfreezing, all with
the CPU preset (a small ViT at 96 px). ``--preset original`` restores the original's settings.

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
from pathlib import Path

import keras
import numpy as np

from callbacks import BackboneFreezer, with_training_state
from modeling.implant_dimensions import (
    DIMENSIONS,
    EMBEDDING_NAMES,
    TARGETS,
    baseline_regression,
    dual_embedding_regression,
    embedding_classifier,
    single_embedding_regression,
)
from modeling.losses import ScaledMeanSquaredError
from training.cli import (
    ConfigError,
    add_preset_and_verbose_arguments,
    add_scale_out_arguments,
    annotate_presets,
    exit_on_user_errors,
    parse_config,
)
from training.distribution import dtype_policy, mixed_precision_policy
from training.implant_dimensions.config import ImplantConfig
from training.implant_dimensions.data import label_indices, make_dataset, read_split, vocabularies
from training.implant_dimensions.phantom import finished_settings, make_phantom
from training.results import write_json
from training.run_directory import RunDirectory

COMMAND = "train-implant-dimensions"
SCALE_OUT_FIELDS = ("distribute", "coordinator", "num_processes", "process_id", "mixed_precision", "jit_compile")


def build_parser():
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    add_preset_and_verbose_arguments(parser, ImplantConfig.PRESETS)
    for field in dataclasses.fields(ImplantConfig):
        if field.name in ("preset", "verbose", *SCALE_OUT_FIELDS):
            continue
        if field.type is bool:
            parser.add_argument(f"--{field.name}", action=argparse.BooleanOptionalAction)
        elif field.type in (int, float, str):  # "none" is a value here (e.g. --attention_type none)
            parser.add_argument(f"--{field.name}", type=field.type)
        else:  # optional fields: "none" means None
            parser.add_argument(f"--{field.name}", type=_optional(typing.get_args(field.type)[0]))
    add_scale_out_arguments(parser)
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


def _schedule(config, epochs, lr):
    return keras.callbacks.LearningRateScheduler(
        lambda epoch, _: lr * warmup_cosine_factor(epoch, config.warmup_epochs, epochs)
    )


def _optimizer(config, lr):
    return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay, clipnorm=1.0)


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
    if config.train_json is None:  # a finished phantom of any size is used as it is
        root = Path(config.data_dir) if finished_settings(config.data_dir) else make_phantom(config.data_dir)
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


def _datasets(config, splits, dist, names, **options):
    """``{name: make_dataset(...)}`` of this process's shard; data-parallel batches split evenly."""
    return {
        name: make_dataset(
            splits[name].table,
            config.image_size,
            dist.per_process_batch(config.batch_size),
            training=name == "train",
            seed=config.seed,
            num_shards=dist.num_processes,
            shard_index=dist.process_id,
            drop_remainder=dist.kind == "data_parallel",
            **{key: value(name) if callable(value) else value for key, value in options.items()},
        )
        for name in names
    }


def pretrain(config, run, splits, vocabulary, target, dist):
    """Pretrain the ``target`` ("company" or "model") embedding classifier; returns its embedding model.

    Cross-entropy with unknown labels (-1) ignored, AdamW, warmup + cosine, clipnorm 1, the stronger
    augmentation, best weights by validation accuracy; saves ``embedding_<target>.keras`` and the
    per-epoch log ``pretrain_<target>_log.csv``.
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
        weights=config.vit_weights_preset,
        vit_overrides=config.vit_overrides,
    )
    model.compile(
        _optimizer(config, config.pretrain_lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        metrics=["accuracy"],
        jit_compile=config.jit_compile_argument,
    )
    labels = {name: label_indices(splits[name].table, vocabulary[target], target) for name in ("train", "val")}
    data = _datasets(
        config,
        splits,
        dist,
        ("train", "val"),
        labels=labels.get,
        strong_augmentation=True,
        augment=config.pretrain_augmentation,
    )
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
        callbacks=[
            _schedule(config, config.pretrain_epochs, config.pretrain_lr),
            best,
            keras.callbacks.CSVLogger(run.file(f"pretrain_{target}_log.csv")),
        ],
    )
    model.load_weights(best.filepath)
    embedding = model.get_layer("embedding")
    embedding.save(path)
    return embedding


def _verbosity():
    return 1 if sys.stdout.isatty() else 2


def target_statistics(table, targets):
    """Means and standard deviations (ddof 0; 1 where constant) of the training targets, in mm."""
    values = table[list(targets)].to_numpy("float64")
    stds = values.std(axis=0)
    return [float(v) for v in values.mean(axis=0)], [float(v) if v > 0 else 1.0 for v in stds]


def build_regressor(config, sources, statistics):
    """The regressor ``config.embeddings`` names, on the given pretrained embedding models.

    Args:
        config: the run's `ImplantConfig`.
        sources: ``{"company": model, "model": model}`` embedding models (only those it uses).
        statistics: `target_statistics` of the training split (the head predicts standardised sizes).
    """
    common = dict(
        image_size=config.image_size,
        model_size=config.model_size,
        task=config.task,
        weights=config.vit_weights_preset,
        vit_overrides=config.vit_overrides,
        target_statistics=statistics,
    )
    try:
        if config.embeddings == "none":
            return baseline_regression(**common)
        if config.embeddings == "company":
            return single_embedding_regression(
                use_attention=config.attention_type != "none", company_model=sources["company"], **common
            )
        return dual_embedding_regression(
            attention_type=config.attention_type,
            company_model=sources["company"],
            model_model=sources["model"],
            **common,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None


def fit(config, run, splits, vocabulary, dist):
    """Pretrain what is missing, then train the regressor; returns its `BackboneFreezer` (None: baseline)."""
    kinds = {"dual": ("company", "model"), "company": ("company",), "none": ()}[config.embeddings]
    sources = {}
    for target in kinds:
        flag = config.company_checkpoint if target == "company" else config.model_checkpoint
        if flag:
            sources[target] = keras.saving.load_model(flag, safe_mode=True)
        else:
            sources[target] = pretrain(config, run, splits, vocabulary, target, dist)
    targets = TARGETS[config.task]
    statistics = target_statistics(splits["train"].table, targets)
    model = build_regressor(config, sources, statistics)
    loss = ScaledMeanSquaredError(statistics[1]) if config.loss == "scaled_mse" else keras.losses.MeanSquaredError()
    model.compile(_optimizer(config, config.lr), loss={DIMENSIONS: loss}, jit_compile=config.jit_compile_argument)
    data = _datasets(config, splits, dist, ("train", "val"), targets=targets)
    multipliers = {"company": config.company_lr_multiplier, "model": config.model_lr_multiplier}
    schedule = {config.unfreeze_epoch - 1: 0.5, config.full_unfreeze_epoch - 1: 1.0}
    submodels = {EMBEDDING_NAMES[k]: {"schedule": schedule, "lr_multiplier": multipliers[k]} for k in kinds}
    freezer = BackboneFreezer(submodels=submodels, freeze_batchnorm=False, verbose=1) if kinds else None
    monitor = "val_loss" if config.select_by == "val_loss" else "val_avg_mae"
    callbacks = with_training_state(  # exact resume: optimizer across the unfreeze rebuild, callback state
        [
            *([freezer] if kinds else []),
            _schedule(config, config.epochs, config.lr),
            RegressionReport(data["val"], targets),
            keras.callbacks.ModelCheckpoint(run.file("best.keras"), monitor=monitor, mode="min", save_best_only=True),
            keras.callbacks.CSVLogger(run.file("training_log.csv"), append=True),
            keras.callbacks.TerminateOnNaN(),
        ],
        run.folder("backup"),
    )
    print(f"Training the {model.name} regressor ({config.attention_type} attention, {config.epochs} epochs)")
    model.fit(
        data["train"], validation_data=data["val"], epochs=config.epochs, verbose=_verbosity(), callbacks=callbacks
    )
    return freezer


def train(config):
    """Pretrain (if needed), train and evaluate one run; returns the ``results.json`` contents.

    Args:
        config: an `ImplantConfig` (e.g. ``ImplantConfig.from_preset("cpu", epochs=4)``).
    """
    config = config.validated()
    started = time.time()
    dist = config.start_distribution(config.batch_size)
    keras.utils.set_random_seed(config.seed)
    output_dir = dist.output_dir(config.output_dir)
    run = RunDirectory(
        output_dir, COMMAND, config.to_dict(), overwrite=config.overwrite, resume_independent=("overwrite", "verbose")
    )
    splits = prepare_splits(config)
    vocabulary = vocabularies(splits["train"], splits["val"])
    write_json(run.file("vocabulary.json"), vocabulary)
    policy = mixed_precision_policy() if config.mixed_precision else None
    with dtype_policy(policy), dist.scope():
        freezer = fit(config, run, splits, vocabulary, dist)
    targets = TARGETS[config.task]
    results = {"config": config.to_dict(), "vocabulary_sizes": {k: len(v) for k, v in vocabulary.items()}}
    results.update(dist.facts(), mixed_precision=policy)
    results["skipped"] = {name: split.report.as_dict()["skipped"] for name, split in splits.items()}
    pretraining_logs = {target: run.file(f"pretrain_{target}_log.csv") for target in ("company", "model")}
    results["pretraining_best_val_accuracy"] = {  # of the classifiers this run pretrained
        target: float(np.genfromtxt(log, delimiter=",", names=True)["val_accuracy"].max())
        for target, log in pretraining_logs.items()
        if log.exists()
    }
    best = keras.saving.load_model(run.file("best.keras"), safe_mode=True)
    for name in ("val", "test") if dist.is_chief else ():
        if name in splits:
            data = make_dataset(splits[name].table, config.image_size, config.batch_size, targets=targets)
            truth = splits[name].table[list(targets)].to_numpy("float32")
            predicted = best.predict(data.map(lambda x, y: x), verbose=0)[DIMENSIONS]
            results.update(regression_metrics(truth, predicted, targets, prefix=f"{name}_"))
    changes = freezer.submodel_changes if freezer else {}
    results["unfreezing"] = {k: [list(c) for c in v] for k, v in changes.items()}
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

"""The three splits of a volume-fusion run: tables checked, volumes loaded, `tf.data` pipelines built.

Volumes are read once (nibabel), resized to the model size and scaled to [0, 1], and kept in memory
(64^3 float32 is 1 MiB per case); the training pipeline shuffles, batches and augments them inside
`tf.data` with `training.data.augmentation.Augmentation` (flips on all three axes, rotations about
each axis), a fresh draw every epoch.
"""

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from training.data.augmentation import Augmentation
from training.data.tables import DataError, RowProblem
from training.data.volumes import load_volumes
from training.volume_fusion import phantom
from training.volume_fusion.tables import Columns, load_table

DEFAULT_PHANTOM_DIR = Path("data") / "volume_fusion_phantom"


@dataclasses.dataclass
class Split:
    """One split: its table (a DataFrame with ``path`` and ``target``), arrays and the reading report."""

    name: str
    source: str
    table: object
    volumes: np.ndarray
    metadata: np.ndarray
    report: dict
    unused_volumes: int

    @property
    def targets(self):
        return self.table["target"].to_numpy("float32")


def columns_of(config):
    return Columns(
        study=config.study_column,
        side=config.side_column,
        target=config.target_column,
        metadata=tuple(config.metadata_list),
        gender=config.gender_column,
        path=config.path_column,
    )


def table_sources(config, builder=True):
    """``{split: (table path, sheet)}`` and the image folder: the explicit flags, or the embedded phantom."""
    if config.train_table:
        sheets = {"train": config.train_sheet, "val": config.eval_sheet, "test": config.eval_sheet}
        tables = {"train": config.train_table, "val": config.val_table, "test": config.test_table}
        return {split: (Path(tables[split]), sheets[split]) for split in tables}, Path(config.image_dir)
    data_dir = Path(config.data_dir or DEFAULT_PHANTOM_DIR)
    if config.data_dir is None and builder:
        phantom.ensure_dataset(
            data_dir, n_train=config.phantom_n_train, n_val=config.phantom_n_val, n_test=config.phantom_n_test
        )
    sources = {split: (data_dir / name, sheet) for split, (name, sheet) in phantom.FILES.items()}
    return sources, data_dir / phantom.IMAGE_DIR


def load_splits(config, builder=True):
    """The checked train/val/test splits with their volumes in memory.

    Warns when validation and test are the same table (the original's default): model selection
    and thresholds are then tuned on the test cases.

    Raises:
        DataError: naming the file, sheet and row at fault.
    """
    sources, image_dir = table_sources(config, builder)
    if not image_dir.is_dir():
        raise DataError(f"Image folder not found: {image_dir}")
    if sources["val"] == sources["test"]:
        print(
            f"Warning: validation and test read the same table ({sources['val'][0]}, sheet {sources['val'][1]!r}); "
            "model selection and thresholds are then chosen on the test cases, as in the original."
        )
    columns = columns_of(config)
    splits = {}
    for name, (path, sheet) in sources.items():
        table, report, unused = load_table(path, image_dir, sheet, columns, on_error=config.on_bad_rows)
        try:
            volumes = load_volumes(list(table["path"]), config.volume_size)
        except RowProblem as problem:
            raise DataError(f"{path} (sheet {sheet!r}): {problem.detail}") from None
        metadata = table[list(columns.metadata)].to_numpy("float32")
        splits[name] = Split(name, report.csv, table, volumes, metadata, report.as_dict(), len(unused))
    return splits


def metadata_statistics(split):
    """Per-feature mean and variance of the training metadata (variance floored at 1e-6)."""
    return split.metadata.mean(0).tolist(), np.maximum(split.metadata.var(0), 1e-6).tolist()


def augmentation(config):
    """The 3D augmentation of the training split, or ``None`` without ``augment``."""
    if not config.augment or not (config.flip or config.rotation_degrees):
        return None
    return Augmentation(
        flip=config.flip,
        flip_all_axes=True,
        rotation_degrees=config.rotation_degrees,
        rotation_all_axes=True,
        shift=0.0,
        zoom=0.0,
        brightness=0.0,
        contrast=0.0,
    )


def make_dataset(split, input_names, batch_size, training=False, augment=None, seed=0, num_shards=1,
                 shard_index=0, drop_remainder=False):  # fmt: skip
    """A `tf.data` pipeline of ``({name: ...}, target)`` batches with only the model's ``input_names``.

    Args:
        split: a `Split`.
        input_names: the model's input names ("volume", "metadata").
        batch_size: per process.
        training: shuffle every epoch (and augment with ``augment``).
        augment: an `Augmentation` or ``None``.
        seed: shuffling and augmentation seed.
        num_shards, shard_index: this process's part of the data in a multi-process run.
        drop_remainder: drop the last partial batch (data-parallel runs need even batches).
    """
    arrays = {"volume": split.volumes, "metadata": split.metadata}
    inputs = {name: arrays[name] for name in input_names}
    dataset = tf.data.Dataset.from_tensor_slices((inputs, split.targets[:, None]))
    if num_shards > 1:
        dataset = dataset.shard(num_shards, shard_index)
    if training:
        dataset = dataset.shuffle(len(split.targets), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if training and augment is not None and "volume" in inputs:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

        def warp(batch, pair):
            features, target = batch
            volumes = augment(features["volume"], tf.cast(pair % (2**31 - 1), tf.int32))
            return features | {"volume": tf.clip_by_value(volumes, 0.0, 1.0)}, target

        dataset = tf.data.Dataset.zip((dataset, seeds)).map(warp, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)

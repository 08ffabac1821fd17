"""The original's data: JSON lists of ``{image, company, model, length, diameter}`` entries.

* Image paths resolve to ``<image_root>/<sanitised company>/<file>``; absolute paths from the
  SageMaker container (``/opt/ml/...``) keep only their file name.
* Entries with an empty company or model, or a length or diameter that is not a finite number,
  are skipped and counted by reason (``on_error="raise"`` stops at the first instead); missing
  keys and missing images are errors naming the file and entry.
* The vocabularies are the sorted companies and models over train and val.
* `make_dataset`: train transforms (random resized crop at scale 0.8-1.0, flip, rotation 10 deg,
  brightness and contrast 0.2) or val transforms (resize, centre crop), ImageNet normalisation.

Example:

>>> sanitize_company("Zimmer Biomet")
'Zimmer_Biomet'
"""

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from training.data.tables import DataError, RowProblem, TableReport, check_image_file

KEYS = ("image", "company", "model", "length", "diameter")


def sanitize_company(company):
    """The folder name of a company: runs of characters other than letters, digits, ``.-_`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(company).strip()).strip("_")


@dataclasses.dataclass
class Split:
    """One JSON file's kept entries (a DataFrame with ``path``) and what was skipped."""

    name: str
    table: pd.DataFrame
    report: TableReport


def read_split(json_path, image_root=None, name="train", on_error="skip", check_images=True):
    """Read one JSON list; see the module docstring for the rules.

    Args:
        json_path: the JSON file.
        image_root: folder of the company folders (default: the JSON file's folder).
        on_error: "skip" (count bad entries by reason) or "raise".
        check_images: also check every image file exists and decodes.

    Raises:
        DataError: unreadable JSON, not a list, an entry that is not an object or lacks a key, a
            missing image (with ``check_images``), or no entry left; each names file and entry.
    """
    json_path = Path(json_path)
    root = Path(image_root) if image_root else json_path.parent
    try:
        entries = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise DataError(f"JSON file not found: {json_path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"Cannot parse JSON {json_path}: {error}") from None
    if not isinstance(entries, list):
        raise DataError(f"{json_path}: expected a JSON list of entries, got {type(entries).__name__}.")
    report = TableReport(csv=str(json_path), rows_read=len(entries))
    rows = []
    for index, entry in enumerate(entries):
        where = f"{json_path}, entry {index}"
        if not isinstance(entry, dict) or set(KEYS) - set(entry):
            missing = sorted(set(KEYS) - set(entry)) if isinstance(entry, dict) else KEYS
            raise DataError(f"{where}: missing key(s) {list(missing)}; every entry needs {list(KEYS)}.")
        try:
            rows.append(_parse(entry, root, check_images))
        except RowProblem as problem:
            if on_error == "raise" or problem.reason in ("missing image", "unreadable image"):
                raise DataError(f"{where}: {problem.detail}") from None
            report.add_problem(problem.reason, index)
    report.rows_kept = len(rows)
    if not rows:
        raise DataError(f"{json_path}: no usable entry (skipped: {report.as_dict()['skipped']}).")
    return Split(name, pd.DataFrame(rows), report)


def _parse(entry, root, check_images):
    for key in ("company", "model"):
        if not str(entry[key] or "").strip():
            raise RowProblem(f"empty {key}", f"empty {key}")
    values = {}
    for key in ("length", "diameter"):
        try:
            values[key] = float(entry[key])
        except (TypeError, ValueError):
            raise RowProblem(f"non-numeric {key}", f"{key} {entry[key]!r} is not a number") from None
        if not math.isfinite(values[key]):
            raise RowProblem(f"non-finite {key}", f"{key} is {entry[key]!r}")
    company = str(entry["company"]).strip()
    path = root / sanitize_company(company) / Path(str(entry["image"])).name
    if check_images:
        check_image_file(path)
    return {"path": str(path), "company": company, "model": str(entry["model"]).strip(), **values}


def vocabularies(*splits):
    """``{"company": [...], "model": [...]}``: sorted unique values over the splits (train and val)."""
    return {key: sorted(set().union(*(set(s.table[key]) for s in splits))) for key in ("company", "model")}


def label_indices(table, vocabulary, key):
    """Indices of ``table[key]`` in ``vocabulary``; -1 for values not in it (masked in the loss)."""
    index = {value: i for i, value in enumerate(vocabulary)}
    return np.array([index.get(value, -1) for value in table[key]], "int32")


def make_dataset(
    table,
    image_size,
    batch_size,
    targets=None,
    labels=None,
    training=False,
    seed=0,
    strong_augmentation=False,
    augment=True,
    num_shards=1,
    shard_index=0,
    drop_remainder=False,
):
    """A `tf.data.Dataset` of ImageNet-normalised RGB images and targets.

    Args:
        table: a `Split.table`.
        image_size: crop size (the original: 224; validation resizes to 256/224 of it first).
        targets: target columns (e.g. ``("length", "diameter")``) -> float32 ``(B, len)``, or None.
        labels: class indices (`label_indices`) instead of ``targets``, or None (images only).
        training: random crop, flip, rotation, brightness and contrast; else resize + centre crop.
        strong_augmentation: the pretraining's (rotation 15 deg, brightness/contrast 0.3).
        augment: with ``training``, False keeps the shuffle but gives the validation transform.
        num_shards, shard_index: this process's part of the entries in a multi-process run.
        drop_remainder: drop a last partial batch (data-parallel batches must split evenly).
    """
    import tensorflow as tf

    from training.data.augmentation import Augmentation
    from training.data.crops import imagenet_normalize, random_resized_crop, resize_center_crop

    resize = int(round(image_size * 256 / 224))
    strength = 0.3 if strong_augmentation else 0.2
    augmenter = Augmentation(
        flip=True,
        rotation_degrees=15.0 if strong_augmentation else 10.0,
        shift=0.0,
        zoom=0.0,
        brightness=strength,
        contrast=strength,
    )

    def load(path, index):
        image = tf.cast(tf.io.decode_png(tf.io.read_file(path), channels=3), tf.float32)
        if training and augment:
            return random_resized_crop(image, image_size, seed=tf.stack([tf.cast(seed, tf.int64), index]))
        return resize_center_crop(image, resize, image_size)

    paths = tf.constant(table["path"].tolist())
    dataset = tf.data.Dataset.from_tensor_slices((paths, tf.range(len(table), dtype=tf.int64)))
    if num_shards > 1:
        dataset = dataset.shard(num_shards, shard_index)
    if training:
        dataset = dataset.shuffle(len(table), seed=seed, reshuffle_each_iteration=True)
    outputs = {}
    if targets is not None:
        outputs = tf.constant(table[list(targets)].to_numpy("float32"))
    elif labels is not None:
        outputs = tf.constant(labels)

    def prepare(path, index):
        image = tf.ensure_shape(load(path, index), (image_size, image_size, 3))
        return image, index

    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size, drop_remainder)

    def finish(images, index):
        if training and augment:
            images = augmenter(images, tf.stack([tf.cast(seed, tf.int32), tf.cast(index[0], tf.int32)]))
        images = imagenet_normalize(tf.clip_by_value(images, 0.0, 255.0))
        if targets is None and labels is None:
            return images
        return images, tf.gather(outputs, index)

    return dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

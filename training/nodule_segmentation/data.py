"""The DRR dataset: find and check ``<id>_drr.png`` / ``<id>_drr_mask.png`` pairs, split them, feed ``tf.data``.

Layout: ``<root>/<any subfolders>/<id>_drr.png`` with ``<id>_drr_mask.png`` beside it, and
optionally ``<id>_xray.png`` (a real radiograph for the ``"xray"`` input; without one the DRR is fed
to both inputs, as the original does). Images are read as grey, resized to the model size and
scaled to [-1024, 1024]; masks are resized and binarised at 0.5. Training applies one random draw
to image and mask (rotation +-10 degrees, horizontal flip, brightness and contrast 0.1).

Bad pairs (a DRR without mask or the reverse, unreadable files, a mask of another size, a
non-binary mask) stop the run with an error naming the file, or are skipped and counted with
``on_bad_pairs="skip"``. Empty masks are kept and counted (``skip_empty_masks`` drops them); a
dataset whose masks are all empty, or all full, is refused before training.
"""

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from training.data.augmentation import Augmentation
from training.data.images import decode_image
from training.data.tables import DataError, RowProblem, TableReport, check_image_file

DRR_SUFFIX, MASK_SUFFIX, XRAY_SUFFIX = "_drr.png", "_drr_mask.png", "_xray.png"
# The original's augmentation: rotation +-10 degrees, flip, brightness/contrast 0.1; no shift or zoom.
ORIGINAL_AUGMENTATION = Augmentation(
    flip=True, rotation_degrees=10.0, shift=0.0, zoom=0.0, brightness=0.1, contrast=0.1, mask_interpolation="bilinear"
)


@dataclasses.dataclass
class Pair:
    """One case: its id and files (``xray`` is ``None`` when the DRR feeds both inputs)."""

    case_id: str
    drr: str
    mask: str
    xray: str | None = None
    empty: bool = False


def _check_pair(drr, mask, xray):
    for path in (drr, mask) + ((xray,) if xray else ()):
        check_image_file(path, formats=("PNG",))
    with Image.open(drr) as image, Image.open(mask) as mask_image:
        if image.size != mask_image.size:
            raise RowProblem("mask size", f"mask {mask} is {mask_image.size}, its DRR {drr} is {image.size}")
        values = np.unique(np.asarray(mask_image.convert("L")))
    if len(values) > 2 or (len(values) == 2 and values[0] != 0):
        raise RowProblem("non-binary mask", f"mask {mask} is not binary (values {values[:6].tolist()}...)")
    return values.max() == 0, values.min() > 0


def find_pairs(root, on_bad_pairs="raise", skip_empty_masks=False):
    """Every checked pair under ``root`` (sorted by path) and a `TableReport` of what was skipped.

    Raises:
        DataError: a bad pair with ``on_bad_pairs="raise"`` (naming the file), no pairs at all, a
            mix of cases with and without ``_xray.png``, or a single-class dataset.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"DRR data folder not found: {root}")
    drrs = {str(p)[: -len(DRR_SUFFIX)]: p for p in root.rglob(f"*{DRR_SUFFIX}")}
    masks = {str(p)[: -len(MASK_SUFFIX)]: p for p in root.rglob(f"*{MASK_SUFFIX}")}
    report = TableReport(csv=str(root), rows_read=len(set(drrs) | set(masks)))
    pairs, full_masks = [], 0
    for stem in sorted(set(drrs) | set(masks)):
        try:
            if stem not in masks:
                raise RowProblem("DRR without mask", f"{drrs[stem]} has no mask {stem}{MASK_SUFFIX}")
            if stem not in drrs:
                raise RowProblem("mask without DRR", f"{masks[stem]} has no DRR {stem}{DRR_SUFFIX}")
            xray = Path(stem + XRAY_SUFFIX)
            xray = str(xray) if xray.is_file() else None
            empty, full = _check_pair(drrs[stem], masks[stem], xray)
        except RowProblem as problem:
            if on_bad_pairs == "raise":
                raise DataError(f"{problem.detail} (pass --on_bad_pairs skip to skip and count such pairs)") from None
            report.add_problem(problem.reason, Path(stem).name)
            continue
        if empty and skip_empty_masks:
            report.add_problem("empty mask", Path(stem).name)
            continue
        full_masks += bool(full)
        pairs.append(Pair(Path(stem).name, str(drrs[stem]), str(masks[stem]), xray, bool(empty)))
    report.rows_kept = len(pairs)
    if not pairs:
        raise DataError(
            f"No <id>{DRR_SUFFIX} / <id>{MASK_SUFFIX} pairs under {root} (skipped: {report.as_dict()['skipped']})"
        )
    with_xray = [pair.xray is not None for pair in pairs]
    if any(with_xray) and not all(with_xray):
        missing = next(pair.drr for pair in pairs if pair.xray is None)
        raise DataError(f"Some cases have {XRAY_SUFFIX} and some do not: e.g. {missing}; give every case one or none.")
    if all(pair.empty for pair in pairs) or full_masks == len(pairs):
        kind = "empty" if all(pair.empty for pair in pairs) else "full"
        raise DataError(f"Every mask under {root} is {kind}: a single-class dataset has nothing to segment.")
    return pairs, report


def read_id_list(path):
    """Case ids, one per line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Split list not found: {path}")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line.removesuffix(DRR_SUFFIX) for line in lines if line]


def split_pairs(pairs, val_fraction=0.2, test_fraction=0.0, seed=42, lists=None):
    """``{"train", "val", "test"}`` lists of pairs: a seeded shuffle, or explicit id lists.

    Args:
        lists: optional ``{split: path of an id list}``; the cases not listed in any list go to
            ``"train"`` when no train list is given.

    Raises:
        DataError: an id in a list that is not in the data, or an empty train or val split.
    """
    if lists:
        by_id = {pair.case_id: pair for pair in pairs}
        splits = {}
        for name, path in lists.items():
            ids = read_id_list(path)
            unknown = [case for case in ids if case not in by_id]
            if unknown:
                raise DataError(f"{path}: ids not in the data: {unknown[:5]}")
            splits[name] = [by_id[case] for case in ids]
        listed = {pair.case_id for split in splits.values() for pair in split}
        splits.setdefault("train", [pair for pair in pairs if pair.case_id not in listed])
        splits.setdefault("test", [])
    else:
        order = np.random.default_rng(seed).permutation(len(pairs))
        n_test = int(round(test_fraction * len(pairs)))
        n_val = int(round(val_fraction * len(pairs)))
        shuffled = [pairs[i] for i in order]
        splits = {
            "test": shuffled[:n_test],
            "val": shuffled[n_test : n_test + n_val],
            "train": shuffled[n_test + n_val :],
        }
    for name in ("train", "val"):
        if not splits.get(name):
            raise DataError(f"The {name} split is empty ({len(pairs)} pairs); add data or change the split settings.")
    return splits


def _load(img_size):
    def load(drr, mask, xray):
        image = decode_image(drr, img_size)
        target = tf.image.resize(
            tf.cast(tf.io.decode_png(tf.io.read_file(mask), channels=1), tf.float32), (img_size, img_size)
        )
        target = target / tf.maximum(tf.reduce_max(target), 1.0)
        second = decode_image(xray, img_size) if xray is not None else image
        return image, second, target

    return load


def _to_model(image, xray, mask):
    """[0, 255] -> [-1024, 1024]; masks binarised at 0.5."""
    scale = lambda x: x / 255.0 * 2048.0 - 1024.0  # noqa: E731
    mask = tf.cast(mask > 0.5, tf.float32)
    # Keras wants a target per output once metrics are per output; nodule_features has none (a placeholder).
    return {"xray": scale(xray), "drr": scale(image)}, {
        "segmentation": mask,
        "attention": mask,
        "nodule_features": tf.zeros((tf.shape(mask)[0], 1)),
    }


def make_dataset(
    pairs, img_size, batch_size, training=False, augmentation=ORIGINAL_AUGMENTATION, seed=42, drop_remainder=False
):
    """Batches ``({"xray", "drr"}, {"segmentation": mask, "attention": mask, "nodule_features": 0})`` of ``pairs`` (shuffled and augmented when ``training``).

    The X-ray gets the DRR's random draw too when it is a separate image.
    """
    has_xray = pairs[0].xray is not None
    columns = ([p.drr for p in pairs], [p.mask for p in pairs]) + (([p.xray for p in pairs],) if has_xray else ())
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if training:
        dataset = dataset.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    load = _load(img_size)
    dataset = dataset.map(lambda *c: load(c[0], c[1], c[2] if has_xray else None), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if training and augmentation is not None:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda batch, s: _augment(augmentation, batch, s), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.map(_to_model).prefetch(tf.data.AUTOTUNE)


def _augment(augmentation, batch, seed):
    image, xray, mask = batch
    seed = tf.cast(seed % (2**31), tf.int32)
    both = tf.concat([image, xray], axis=-1)
    both, mask = augmentation(both, seed, masks=mask)
    return both[..., :1], both[..., 1:], mask

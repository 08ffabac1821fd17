"""Datasets of the image + text fusion system: the Wound and MedPix layouts, labels, tf.data pipelines.

* Wound: ``<root>/metadata.csv`` with ``file_path`` (or ``img_path``), ``type``, ``severity``,
  ``description``; split files ``metadata_{train,dev,test}.csv`` (written 70/15/15 when missing).
  Task 1 ("modality" slot) is ``type``, task 2 ("location" slot) is ``severity``.
* MedPix: ``<root>/splitted_dataset/descriptions_{split}.jsonl`` (``image``, ``Type``,
  ``Location Category``, ``Description``/``Caption``) and ``<root>/images/<image>.png``.

Labels are indices of the sorted unique training values (`label_maps`), saved with the model.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from training.data.tables import DataError, RowProblem, check_image_file, check_rows, read_csv_as_text

SPLITS = ("train", "dev", "test")
WOUND_COLUMNS = ("type", "severity", "description")
MEDPIX_MODALITY = {"CT": 0, "MR": 1}
MEDPIX_LOCATION = {"Abdomen": 0, "Head": 1, "Reproductive and Urinary System": 2, "Thorax": 3, "Spine and Muscles": 4}
MAX_TEXT_CHARACTERS = 20000


def _check_text(text, where):
    if not str(text).strip():
        raise RowProblem("empty text", f"{where}: the text is empty")
    if len(str(text)) > MAX_TEXT_CHARACTERS:
        raise RowProblem(
            "over-long text", f"{where}: the text has {len(text)} characters (limit {MAX_TEXT_CHARACTERS})"
        )


def split_wound_metadata(root, seed=0, fractions=(0.7, 0.15, 0.15)):
    """Write ``metadata_{train,dev,test}.csv`` from ``metadata.csv`` (shuffled with ``seed``), as the original."""
    root = Path(root)
    table = read_csv_as_text(root / "metadata.csv")
    order = np.random.default_rng(seed).permutation(len(table))
    ends = np.cumsum([int(round(f * len(table))) for f in fractions[:2]])
    for split, rows in zip(SPLITS, np.split(order, ends), strict=True):
        table.iloc[rows].to_csv(root / f"metadata_{split}.csv", index=False)


def read_wound_split(root, split, on_error="raise"):
    """Rows ``(image_path, text, type, severity)`` of one Wound split, with a `TableReport`.

    Raises:
        DataError: a missing column (named), or a bad row (file and line) unless ``on_error="skip"``.
    """
    root = Path(root)
    csv = root / f"metadata_{split}.csv"
    if not csv.is_file() and (root / "metadata.csv").is_file():
        split_wound_metadata(root)
    table = read_csv_as_text(csv)
    path_column = next((c for c in ("file_path", "img_path") if c in table.columns), None)
    missing = [c for c in WOUND_COLUMNS if c not in table.columns] + (
        [] if path_column else ["file_path (or img_path)"]
    )
    if missing:
        raise DataError(f"{csv}: missing column(s) {', '.join(missing)}; it has {', '.join(table.columns)}")

    def parse(row):
        image = root / row[path_column]
        check_image_file(image)
        _check_text(row["description"], "description")
        return str(image), row["description"], row["type"], row["severity"]

    return check_rows(table, csv, parse, on_error)


def read_medpix_split(root, split, on_error="raise"):
    """Rows ``(image_path, caption, modality, location)`` of one MedPix split, with a `TableReport`."""
    root = Path(root)
    path = root / "splitted_dataset" / f"descriptions_{split}.jsonl"
    if not path.is_file():
        raise DataError(f"MedPix file not found: {path}")
    records = []
    for line, text in enumerate(path.read_text().splitlines(), start=1):
        if text.strip():
            try:
                records.append(json.loads(text))
            except json.JSONDecodeError as error:
                raise DataError(f"{path}, line {line}: not JSON ({error})") from None
    table = pd.DataFrame({"record": records})

    def parse(row):
        record = row["record"]
        missing = [k for k in ("image", "Type", "Location Category", "Description") if k not in record]
        if missing:
            raise RowProblem("missing key", f"missing key(s) {', '.join(missing)}")
        caption = record["Description"].get("Caption", "") if isinstance(record["Description"], dict) else ""
        _check_text(caption, "Description.Caption")
        for value, known, key in (
            (record["Type"], MEDPIX_MODALITY, "Type"),
            (record["Location Category"], MEDPIX_LOCATION, "Location Category"),
        ):
            if value not in known:
                raise RowProblem("unknown label", f"{key} {value!r} is not one of {sorted(known)}")
        image = root / "images" / f"{record['image']}.png"
        check_image_file(image)
        return str(image), caption, record["Type"], record["Location Category"]

    rows, report = check_rows(table, path, parse, on_error)
    return rows, report


def label_maps(train_rows, other_splits):
    """Per task, ``{value: index}`` of the sorted unique training values; refuses unseen dev/test labels.

    Example:

    >>> label_maps([("a", "t", "x", "lo"), ("b", "t", "y", "hi")], {})
    [{'x': 0, 'y': 1}, {'hi': 0, 'lo': 1}]
    """
    maps = [
        {value: index for index, value in enumerate(sorted({row[2 + task] for row in train_rows}))} for task in (0, 1)
    ]
    for split, rows in other_splits.items():
        for task, mapping in enumerate(maps):
            unseen = sorted({row[2 + task] for row in rows} - set(mapping))
            if unseen:
                raise DataError(f"The {split} split has task-{task + 1} labels unseen in train: {unseen}")
    return maps


def encode(rows, maps):
    """``(paths, texts, labels_task1, labels_task2)`` arrays of parsed rows."""
    paths, texts = [r[0] for r in rows], [r[1] for r in rows]
    labels = [np.array([maps[task][r[2 + task]] for r in rows], "int32") for task in (0, 1)]
    return paths, texts, labels[0], labels[1]

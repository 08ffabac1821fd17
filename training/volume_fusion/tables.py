"""Labels and metadata of the volume-fusion system: an Excel workbook (the original's layout) or any CSV.

The original reads one sheet per split ("2year model" for training, "2 year FU model" for
validation and test) with the columns Study number, Side (l/r), Age, Gender, Treatment, Luxation
and THP (the 0/1 target), and finds each row's volume as ``img<study>_annotation-<side>.nii(.gz)``
in the image folder. The metadata vector is ``[Age, Gender, Treatment, Luxation]`` with Gender
m=0 / f=1 (the original's reading of Gender took a pandas Series instead of its value: fixed here).
Other tables map their columns with `Columns`; a ``path`` column may name the volume files instead.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from training.data.tables import DataError, RowProblem, check_rows, read_csv_as_text
from training.data.volumes import NIFTI_SUFFIXES

TRAIN_SHEET = "2year model"
EVAL_SHEET = "2 year FU model"
GENDER_CODES = {"m": 0.0, "male": 0.0, "0": 0.0, "f": 1.0, "female": 1.0, "1": 1.0}


@dataclasses.dataclass(frozen=True)
class Columns:
    """Which table columns hold what (defaults: the original workbook's names).

    Args:
        study, side, target: the study number, l/r side and 0/1 target columns.
        metadata: the metadata columns, in the model's order.
        gender: the metadata column coded m=0 / f=1 (``None``: none is).
        path: a column of volume file paths (relative to the image folder); when set, study and
            side only name the row.
    """

    study: str = "Study number"
    side: str = "Side"
    target: str = "THP"
    metadata: tuple = ("Age", "Gender", "Treatment", "Luxation")
    gender: str | None = "Gender"
    path: str | None = None

    def required(self):
        return [c for c in (self.study, self.side, self.target, *self.metadata, self.path) if c]


def volume_name(study, side, suffix=".nii.gz"):
    """The original's file name of a study's volume.

    Example:

    >>> volume_name("17", "l")
    'img17_annotation-l.nii.gz'
    """
    return f"img{study}_annotation-{side}{suffix}"


def read_sheet(path, sheet=None):
    """Every cell of one sheet of a workbook (``.xlsx``), or of a CSV file, as strings.

    Raises:
        DataError: missing file, missing sheet (the message lists the sheets), unreadable file.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_csv_as_text(path)
    if not path.is_file():
        raise DataError(f"Workbook not found: {path}")
    try:
        workbook = pd.ExcelFile(path)
    except Exception as error:  # openpyxl raises many types for broken files
        raise DataError(f"Cannot read workbook {path}: {error}") from None
    sheet = sheet if sheet is not None else workbook.sheet_names[0]
    if sheet not in workbook.sheet_names:
        raise DataError(f"{path} has no sheet {sheet!r}; its sheets are {workbook.sheet_names}")
    frame = workbook.parse(sheet, dtype=str, keep_default_na=False)
    return frame.map(lambda value: value.strip() if isinstance(value, str) else value)


def _number(value, column):
    try:
        number = float(value)
    except ValueError:
        raise RowProblem("non-numeric metadata", f"column {column!r} holds {value!r}, not a number") from None
    if not np.isfinite(number):
        raise RowProblem("non-numeric metadata", f"column {column!r} holds {value!r}")
    return number


def _find_volume(image_dir, columns, record):
    if columns.path:
        path = Path(image_dir) / record[columns.path]
        if not path.is_file():
            raise RowProblem("missing volume", f"volume not found: {path}")
        return path
    for suffix in NIFTI_SUFFIXES:
        path = Path(image_dir) / volume_name(record[columns.study], record[columns.side], suffix)
        if path.is_file():
            return path
    expected = Path(image_dir) / volume_name(record[columns.study], record[columns.side], ".nii(.gz)")
    raise RowProblem("missing volume", f"no volume for study {record[columns.study]!r}: {expected} not found")


def parse_row(record, image_dir, columns):
    """One row as ``{study, side, path, target, <metadata>...}``; `RowProblem` for a bad row."""
    side = record[columns.side].lower()
    if not columns.path and side not in ("l", "r"):
        raise RowProblem("bad side", f"column {columns.side!r} holds {record[columns.side]!r}; expected l or r")
    target = record[columns.target]
    if target not in ("0", "1", "0.0", "1.0"):
        raise RowProblem("bad target", f"target column {columns.target!r} holds {target!r}; expected 0 or 1")
    row = {"study": record[columns.study], "side": side, "target": int(float(target))}
    for column in columns.metadata:
        value = record[column]
        if column == columns.gender:
            if value.lower() not in GENDER_CODES:
                raise RowProblem("bad gender", f"column {column!r} holds {value!r}; expected m/f (or 0/1)")
            row[column] = GENDER_CODES[value.lower()]
        else:
            row[column] = _number(value, column)
    row["path"] = str(_find_volume(image_dir, columns, record))
    return row


def load_table(path, image_dir, sheet=None, columns=Columns(), on_error="raise"):
    """The checked rows of one split: a DataFrame, the `TableReport` and the unused volume files.

    Args:
        path: an ``.xlsx`` workbook or a ``.csv`` file.
        image_dir: the folder of the volumes.
        sheet: the workbook's sheet (default: the first); ignored for CSV.
        columns: the `Columns` mapping.
        on_error: "raise" a `DataError` naming file, sheet and row, or "skip" bad rows and count them.

    Returns:
        ``(table, report, unused)``: ``unused`` lists volumes in ``image_dir`` that no row of this
        table names (normal when splits share a folder; reported, not an error).

    Raises:
        DataError: missing file, sheet or columns, a bad row (with "raise"), or no usable rows.
    """
    raw = read_sheet(path, sheet)
    source = f"{path}" + (f", sheet {sheet!r}" if sheet and Path(path).suffix.lower() != ".csv" else "")
    missing = [column for column in columns.required() if column not in raw.columns]
    if missing:
        raise DataError(f"{source} lacks the column(s) {missing}; its columns are {list(raw.columns)}")
    if columns.gender and columns.gender not in columns.metadata:
        raise DataError(
            f"--gender_column {columns.gender!r} is not one of the metadata columns {list(columns.metadata)}"
        )
    rows, report = check_rows(raw, source, lambda record: parse_row(record, image_dir, columns), on_error)
    if not rows:
        raise DataError(f"{source}: no usable rows (skipped: {report.as_dict()['skipped']})")
    table = pd.DataFrame(rows)
    named = {Path(p).name for p in table["path"]}
    unused = sorted(
        p.name for p in Path(image_dir).iterdir() if p.name.endswith(NIFTI_SUFFIXES) and p.name not in named
    )
    return table, report, unused

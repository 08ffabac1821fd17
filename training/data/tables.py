"""Reading tables row by row with errors that name the file and line at fault.

Every system reads its spreadsheet (CSV now; Excel and JSONL with the systems that use them) the
same way: each row is parsed by a system-specific function that raises `RowProblem` for a bad
row; `check_rows` then either stops at the first one with a `DataError` naming the file and line,
or skips it and counts it in a `TableReport`.
"""

import dataclasses
from pathlib import Path

import pandas as pd
from PIL import Image


class DataError(ValueError):
    """A dataset problem, with the file and row at fault in the message."""


class RowProblem(Exception):
    """A bad row: ``reason`` (a short category for the report) and ``detail`` (for the message)."""

    def __init__(self, reason, detail):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclasses.dataclass
class TableReport:
    """What reading a table found: rows kept and, per reason, the lines skipped."""

    csv: str
    rows_read: int = 0
    rows_kept: int = 0
    skipped: dict = dataclasses.field(default_factory=dict)

    def add_problem(self, reason, line):
        self.skipped.setdefault(reason, []).append(line)

    def as_dict(self):
        return {
            "csv": self.csv,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "skipped": {reason: len(lines) for reason, lines in self.skipped.items()},
            "skipped_lines": {reason: lines[:20] for reason, lines in self.skipped.items()},
        }


def read_csv_as_text(csv_path):
    """Every cell of a CSV file as a string (empty cells as ``""``).

    Raises:
        DataError: the file is missing or cannot be parsed (the message names it).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"CSV file not found: {csv_path}")
    try:
        return pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise DataError(f"Cannot parse CSV {csv_path}: {error}") from error


def check_rows(raw, source, parse_row, on_error="raise"):
    """Parse every row of ``raw`` with ``parse_row``, stopping at or skipping bad rows.

    Args:
        raw: DataFrame read from ``source`` (its first data row is line 2, after the header).
        source: the file name used in messages and in the report.
        parse_row: function of one row (a pandas Series) returning the parsed row, raising
            `RowProblem` for a bad one.
        on_error: ``"raise"`` a `DataError` naming the file and line, or ``"skip"`` and count.

    Returns:
        ``(rows, report)``: the parsed rows in order and a `TableReport`.

    Example:

    >>> raw = pd.DataFrame({"age": ["3", "x", "5"]})
    >>> def parse(row):
    ...     if not row["age"].isdigit():
    ...         raise RowProblem("bad age", f"age {row['age']!r} is not a number")
    ...     return int(row["age"])
    >>> rows, report = check_rows(raw, "ages.csv", parse, on_error="skip")
    >>> rows, report.skipped
    ([3, 5], {'bad age': [3]})
    >>> check_rows(raw, "ages.csv", parse)
    Traceback (most recent call last):
    training.data.tables.DataError: ages.csv, line 3: age 'x' is not a number
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"`on_error` must be 'raise' or 'skip'; got {on_error!r}.")
    report = TableReport(csv=str(source), rows_read=len(raw))
    rows = []
    for index, (_, record) in enumerate(raw.iterrows()):
        line = index + 2  # the header is line 1
        try:
            rows.append(parse_row(record))
        except RowProblem as problem:
            if on_error == "raise":
                raise DataError(f"{source}, line {line}: {problem.detail}") from None
            report.add_problem(problem.reason, line)
    report.rows_kept = len(rows)
    return rows, report


def check_image_file(path, formats=("PNG", "JPEG")):
    """Raise `RowProblem` unless ``path`` is a complete image in one of ``formats``.

    PNG's ``verify()`` checks every chunk's CRC; for JPEG it checks nothing, so JPEGs are decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise RowProblem("missing image", f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image_format = image.format
            image.verify() if image_format == "PNG" else image.load()
    except Exception as error:  # PIL raises many types for broken files
        raise RowProblem("unreadable image", f"unreadable image {path}: {error}") from None
    if image_format not in formats:
        raise RowProblem("unreadable image", f"image {path} is {image_format}; the pipeline reads {', '.join(formats)}")

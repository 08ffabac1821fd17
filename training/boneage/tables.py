"""Read bone-age CSVs of any known layout into one checked schema.

The schema has one row per image: ``id`` (str), ``path`` (image file), ``boneage`` (months, float)
and ``male`` (1.0 male, 0.0 female). Known layouts:

- ``rsna_train``: the RSNA Pediatric Bone Age training file: ``id``, ``boneage``, ``male``;
- ``rsna_val``: the RSNA validation file: ``Image ID``, ``male``, ``Bone Age (months)``;
- ``rsna_test``: the RSNA test file: ``Case ID``, ``Sex`` (M/F), ``Ground truth bone age (months)``;
- ``original``: the original project's CSVs: ``filename``, ``boneage``, ``gender`` (string), ``id``.

Any other CSV works through explicit column names. Every problem (missing column, missing or
negative age, unknown sex code, missing or unreadable image) raises `DataError` naming the file
and CSV line, or, with ``on_error="skip"``, drops the row and counts it in the report.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from training.data.tables import DataError, RowProblem, check_image_file, check_rows, read_csv_as_text

LAYOUTS = {
    "rsna_train": {"id": "id", "boneage": "boneage", "sex": "male"},
    "rsna_val": {"id": "Image ID", "boneage": "Bone Age (months)", "sex": "male"},
    "rsna_test": {"id": "Case ID", "boneage": "Ground truth bone age (months)", "sex": "Sex"},
    "original": {"id": "id", "boneage": "boneage", "sex": "gender", "filename": "filename"},
}
MAX_AGE_MONTHS = 240.0
_MALE = {"1", "1.0", "true", "m", "male"}
_FEMALE = {"0", "0.0", "false", "f", "female"}


def detect_layout(columns, require_age=True):
    """The name of the known layout whose columns are all present, else ``None``.

    With ``require_age=False`` the bone-age column may be absent (unlabelled sets).
    """
    for name in ("original", "rsna_test", "rsna_val", "rsna_train"):
        needed = {key: column for key, column in LAYOUTS[name].items() if require_age or key != "boneage"}
        if set(needed.values()) <= set(columns):
            return name
    return None


def read_table(
    csv_path,
    image_dir,
    layout="auto",
    id_column=None,
    age_column=None,
    sex_column=None,
    filename_column=None,
    image_extension=".png",
    on_error="raise",
    check_images=True,
    require_age=True,
    default_sex=None,
):
    """Read, normalise and check one bone-age CSV.

    Args:
        csv_path: the CSV file.
        image_dir: folder holding the images.
        layout: ``"auto"`` (detect from the columns), a key of `LAYOUTS`, or ``"custom"``.
        id_column, age_column, sex_column, filename_column: column names that override the layout's
            (all but ``filename_column`` are required for ``"custom"``). Without a filename column the
            image is ``<id><image_extension>``.
        image_extension: extension added to ids.
        on_error: ``"raise"`` (default) or ``"skip"`` bad rows and count them in the report.
        check_images: open every image header to catch unreadable files before training.
        require_age: ``False`` for unlabelled prediction sets (the age column or values may be missing).
        default_sex: sex code used for every row when the CSV has no sex column (or to override it).

    Returns:
        ``(table, report)``: a DataFrame with columns ``id``, ``path``, ``boneage``, ``male`` and a
        `TableReport`.

    Example:

    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("L", (8, 8)).save(folder / "7.png")
    >>> _ = (folder / "t.csv").write_text(
    ...     "Case ID,Sex,Ground truth bone age (months)\\n7,F,120\\n8,M,96\\n")
    >>> table, report = read_table(folder / "t.csv", folder, on_error="skip")
    >>> table[["id", "boneage", "male"]].values.tolist(), report.skipped
    ([['7', 120.0, 0.0]], {'missing image': [3]})
    """
    csv_path, image_dir = Path(csv_path), Path(image_dir)
    raw = read_csv_as_text(csv_path)
    columns = _resolve_columns(
        csv_path, raw.columns, layout, id_column, age_column, sex_column, filename_column, require_age, default_sex
    )
    if default_sex is not None:
        raw["__default_sex__"], columns["sex"] = str(default_sex), "__default_sex__"
    if "boneage" not in columns:
        raw["__no_age__"], columns["boneage"] = "", "__no_age__"
    rows, report = check_rows(
        raw,
        csv_path,
        lambda record: _parse_row(record, columns, image_dir, image_extension, check_images, require_age),
        on_error,
    )
    table = pd.DataFrame(rows, columns=["id", "path", "boneage", "male"])
    if table.empty:
        raise DataError(f"{csv_path}: no usable rows ({report.as_dict()['skipped']}).")
    return table, report


def _resolve_columns(
    csv_path, available, layout, id_column, age_column, sex_column, filename_column, require_age, default_sex
):
    if layout == "auto":
        layout = detect_layout(available, require_age)
        if layout is None and not (id_column or filename_column) and not (age_column and sex_column):
            raise DataError(
                f"{csv_path}: unknown CSV layout (columns {list(available)}). Known layouts: "
                + "; ".join(f"{name}: {sorted(cols.values())}" for name, cols in LAYOUTS.items())
                + ". Or name the columns with id/age/sex/filename column options."
            )
    if layout not in (None, "custom") and layout not in LAYOUTS:
        raise ValueError(f"Unknown layout '{layout}'. Choose one of: auto, custom, {', '.join(LAYOUTS)}.")
    columns = dict(LAYOUTS.get(layout, {}))
    overrides = {"id": id_column, "boneage": age_column, "sex": sex_column, "filename": filename_column}
    columns.update({key: value for key, value in overrides.items() if value})
    if not require_age and columns.get("boneage") not in available:
        columns.pop("boneage", None)
    if default_sex is not None:
        columns.pop("sex", None)
    needed = [key for key in ("sex", "boneage") if key not in columns]
    needed = [
        key
        for key in needed
        if not (key == "boneage" and not require_age) and not (key == "sex" and default_sex is not None)
    ]
    if "id" not in columns and "filename" not in columns:
        needed.append("id or filename")
    if needed:
        raise DataError(f"{csv_path}: say which column holds {', '.join(needed)} (layout '{layout}').")
    missing = [name for name in columns.values() if name not in available]
    if missing:
        raise DataError(f"{csv_path}: missing column(s) {missing}; the file has {list(available)}.")
    return columns


def _parse_row(record, columns, image_dir, image_extension, check_images, require_age):
    identifier = record[columns["id"]].strip() if "id" in columns else ""
    filename = record[columns["filename"]].strip() if "filename" in columns else f"{identifier}{image_extension}"
    identifier = identifier or Path(filename).stem
    if not filename or filename == image_extension:
        raise RowProblem("missing image", "empty image name")
    age = _parse_age(record[columns["boneage"]], require_age)
    try:
        male = parse_sex(record[columns["sex"]])
    except DataError as error:
        raise RowProblem("unknown sex", str(error)) from None
    path = image_dir / filename
    if check_images:
        check_image_file(path)
    elif not path.is_file():
        raise RowProblem("missing image", f"image not found: {path}")
    return identifier, str(path), age, male


def _parse_age(text, require_age):
    text = text.strip()
    if not text:
        if require_age:
            raise RowProblem("missing age", "empty bone age")
        return float("nan")
    try:
        age = float(text)
    except ValueError:
        raise RowProblem("bad age", f"bone age {text!r} is not a number") from None
    if not np.isfinite(age) and require_age:
        raise RowProblem("missing age", f"bone age is {text!r}")
    if age < 0 or age > MAX_AGE_MONTHS:
        raise RowProblem("bad age", f"bone age {age} months is outside [0, {MAX_AGE_MONTHS:g}]")
    return age


def parse_sex(value):
    """1.0 for male codes (``True``, ``1``, ``M``, ``male``), 0.0 for female ones; else `DataError`.

    Example:

    >>> parse_sex("M"), parse_sex("False"), parse_sex("female")
    (1.0, 0.0, 0.0)
    """
    code = str(value).strip().lower()
    if code in _MALE:
        return 1.0
    if code in _FEMALE:
        return 0.0
    raise DataError(f"unknown sex code {value!r} (expected M/F, male/female, True/False or 1/0)")

"""Writing results safely: plain JSON types, atomic JSON and CSV files."""

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def to_builtin(value):
    """Recursively convert NumPy scalars/arrays and paths to plain JSON types (NaN becomes None)."""
    if isinstance(value, dict):
        return {str(key): to_builtin(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_builtin(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path, payload):
    """Write ``payload`` as JSON atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(to_builtin(payload), handle, indent=2, allow_nan=False)
    os.replace(handle.name, path)


def write_csv(path, frame):
    """Write a DataFrame as CSV atomically."""
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", newline="") as handle:
        frame.to_csv(handle, index=False)
    os.replace(handle.name, path)

"""Predict implant length and diameter: ``python -m training.implant_dimensions.predict --model best.keras
--json entries.json [--image_root DIR] --output predictions.csv`` (console script ``predict-implant-dimensions``).

The JSON file has the training format; entries need ``image`` and ``company`` (the folder of the
image), and the sizes, if present, are copied next to the predictions. Each row gets the predicted
sizes in mm and the model's mean attention weight per source.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from modeling.implant_dimensions import DIMENSIONS, TARGETS
from training.cli import exit_on_user_errors, load_saved_model
from training.data.tables import DataError, RowProblem, check_image_file
from training.implant_dimensions.data import make_dataset, sanitize_company
from training.results import write_csv


def read_images(json_path, image_root=None):
    """``path`` and ``company`` (and any sizes) of every entry; a missing image is a `DataError`."""
    json_path = Path(json_path)
    try:
        entries = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"Cannot read JSON {json_path}: {error}") from None
    root = Path(image_root) if image_root else json_path.parent
    rows = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "image" not in entry or "company" not in entry:
            raise DataError(f"{json_path}, entry {index}: needs 'image' and 'company'.")
        path = root / sanitize_company(entry["company"]) / Path(str(entry["image"])).name
        try:
            check_image_file(path)
        except RowProblem as problem:
            raise DataError(f"{json_path}, entry {index}: {problem.detail}") from None
        rows.append(
            {"path": str(path), **{k: entry[k] for k in ("company", "model", "length", "diameter") if k in entry}}
        )
    return pd.DataFrame(rows)


def predict(model, table, batch_size=32):
    """``table`` with ``predicted_<target>`` and ``attention_<output>_<i>`` columns."""
    image_size = model.input.shape[1]
    predicted = model.predict(make_dataset(table, image_size, batch_size), verbose=0)
    width = predicted[DIMENSIONS].shape[-1]
    targets = TARGETS["both"] if width == 2 else ("dimension",)  # a one-target model (--task length|diameter)
    out = table.copy()
    for i, target in enumerate(targets):
        out[f"predicted_{target}"] = predicted[DIMENSIONS][:, i]
    for name, weights in predicted.items():
        if name != DIMENSIONS:
            for i in range(np.shape(weights)[1]):
                out[f"{name}_{i}"] = np.asarray(weights)[:, i]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="predict-implant-dimensions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="best.keras of a training run")
    parser.add_argument("--json", required=True)
    parser.add_argument("--image_root")
    parser.add_argument("--output", default="predictions.csv")
    args = parser.parse_args(argv)
    with exit_on_user_errors():
        model = load_saved_model(args.model)
        table = predict(model, read_images(args.json, args.image_root))
        write_csv(args.output, table)
        print(f"{len(table)} predictions written to {args.output}")
    return table


if __name__ == "__main__":
    main()

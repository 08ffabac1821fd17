"""Implant length and diameter MAE on the embedded dataset, CPU preset, in the shape of the seed's table.

``python benchmarks/implant_dimensions.py [--epochs N] [--output_dir DIR]``: the default command first
(dual embeddings, triple attention, both embedding classifiers pretrained), then, on the same
pretrained embedding models, the other regressors: no embeddings (`implant_dimensions/baseline`),
company embedding only, dual embeddings with the dual, hierarchical and no attention, and the
baseline and the default model with the original's loss (MSE in mm; the CPU preset scales each
target by its standard deviation). Test MAE per target next to two references computed from the
labels (the training mean; each implant model's training median, i.e. knowing the model exactly) and
the error floor of the phantom's label noise; the margin of the dual model (triple attention, the
default) over the no-embedding baseline for the preset's seed and, with the same pretrained
embedding models, for ``--extra_seeds`` (default 7 8: those two regressors again); the machine and
its load average.
Writes ``benchmarks/results/implant_dimensions.json``. Not a test: it takes minutes.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from training.implant_dimensions.config import ImplantConfig
from training.implant_dimensions.phantom import error_floor
from training.implant_dimensions.train import train
from training.results import write_json

TARGETS = ("length", "diameter")
RESULTS = Path(__file__).resolve().parent / "results" / "implant_dimensions.json"
# (row of the table, config overrides); the first is the default command, pretraining included
RUNS = (
    ("Dual embeddings, triple attention (default)", {"embeddings": "dual", "attention_type": "triple"}),
    ("Baseline (no embeddings)", {"embeddings": "none"}),
    ("Company embedding only", {"embeddings": "company"}),
    ("Dual embeddings, dual attention", {"embeddings": "dual", "attention_type": "dual"}),
    ("Dual embeddings, hierarchical attention", {"embeddings": "dual", "attention_type": "hierarchical"}),
    ("Dual embeddings, no attention", {"embeddings": "dual", "attention_type": "none"}),
    ("Baseline (no embeddings), MSE in mm", {"embeddings": "none", "loss": "mse"}),
    ("Dual embeddings, triple attention, MSE in mm", {"embeddings": "dual", "attention_type": "triple", "loss": "mse"}),
)


def label_references(data_dir):
    """Test MAE of predicting the training mean, and of each implant model's training median."""
    train, test = (pd.DataFrame(json.loads((data_dir / f"{s}.json").read_text())) for s in ("train", "test"))
    medians = train.groupby("model")[list(TARGETS)].median()
    return {
        "training mean": {t: float((test[t] - train[t].mean()).abs().mean()) for t in TARGETS},
        "model median": {t: float((test[t] - test["model"].map(medians[t])).abs().mean()) for t in TARGETS},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, help="regressor epochs (default: the CPU preset's)")
    parser.add_argument(
        "--extra_seeds", type=int, nargs="*", default=[7, 8], help="seeds of extra baseline and default runs"
    )
    parser.add_argument("--output_dir", default="runs/benchmark_implant_dimensions")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    load_before, started = os.getloadavg(), time.time()
    common = {"epochs": args.epochs} if args.epochs else {}
    preset = ImplantConfig.from_preset("cpu")
    preset_seed, data_dir = preset.seed, Path(preset.data_dir)
    plan = [(name, overrides, preset_seed) for name, overrides in RUNS]
    plan += [(name, overrides, seed) for seed in args.extra_seeds for name, overrides in RUNS[:2]]
    rows, pretrained = [], {}
    for index, (name, overrides, seed) in enumerate(plan):
        folder = Path(args.output_dir) / f"run_{index}"
        config = ImplantConfig.from_preset(
            "cpu", output_dir=str(folder), overwrite=True, seed=seed, **common, **pretrained, **overrides
        )
        results = train(config)
        if index == 0:  # the later runs start from the default command's pretrained embedding models
            pretrained = {
                f"{kind}_checkpoint": str(folder / f"embedding_{kind}.keras") for kind in ("company", "model")
            }
            default = {"wall_seconds": results["wall_seconds"], "load_average_after": list(os.getloadavg())}
        rows.append(
            {
                "model": name,
                **overrides,
                "seed": seed,
                **{f"{split}_{t}_mae": results[f"{split}_{t}_mae"] for split in ("val", "test") for t in TARGETS},
                "wall_seconds": results["wall_seconds"],
            }
        )
    floor = error_floor(data_dir / "test.json")
    references = label_references(data_dir)
    margins = {}  # seed -> baseline MAE - default dual MAE, per target (positive: the dual is better)
    for seed in (preset_seed, *args.extra_seeds):
        by_name = {row["model"]: row for row in rows if row["seed"] == seed}
        dual, baseline = by_name[RUNS[0][0]], by_name[RUNS[1][0]]
        margins[str(seed)] = {t: baseline[f"test_{t}_mae"] - dual[f"test_{t}_mae"] for t in TARGETS}
    summary = {
        "rows": rows,
        "error_floor_test": floor,
        "label_references_test": references,
        "margin_dual_over_baseline_mm": margins[str(preset_seed)],
        "margin_by_seed_mm": margins,
        "mean_margin_mm": {t: float(np.mean([m[t] for m in margins.values()])) for t in TARGETS},
        "default_command": default,
        "epochs": args.epochs or preset.epochs,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "wall_seconds": round(time.time() - started, 1),
    }
    write_json(args.output, summary)
    print("| model | seed | length MAE (mm) | diameter MAE (mm) |\n|---|---|---|---|")
    mean, median = references["training mean"], references["model median"]
    print(f"| Predicting the training mean | - | {mean['length']:.2f} | {mean['diameter']:.2f} |")
    for row in rows:
        print(f"| {row['model']} | {row['seed']} | {row['test_length_mae']:.2f} | {row['test_diameter_mae']:.2f} |")
    print(
        f"| Knowing the implant model (its training median) | - | {median['length']:.2f} | {median['diameter']:.2f} |"
    )
    print(f"| Error floor (label noise) | - | {floor['length']:.2f} | {floor['diameter']:.2f} |")
    print("Margin of the default dual model over the baseline (mm), by seed:", margins)
    print(f"Machine: {summary['machine']}; load {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}; {args.output}")


if __name__ == "__main__":
    main()

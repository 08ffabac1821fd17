"""Implant length and diameter MAE on the embedded dataset, CPU preset, in the shape of the seed's table.

``python benchmarks/implant_dimensions.py [--epochs N] [--output_dir DIR]``: the default command first
(dual embeddings, triple attention, both embedding classifiers pretrained), then, on the same
pretrained embedding models, the other regressors: no embeddings (`implant_dimensions/baseline`),
company embedding only, dual embeddings with the dual, hierarchical and no attention, and the
baseline and the default model with the original's loss (MSE in mm; the CPU preset scales each
target by its standard deviation). Test MAE per target next to two references computed from the
labels (the training mean; each implant model's training median, i.e. knowing the model exactly) and
two from the generator (the size in pixels read exactly, without the implant's identity; the error
floor of the label noise); the margin of the dual model (triple attention, the default) over the
no-embedding baseline, on validation and test, for the preset's seed and, with the same pretrained
embedding models, for ``--extra_seeds`` (default 7 8: those two regressors again) and for
``--long_epochs`` regressor epochs (default 30: those two again, the preset's seed); the machine and
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
from training.implant_dimensions.phantom import references
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


def margin(rows, dual_name, baseline_name, split, seed=None):
    """Baseline MAE minus dual MAE per target on ``split`` (of ``seed``'s rows, or the only ones named so)."""
    by_name = {row["model"]: row for row in rows if seed is None or row["seed"] == seed}
    dual, baseline = by_name[dual_name], by_name[baseline_name]
    return {t: baseline[f"{split}_{t}_mae"] - dual[f"{split}_{t}_mae"] for t in TARGETS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, help="regressor epochs (default: the CPU preset's)")
    parser.add_argument(
        "--extra_seeds", type=int, nargs="*", default=[7, 8], help="seeds of extra baseline and default runs"
    )
    parser.add_argument(
        "--long_epochs", type=int, default=30, help="the baseline and the default again, this long (0: not)"
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
    long = args.long_epochs
    if long:  # unfreezing at the same fractions of the epochs as the preset
        schedule = {"epochs": long}
        for name in ("unfreeze_epoch", "full_unfreeze_epoch"):
            schedule[name] = max(1, round(getattr(preset, name) / preset.epochs * long))
        plan += [(f"{name}, {long} epochs", {**overrides, **schedule}, preset_seed) for name, overrides in RUNS[:2]]
    rows, pretrained = [], {}
    for index, (name, overrides, seed) in enumerate(plan):
        folder = Path(args.output_dir) / f"run_{index}"
        settings = {**common, **pretrained, **overrides}
        config = ImplantConfig.from_preset("cpu", output_dir=str(folder), overwrite=True, seed=seed, **settings)
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
    generator = references(data_dir / "test.json")
    labels = label_references(data_dir)
    # baseline MAE - default dual MAE per split and target (positive: the dual is better)
    margins, long_margin = {}, {}
    for split in ("val", "test"):
        margins[split] = {
            str(seed): margin(rows, RUNS[0][0], RUNS[1][0], split, seed) for seed in (preset_seed, *args.extra_seeds)
        }
        if long:
            long_margin[split] = margin(rows, f"{RUNS[0][0]}, {long} epochs", f"{RUNS[1][0]}, {long} epochs", split)
    summary = {
        "rows": rows,
        "error_floor_test": generator["error_floor"],
        "size_in_pixels_test": generator["size_in_pixels"],
        "label_references_test": labels,
        "margin_dual_over_baseline_mm": margins["test"][str(preset_seed)],
        "margin_by_seed_mm": margins,
        "margin_long_epochs_mm": long_margin,
        "long_epochs": long,
        "mean_margin_mm": {
            split: {t: float(np.mean([m[t] for m in by_seed.values()])) for t in TARGETS}
            for split, by_seed in margins.items()
        },
        "default_command": default,
        "epochs": args.epochs or preset.epochs,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "wall_seconds": round(time.time() - started, 1),
    }
    write_json(args.output, summary)
    print("| model | seed | length MAE (mm) | diameter MAE (mm) |\n|---|---|---|---|")
    mean, median = labels["training mean"], labels["model median"]
    floor, pixels = generator["error_floor"], generator["size_in_pixels"]
    print(f"| Predicting the training mean | - | {mean['length']:.2f} | {mean['diameter']:.2f} |")
    for row in rows:
        print(f"| {row['model']} | {row['seed']} | {row['test_length_mae']:.2f} | {row['test_diameter_mae']:.2f} |")
    print(
        f"| Knowing the implant model (its training median) | - | {median['length']:.2f} | {median['diameter']:.2f} |"
    )
    print(f"| Reading the size in pixels exactly | - | {pixels['length']:.2f} | {pixels['diameter']:.2f} |")
    print(f"| Error floor (label noise) | - | {floor['length']:.2f} | {floor['diameter']:.2f} |")
    print("Margin of the default dual model over the baseline (mm), by split and seed:", margins)
    if long:
        print(f"The same at {long} epochs (seed {preset_seed}):", long_margin)
    print(f"Machine: {summary['machine']}; load {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}; {args.output}")


if __name__ == "__main__":
    main()

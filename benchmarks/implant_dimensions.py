"""Implant length and diameter MAE on the embedded dataset, CPU preset, in the shape of the seed's table.

``python benchmarks/implant_dimensions.py [--epochs N] [--output_dir DIR]``: the default command first
(dual embeddings, triple attention, both embedding classifiers pretrained), then, on the same
pretrained embedding models, the other regressors: no embeddings (`implant_dimensions/baseline`),
company embedding only, and dual embeddings with the dual, hierarchical and no attention. Test MAE
per target next to the error floor of the phantom's label noise; the margin of the dual model
(triple attention, the default) over the no-embedding baseline; the machine and its load average.
Writes ``benchmarks/results/implant_dimensions.json``. Not a test: it takes minutes.
"""

import argparse
import os
import platform
import time
from pathlib import Path

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
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, help="regressor epochs (default: the CPU preset's)")
    parser.add_argument("--output_dir", default="runs/benchmark_implant_dimensions")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    load_before, started = os.getloadavg(), time.time()
    common = {"epochs": args.epochs} if args.epochs else {}
    rows, pretrained = [], {}
    for index, (name, overrides) in enumerate(RUNS):
        folder = Path(args.output_dir) / f"run_{index}"
        config = ImplantConfig.from_preset(
            "cpu", output_dir=str(folder), overwrite=True, **common, **pretrained, **overrides
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
                **{f"{split}_{t}_mae": results[f"{split}_{t}_mae"] for split in ("val", "test") for t in TARGETS},
                "wall_seconds": results["wall_seconds"],
            }
        )
    floor = error_floor(Path(ImplantConfig().data_dir) / "test.json")
    by_name = {row["model"]: row for row in rows}
    dual, baseline = by_name[RUNS[0][0]], by_name[RUNS[1][0]]
    summary = {
        "rows": rows,
        "error_floor_test": floor,
        "margin_dual_over_baseline_mm": {t: baseline[f"test_{t}_mae"] - dual[f"test_{t}_mae"] for t in TARGETS},
        "default_command": default,
        "epochs": args.epochs or ImplantConfig().epochs,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "wall_seconds": round(time.time() - started, 1),
    }
    write_json(args.output, summary)
    print("| model | length MAE (mm) | diameter MAE (mm) |\n|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['test_length_mae']:.2f} | {row['test_diameter_mae']:.2f} |")
    print(f"| Error floor (label noise) | {floor['length']:.2f} | {floor['diameter']:.2f} |")
    print("Margin of the default dual model over the baseline (mm):", summary["margin_dual_over_baseline_mm"])
    print(f"Machine: {summary['machine']}; load {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}; {args.output}")


if __name__ == "__main__":
    main()

"""Volume-fusion benchmark on the embedded synthetic hips: the reference's results-table columns (a script, not a test).

``python benchmarks/volume_fusion_results.py [--columns ...] [train flags]``

Trains each column of the original's results table with the CPU preset (plus any extra
``train-volume-fusion`` flags): FeatureFusion, LearnedFeatureFusion (both with the original
training function's BCE, pos_weight 3), metadata only, fusion + focal loss and image only + focal
loss, and reports their seven test metrics at threshold 0.5, next to the generator's oracle ROC-AUCs
(the best possible reader of the metadata, of the image severity, and of both). Writes
``benchmarks/results/volume_fusion_results.json`` and prints a Markdown table. On a shared machine
the wall times are upper bounds.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

from training.results import write_json
from training.volume_fusion import phantom
from training.volume_fusion import train as train_volume_fusion
from training.volume_fusion.data import DEFAULT_PHANTOM_DIR

COLUMNS = {
    "FeatureFusion": ["--model", "feature_fusion", "--loss", "bce"],
    "LearnedFeatureFusion": ["--model", "learned_feature_fusion", "--loss", "bce"],
    "Non-image only": ["--model", "metadata_only", "--loss", "bce"],
    "Fusion + focal loss": ["--model", "learned_feature_fusion", "--loss", "focal"],
    "Image only + focal loss": ["--model", "image_only", "--loss", "focal"],
}
METRICS = ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc", "pr_auc")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--columns", default=",".join(COLUMNS), help="comma-separated column names")
    parser.add_argument("--output_root", default="runs/volume_fusion_benchmark")
    args, extra = parser.parse_known_args()
    manifest = phantom.ensure_dataset(DEFAULT_PHANTOM_DIR)
    rows = {}
    for column in args.columns.split(","):
        slug = column.lower().replace(" ", "_").replace("+", "plus").replace("-", "_")
        started = time.time()
        results = train_volume_fusion.run(
            [*COLUMNS[column], "--output_dir", str(Path(args.output_root) / slug), "--overwrite", *extra]
        )
        rows[column] = {m: results["test"][m] for m in METRICS} | {
            "val_roc_auc": results["val"]["roc_auc"],
            "best_epoch": results["best_epoch"],
            "wall_seconds": round(time.time() - started, 1),
        }
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores ({platform.processor() or 'unknown CPU'}), "
        "shared with other jobs: wall times are upper bounds",
        "extra_flags": extra,
        "oracle_auc_test": manifest["oracle_auc"]["test"],
        "columns": rows,
    }
    fusion = rows.get("Fusion + focal loss", {}).get("roc_auc")
    singles = [rows.get(c, {}).get("roc_auc") for c in ("Non-image only", "Image only + focal loss")]
    if fusion is not None and None not in singles:
        report["fusion_auc_margin_over_best_single_source"] = round(fusion - max(singles), 4)
    Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
    write_json("benchmarks/results/volume_fusion_results.json", report)
    print(json.dumps(report, indent=2))
    print("\n| metric | " + " | ".join(rows) + " |\n|---|" + "---|" * len(rows))
    for metric in (*METRICS, "wall_seconds"):
        cells = [rows[c][metric] for c in rows]
        print(f"| {metric} | " + " | ".join("n/a" if v is None else f"{v:.4f}" for v in cells) + " |")


if __name__ == "__main__":
    main()

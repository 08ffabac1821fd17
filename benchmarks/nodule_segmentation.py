"""Nodule-segmentation acceptance benchmark on the embedded synthetic DRRs (a script, not a test).

``python benchmarks/nodule_segmentation.py [--models improved,lightweight] [train flags]``

Trains each model with the CPU preset (same data, split, image size and time budget; extra
``train-nodule-segmentation`` flags apply to all; the lightweight "before" model keeps the original's
fusion, ``ORIGINAL_FUSION``) and reports its wall time, test Dice and the
analyser's alignment figures next to the seed's targets: attention-GT overlap > 0.6,
segmentation-GT overlap > 0.4, attention-segmentation correlation > 0.3 and attention-GT distance
< 50 px at 512 px scale. Writes ``benchmarks/results/nodule_segmentation.json`` and prints a
Markdown table. On a shared machine the wall times are upper bounds.
"""

import argparse
import os
import platform
from pathlib import Path

import keras

from training.nodule_segmentation import train as train_module
from training.results import write_json

TARGETS = {
    "attention_gt_overlap": ("> 0.6", lambda v: v > 0.6),
    "segmentation_gt_overlap": ("> 0.4", lambda v: v > 0.4),
    "attention_segmentation_correlation": ("> 0.3", lambda v: v > 0.3),
    "attention_gt_distance_px_at_512": ("< 50", lambda v: v < 50),
}
# the "before" model keeps the original's fusion (the CPU preset's max pooling, alpha 1.0 and
# detached map are for the supervised attention)
ORIGINAL_FUSION = {"lightweight": ["--alpha", "0.1", "--attention_pooling", "bilinear"]}
SHOWN = ("dice", "iou", "hd95", "attention_gt_correlation", "attention_min", "attention_max")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="improved,lightweight")
    parser.add_argument("--output_root", default="runs/benchmark_nodule_segmentation")
    args, extra = parser.parse_known_args(argv)
    rows, load_before = {}, list(os.getloadavg())
    for model_type in args.models.split(","):
        flags = ["--model_type", model_type, "--output_dir", f"{args.output_root}/{model_type}", "--overwrite"]
        flags += [*ORIGINAL_FUSION.get(model_type, []), *extra]
        results = train_module.run(flags)
        test = results.get("test") or results["val"]
        rows[model_type] = {
            "model_flags": ORIGINAL_FUSION.get(model_type, []),
            "wall_seconds": results["wall_seconds"],
            "epochs_trained": results["epochs_trained"],
            **{key: test.get(key) for key in (*TARGETS, *SHOWN)},
            "targets_met": {
                key: bool(test.get(key) is not None and check(test[key])) for key, (_, check) in TARGETS.items()
            },
        }
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores visible, {platform.platform()}",
        "backend": keras.backend.backend(),
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "flags": extra,
        "models": rows,
    }
    write_json(Path("benchmarks/results/nodule_segmentation.json"), report)
    columns = ("wall_seconds", "epochs_trained", "dice", *TARGETS, "attention_min", "attention_max")
    print("| model | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    print("| seed target | | | | " + " | ".join(text for text, _ in TARGETS.values()) + " | | |")
    for name, row in rows.items():
        cells = [f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"load average after: {report['load_average_after']}")


if __name__ == "__main__":
    main()

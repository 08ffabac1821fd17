"""Image + text fusion benchmark on the embedded synthetic wounds (a script, not a test).

``python benchmarks/image_text_fusion.py [--fusion_types ...] [--loss_types ...] [--teacher_epochs N]
[--student_epochs N] [--samples N]``

At CPU scale (the ``cpu`` preset's small backbones) it measures:

1. every fusion type trains (teacher, then a student distilled with ``combined``), and the best
   fusion against the single-modality baselines (the same command with the caption, or the image,
   blanked: ``--modalities image|text``) on task 2 (severity), which needs both modalities;
2. the ``cross_attention`` student distilled from its teacher against the same student trained
   without the teacher (``vanilla`` with ``alpha = beta = 0``: the two cross-entropies only);
3. the fusion type x loss table (each extra loss reuses its fusion type's teacher).

Runs go to ``--output_root``; ``benchmarks/results/image_text_fusion.json`` is rewritten after every
run (machine, load average, settings, each run's metrics and wall time), so a partial benchmark
still reports. On a shared machine the wall times are upper bounds.
"""

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import pandas as pd

from modeling.fusion import FUSION_LAYERS
from modeling.losses.distillation import LOSS_DEFAULTS
from training.image_text_fusion.config import FusionConfig
from training.image_text_fusion.sweep import markdown_table, table_row
from training.image_text_fusion.train import train
from training.results import write_json

RESULTS = Path(__file__).parent / "results" / "image_text_fusion.json"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fusion_types",
        default=",".join(["cross_attention", *(f for f in FUSION_LAYERS if f != "cross_attention")]),
        help="comma-separated; the first is the reference of (1) and (2) and the row of (3)",
    )
    parser.add_argument("--loss_types", default=",".join(LOSS_DEFAULTS), help="for cross_attention's row of (3)")
    parser.add_argument("--teacher_epochs", type=int, default=FusionConfig.teacher_epochs)
    parser.add_argument("--student_epochs", type=int, default=FusionConfig.student_epochs)
    parser.add_argument("--samples", type=int, default=FusionConfig.samples)
    parser.add_argument("--output_root", default="runs/image_text_fusion_benchmark")
    args = parser.parse_args()
    settings = dict(teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs, samples=args.samples)
    base = FusionConfig(verbose=0, overwrite=True, **settings)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores ({platform.processor() or 'unknown CPU'}), "
        "shared with other jobs: wall times are upper bounds",
        "load_average_before": list(os.getloadavg()),
        "settings": settings,
        "runs": {},
    }

    def run(name, **changes):
        started = time.time()
        config = dataclasses.replace(base, output_dir=str(Path(args.output_root) / name), **changes)
        results = train(config)
        report["runs"][name] = {
            "changes": changes,
            "teacher": table_row({"student": results["teacher"]}),
            "student": table_row(results),
            "dev_mean_macro_f1": results["dev_mean_macro_f1"],
            "wall_seconds": round(time.time() - started, 1),
            "load_average_after": list(os.getloadavg()),
        }
        write_json(RESULTS, report)
        return str(Path(config.output_dir) / "teacher.keras")

    fusion_types = args.fusion_types.split(",")
    teachers = {fusion_types[0]: run(f"{fusion_types[0]}-combined", fusion_type=fusion_types[0])}
    for modality in ("image", "text"):
        run(f"{modality}_only", fusion_type=fusion_types[0], modalities=modality)
    no_teacher = dict(loss_type="vanilla", alpha=0.0, beta=0.0, teacher_model=teachers[fusion_types[0]])
    run(f"{fusion_types[0]}-no_teacher", fusion_type=fusion_types[0], **no_teacher)
    for loss_type in args.loss_types.split(","):
        if loss_type != "combined":
            teacher = teachers[fusion_types[0]]
            run(
                f"{fusion_types[0]}-{loss_type}",
                fusion_type=fusion_types[0],
                loss_type=loss_type,
                teacher_model=teacher,
            )

    for fusion_type in fusion_types[1:]:
        teachers[fusion_type] = run(f"{fusion_type}-combined", fusion_type=fusion_type)
    summarise(report, fusion_types[0])
    write_json(RESULTS, report)
    for name, table in report["tables"].items():
        print(f"\n{name}\n{table}")


def summarise(report, reference):
    """The best fusion type, its margins over the single-modality baselines and the distillation gain
    (severity macro F1 of the students), and a Markdown table of every run, into ``report``."""
    runs = report["runs"]
    rows = [
        {"Run": name, "Model": model, **values[model]}
        for name, values in runs.items()
        for model in ("teacher", "student")
    ]
    fusion = {n: v for n, v in runs.items() if n.endswith("-combined")}
    best = max(fusion, key=lambda n: runs[n]["student"]["test_severity_f1"])
    single = {m: runs[f"{m}_only"]["student"]["test_severity_f1"] for m in ("image", "text") if f"{m}_only" in runs}
    report["best_fusion"] = best
    report["severity_f1_margin_over_single_modality"] = {
        m: runs[best]["student"]["test_severity_f1"] - value for m, value in single.items()
    }
    if f"{reference}-no_teacher" in runs:
        report["distillation_gain_severity_f1"] = (
            runs[f"{reference}-combined"]["student"]["test_severity_f1"]
            - runs[f"{reference}-no_teacher"]["student"]["test_severity_f1"]
        )
    report["tables"] = {"all runs (test split)": markdown_table(pd.DataFrame(rows))}


if __name__ == "__main__":
    main()

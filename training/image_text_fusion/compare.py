"""McNemar tests between two runs' test predictions, and the sweep over fusion types x losses.

``python -m training.image_text_fusion.compare RUN_A RUN_B`` prints, per task, the exact McNemar
test of the two selected students' test predictions (both runs must use the same test split).
``sweep(base_config, fusion_types, loss_types)`` trains one run per pair under
``<output_dir>/<fusion>-<loss>`` and writes ``sweep.csv`` in the shape of the seed's tables.
"""

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from training.image_text_fusion.metrics import mcnemar
from training.results import write_csv

TASK_KEYS = (("logits_modality", "labels_task1"), ("logits_location", "labels_task2"))


def compare_runs(run_a, run_b):
    """Per task, `mcnemar` of the two runs' test correctness (refuses different test labels)."""
    a, b = (np.load(Path(run) / "test_predictions.npz") for run in (run_a, run_b))
    results = {}
    for index, (logits, labels) in enumerate(TASK_KEYS, start=1):
        if not np.array_equal(a[labels], b[labels]):
            raise ValueError(f"The runs {run_a} and {run_b} have different test labels for task {index}.")
        results[f"task{index}"] = mcnemar(a[logits].argmax(-1) == a[labels], b[logits].argmax(-1) == b[labels])
    return results


def sweep(base_config, fusion_types, loss_types, train_function=None):
    """Train every (fusion, loss) pair; returns and writes the table (acc, F1, AUC per task)."""
    from training.image_text_fusion.train import train

    train_function = train_function or train
    rows = []
    for fusion_type in fusion_types:
        for loss_type in loss_types:
            folder = Path(base_config.output_dir) / f"{fusion_type}-{loss_type}"
            config = dataclasses.replace(
                base_config, fusion_type=fusion_type, loss_type=loss_type, output_dir=str(folder)
            )
            results = train_function(config)
            row = {"fusion": fusion_type, "loss": loss_type}
            for task, metrics in results["student"].items():
                row.update({f"{task}_{key}": metrics[key] for key in ("accuracy", "macro_f1", "auc_ovr")})
            rows.append(row)
    table = pd.DataFrame(rows)
    Path(base_config.output_dir).mkdir(parents=True, exist_ok=True)
    write_csv(Path(base_config.output_dir) / "sweep.csv", table)
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description="McNemar tests between two runs' test predictions")
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    args = parser.parse_args(argv)
    print(json.dumps(compare_runs(args.run_a, args.run_b), indent=1))


if __name__ == "__main__":
    main()

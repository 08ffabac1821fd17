"""McNemar tests between two runs' test predictions.

``python -m training.image_text_fusion.compare RUN_A RUN_B`` prints, per task, the exact McNemar
test of the two selected students' test predictions (both runs must use the same test split).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from training.image_text_fusion.metrics import mcnemar

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


def main(argv=None):
    parser = argparse.ArgumentParser(description="McNemar tests between two runs' test predictions")
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    args = parser.parse_args(argv)
    print(json.dumps(compare_runs(args.run_a, args.run_b), indent=1))


if __name__ == "__main__":
    main()

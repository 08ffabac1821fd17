"""How sure is the dual model's margin? Paired bootstrap over the entries of `implant_dimensions.py`'s runs.

``python -m benchmarks.implant_margin_bootstrap [--runs_dir runs/benchmark_implant_dimensions]`` (from the
repository root, after `python benchmarks/implant_dimensions.py`) reads
``benchmarks/results/implant_dimensions.json`` (which run folder holds which model and seed), predicts
the validation and test splits with each pair's ``best.keras`` (the default dual model and the
no-embedding baseline, same seed and epochs), and resamples the entries with replacement
(``--resamples`` times, the same entries for both models): the 95 % interval of the baseline's MAE
minus the dual model's, per split and target, and the share of resamples where the dual is not better;
and the same for each entry's margin averaged over the seeds.
Writes ``benchmarks/results/implant_margin_bootstrap.json``. Not a test: it loads a dozen models.
"""

import argparse
import json
from pathlib import Path

import keras
import numpy as np

from benchmarks.implant_dimensions import RESULTS, RUNS, TARGETS
from training.implant_dimensions.config import ImplantConfig
from training.implant_dimensions.predict import predict, read_images
from training.results import write_json

OUTPUT = RESULTS.parent / "implant_margin_bootstrap.json"


def absolute_errors(model, images):
    """Per entry and target, |predicted - labelled| in mm (rows in the order of ``images``)."""
    table = predict(model, images)
    return np.stack([np.abs(table[f"predicted_{t}"] - table[t]).to_numpy() for t in TARGETS], axis=1)


def margin_interval(differences, resamples, seed=0):
    """Mean of ``differences`` (per entry and target: baseline error - dual error), its 95 % bootstrap
    interval over the entries, and the share of resamples where it is <= 0 (the dual not better).

    Example:

    >>> margin_interval(np.array([[1.0, 0.0], [1.0, 0.0]]), resamples=10)["length"]
    {'margin': 1.0, 'low': 1.0, 'high': 1.0, 'share_not_better': 0.0}
    """
    rng = np.random.default_rng(seed)
    count = len(differences)
    means = np.stack([differences[rng.integers(count, size=count)].mean(0) for _ in range(resamples)])
    return {
        target: {
            "margin": float(differences[:, i].mean()),
            "low": float(np.percentile(means[:, i], 2.5)),
            "high": float(np.percentile(means[:, i], 97.5)),
            "share_not_better": float(np.mean(means[:, i] <= 0)),
        }
        for i, target in enumerate(TARGETS)
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs_dir", default="runs/benchmark_implant_dimensions")
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args(argv)
    benchmark = json.loads(RESULTS.read_text())
    data_dir = Path(ImplantConfig.from_preset("cpu").data_dir)
    folders = {(row["model"], row["seed"]): Path(args.runs_dir) / f"run_{i}" for i, row in enumerate(benchmark["rows"])}
    dual_name, baseline_name = RUNS[0][0], RUNS[1][0]
    pairs = {str(seed): (dual_name, baseline_name, seed) for name, seed in folders if name == dual_name}
    if benchmark.get("long_epochs"):
        suffix, seed = f", {benchmark['long_epochs']} epochs", benchmark["rows"][0]["seed"]
        pairs[f"{seed}{suffix}"] = (dual_name + suffix, baseline_name + suffix, seed)
    summary = {"pairs": {}, "resamples": args.resamples, "entries": {}}
    seed_differences = {"val": [], "test": []}
    images = {split: read_images(data_dir / f"{split}.json") for split in ("val", "test")}
    for label, (dual, baseline, seed) in pairs.items():
        summary["pairs"][label] = {}
        dual_model, baseline_model = (
            keras.saving.load_model(folders[(name, seed)] / "best.keras", safe_mode=True) for name in (dual, baseline)
        )
        for split in ("val", "test"):
            differences = absolute_errors(baseline_model, images[split]) - absolute_errors(dual_model, images[split])
            summary["entries"][split] = len(differences)
            summary["pairs"][label][split] = margin_interval(differences, args.resamples)
            if label == str(seed):
                seed_differences[split].append(differences)
            print(label, split, json.dumps(summary["pairs"][label][split]))
    # each entry's margin averaged over the seeds, resampled over the entries
    summary["mean_over_seeds"] = {
        split: margin_interval(np.mean(differences, axis=0), args.resamples)
        for split, differences in seed_differences.items()
    }
    print("mean over seeds", json.dumps(summary["mean_over_seeds"]))
    write_json(args.output, summary)


if __name__ == "__main__":
    main()

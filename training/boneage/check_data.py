"""Report the quality of a bone-age dataset before training (the original's NaN check).

``python -m training.boneage.check_data --data_dir DIR`` (or the per-split ``--train_csv`` ... flags).
Every split is read with bad rows skipped and counted; the report gives rows kept and skipped per
reason (with CSV line numbers), age statistics, the sex balance and a sample of image sizes. It
is printed and written to ``--report`` as JSON. Exit status 1 when any row was bad.
"""

import argparse
import sys

import numpy as np
from PIL import Image

from training.boneage.data_sources import add_data_arguments, load_splits
from training.data.tables import DataError
from training.results import write_json


def summarise(split, sample_images=20, seed=42):
    """Plain-type summary of one checked split."""
    table = split.table
    ages = table["boneage"].to_numpy(dtype=float)
    sample = table.sample(min(sample_images, len(table)), random_state=seed)
    sizes = []
    for path in sample["path"]:
        with Image.open(path) as image:
            sizes.append((image.width, image.height, image.mode))
    return {
        **split.report.as_dict(),
        "image_dir": str(split.image_dir),
        "boneage_months": {
            "mean": float(np.mean(ages)),
            "std": float(np.std(ages, ddof=1)) if len(ages) > 1 else None,
            "min": float(np.min(ages)),
            "max": float(np.max(ages)),
        },
        "male_fraction": float(table["male"].mean()),
        "sampled_image_sizes": sorted({f"{w}x{h} {mode}" for w, h, mode in sizes}),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="check-boneage-data", description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--report", default="data_report.json")
    args = parser.parse_args(argv)
    args.on_bad_rows = "skip"
    names = [name for name in ("train", "val", "test") if args.data_dir or getattr(args, f"{name}_csv")]
    if not names:
        parser.error("pass --data_dir or at least one --<split>_csv")
    try:
        splits = load_splits(args, names)
    except DataError as error:
        raise SystemExit(f"Data error: {error}") from None
    report = {name: summarise(split) for name, split in splits.items()}
    write_json(args.report, report)
    bad = 0
    for name, summary in report.items():
        skipped = summary["skipped"]
        bad += sum(skipped.values())
        ages = summary["boneage_months"]
        print(
            f"{name}: {summary['rows_kept']}/{summary['rows_read']} rows usable; skipped {skipped or 'none'}; "
            f"age {ages['mean']:.1f} +- {ages['std'] or 0:.1f} months [{ages['min']:.1f}, {ages['max']:.1f}]; "
            f"male {summary['male_fraction']:.0%}; sizes {summary['sampled_image_sizes']}"
        )
        for reason, lines in summary["skipped_lines"].items():
            print(f"  {reason}: CSV lines {lines}")
    print(f"Report: {args.report}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: write a synthetic bone-age dataset (see training.boneage.phantom).

Example:
    python -m training.boneage.make_phantom --out data/phantom --n_train 800 --seed 42
"""

from __future__ import annotations

import argparse
import sys
import time

from training.boneage import phantom


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def build_parser():
    """Argument parser of the phantom generator CLI."""
    parser = argparse.ArgumentParser(
        prog="python -m training.boneage.make_phantom",
        description="Write a deterministic synthetic hand-radiograph dataset in the RSNA Pediatric Bone Age layout.",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--n_train", type=_int_at_least(1), default=800, help="training images")
    parser.add_argument("--n_val", type=_int_at_least(1), default=200, help="validation images")
    parser.add_argument("--n_test", type=_int_at_least(1), default=200, help="test images")
    parser.add_argument(
        "--img_size", type=_int_at_least(phantom.MIN_IMG_SIZE), default=128, help="image side in pixels"
    )
    parser.add_argument("--seed", type=_int_at_least(0), default=42, help="dataset seed")
    parser.add_argument(
        "--workers", type=_int_at_least(1), default=2, help="rendering processes (does not change the output)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing phantom dataset at --out")
    return parser


def main(argv=None):
    """Run the CLI.

    Args:
        argv: Argument list without the program name; defaults to sys.argv[1:].

    Returns:
        0 on success. Bad arguments exit with status 2, a refused output
        directory with status 1.
    """
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        manifest = phantom.make_dataset(
            args.out,
            n_train=args.n_train,
            n_val=args.n_val,
            n_test=args.n_test,
            img_size=args.img_size,
            seed=args.seed,
            overwrite=args.overwrite,
            workers=args.workers,
        )
    except FileExistsError as exc:
        print(f"make_phantom: error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    splits = manifest["splits"]
    counts = ", ".join(f"{name} {splits[name]['count']}" for name in phantom.SPLITS)
    total = sum(s["count"] for s in splits.values())
    print(f"wrote {total} images ({counts}) at {args.img_size}px in {elapsed:.1f}s ({total / elapsed:.0f} images/s)")
    print(
        f"error floor (Bayes-optimal reader MAE): {manifest['error_floor_mae_months']:.2f} months "
        f"(expected {manifest['error_floor_expected_mae_months']:.2f})"
    )
    print(f"dataset: {args.out} (manifest.json, masks/, {phantom.TRUTH_CSV})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

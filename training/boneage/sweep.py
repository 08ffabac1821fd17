"""Train over several backbones and write one comparison table (the original's run_all_backbones.py).

`sweep(config, backbones)`, and the command ``python -m training.boneage.sweep --backbones mobilenet_v2,resnet50v2 [any train-boneage flag]``

Each backbone trains in this process with the other flags unchanged, into
``<sweep_dir>/<model_type>_<backbone>``; a backbone whose run already finished is read back, not
retrained. The table (``comparison.csv`` and ``comparison.json``) is sorted by validation MAE.
"""

import argparse
import dataclasses
import json
from pathlib import Path

import keras
import pandas as pd

from modeling.backbones import BACKBONE_MAP
from training.boneage.train import parse_args, train
from training.cli import ConfigError, exit_on_user_errors
from training.results import write_csv, write_json

COLUMNS = (
    "val_mae_months",
    "test_mae_months",
    "test_rmse_months",
    "test_correlation",
    "test_mae_months_tta",
    "epochs_trained",
    "wall_seconds",
)


def sweep(config, backbones, sweep_dir="runs/sweep"):
    """Train ``config`` once per backbone and return the comparison table (sorted by validation MAE).

    Args:
        config: a `BoneAgeConfig`; its ``backbone`` and ``output_dir`` are replaced per run.
        backbones: names from `modeling.backbones.BACKBONE_MAP`.
        sweep_dir: each run goes to ``<sweep_dir>/<model_type>_<backbone>``; the table to
            ``comparison.csv`` and ``comparison.json``. A finished run is read back, not retrained.

    Returns:
        A DataFrame with one row per backbone.
    """
    unknown = [name for name in backbones if name not in BACKBONE_MAP]
    if unknown or not backbones:
        raise ConfigError(f"unknown backbone(s) {unknown}; choose from {', '.join(BACKBONE_MAP)}")
    rows = []
    for backbone in backbones:
        output_dir = Path(sweep_dir) / f"{config.model_type}_{backbone}"
        results_path = output_dir / "results.json"
        if results_path.exists():
            print(f"{backbone}: already trained, reading {results_path}")
            results = json.loads(results_path.read_text())
        else:
            print(f"=== {backbone} ===")
            keras.backend.clear_session()
            results = train(dataclasses.replace(config, backbone=backbone, output_dir=str(output_dir)))
        rows.append(
            {"backbone": backbone, "model_type": config.model_type, **{key: results.get(key) for key in COLUMNS}}
        )
    table = pd.DataFrame(rows).sort_values("val_mae_months")
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    write_csv(Path(sweep_dir) / "comparison.csv", table)
    write_json(Path(sweep_dir) / "comparison.json", table.to_dict(orient="records"))
    print(table.to_string(index=False))
    return table


def run(argv=None):
    """The command: ``--backbones`` and ``--sweep_dir``, every other flag as for ``train-boneage``."""
    parser = argparse.ArgumentParser(prog="sweep-boneage", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--backbones", required=True, help=f"comma-separated names from: {', '.join(BACKBONE_MAP)}")
    parser.add_argument("--sweep_dir", default="runs/sweep")
    args, train_argv = parser.parse_known_args(argv)
    if any(flag.startswith(("--backbone=", "--output_dir")) or flag == "--backbone" for flag in train_argv):
        parser.error("--backbone and --output_dir are set by the sweep")
    config = parse_args(train_argv)
    with exit_on_user_errors():
        return sweep(config, [name.strip() for name in args.backbones.split(",") if name.strip()], args.sweep_dir)


def main(argv=None):
    """Console entry point: `run` without returning its result (a non-None return is an exit status)."""
    run(argv)


if __name__ == "__main__":
    main()

"""Train over several backbones and write one comparison table (the original's run_all_backbones.py).

``python -m training.sweep --backbones mobilenet_v2,resnet50v2 [any train_boneage flag]``

Each backbone trains in this process with the other flags unchanged, into
``<sweep_dir>/<model_type>_<backbone>``; a backbone whose run already finished is read back, not
retrained. The table (``comparison.csv`` and ``comparison.json``) is sorted by validation MAE.
"""

import argparse
import json
from pathlib import Path

import keras
import pandas as pd

from modeling.backbones import BACKBONE_MAP
from training.boneage import train as train_boneage
from training.results import write_csv, write_json

COLUMNS = ("val_mae_months", "test_mae_months", "test_rmse_months", "test_correlation", "test_mae_months_tta", "epochs_trained", "wall_seconds")


def run(argv=None):
    parser = argparse.ArgumentParser(prog="sweep-boneage", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--backbones", required=True, help=f"comma-separated names from: {', '.join(BACKBONE_MAP)}")
    parser.add_argument("--sweep_dir", default="runs/sweep")
    args, train_argv = parser.parse_known_args(argv)
    backbones = [name.strip() for name in args.backbones.split(",") if name.strip()]
    unknown = [name for name in backbones if name not in BACKBONE_MAP]
    if unknown or not backbones:
        parser.error(f"unknown backbone(s) {unknown}; choose from {', '.join(BACKBONE_MAP)}")
    if any(flag.startswith(("--backbone=", "--output_dir")) or flag == "--backbone" for flag in train_argv):
        parser.error("--backbone and --output_dir are set by the sweep")
    model_type = train_boneage.parse_args(train_argv).model_type
    rows = []
    for backbone in backbones:
        output_dir = Path(args.sweep_dir) / f"{model_type}_{backbone}"
        results_path = output_dir / "results.json"
        if results_path.exists():
            print(f"{backbone}: already trained, reading {results_path}")
            results = json.loads(results_path.read_text())
        else:
            print(f"=== {backbone} ===")
            keras.backend.clear_session()
            results = train_boneage.run([*train_argv, "--backbone", backbone, "--output_dir", str(output_dir)])
        rows.append({"backbone": backbone, "model_type": model_type, **{key: results.get(key) for key in COLUMNS}})
    table = pd.DataFrame(rows).sort_values("val_mae_months")
    Path(args.sweep_dir).mkdir(parents=True, exist_ok=True)
    write_csv(Path(args.sweep_dir) / "comparison.csv", table)
    write_json(Path(args.sweep_dir) / "comparison.json", table.to_dict(orient="records"))
    print(table.to_string(index=False))
    return table


def main(argv=None):
    """Console entry point: `run` without returning its result (a non-None return is an exit status)."""
    run(argv)


if __name__ == "__main__":
    main()

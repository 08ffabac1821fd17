"""Sweep fusion types x distillation losses; one comparison table in the shape of the seed's tables.

``python -m training.image_text_fusion.sweep --fusion_types cross_attention,film --loss_types vanilla,rkd``
trains one run per pair under ``<output_dir>/<fusion>-<loss>`` (the teacher depends on the fusion
type only: it is trained once per fusion type and reused for the other losses) and writes
``sweep.csv`` and ``sweep.md``: per run the selected student's test accuracy, macro F1 and
one-vs-rest AUC of both tasks (``test_type_acc``, ``test_severity_acc``, ... on Wound;
``test_modality_*``, ``test_location_*`` on MedPix), the best value of each column in bold.

Example:

>>> print(markdown_table(pd.DataFrame({"fusion": ["film", "gated"], "test_t_acc": [0.5, 0.75]})))
| fusion | test_t_acc |
|---|---:|
| film | 0.500 |
| gated | **0.750** |
"""

import dataclasses
from pathlib import Path

import pandas as pd

from modeling.fusion import FUSION_LAYERS
from modeling.losses.distillation import LOSS_DEFAULTS
from training.cli import exit_on_user_errors
from training.image_text_fusion.train import command_parser, config_from_args, train
from training.results import write_csv

METRICS = (("accuracy", "acc"), ("macro_f1", "f1"), ("auc_ovr", "auc"))


def table_row(results, **keys):
    """``keys`` + the seed's columns ``test_<task>_<acc|f1|auc>`` of a run's results (the student's)."""
    row = dict(keys)
    for metric, short in METRICS:
        row.update({f"test_{task}_{short}": values[metric] for task, values in results["student"].items()})
    return row


def markdown_table(table):
    """A Markdown table: text columns left, numbers to 3 decimals with each column's best in bold (n/a: none)."""
    table = table.astype(object).where(table.notna(), None)
    numeric = [c for c in table.columns if all(pd.api.types.is_number(v) for v in table[c] if v is not None)]
    best = {c: max((v for v in table[c] if v is not None), default=None) for c in numeric}
    lines = ["| " + " | ".join(table.columns) + " |"]
    lines.append("|" + "|".join("---:" if column in numeric else "---" for column in table.columns) + "|")
    for _, row in table.iterrows():
        cells = []
        for column, value in row.items():
            if value is None:
                cells.append("n/a")
            elif column not in numeric:
                cells.append(str(value))
            else:
                cells.append(f"**{value:.3f}**" if value == best[column] else f"{value:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_tables(table, folder, name):
    """``<folder>/<name>.csv`` and ``<folder>/<name>.md``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / f"{name}.csv", table)
    (folder / f"{name}.md").write_text(markdown_table(table) + "\n")


def sweep(base_config, fusion_types, loss_types, train_function=None):
    """Train every (fusion type, loss) pair of ``base_config``; returns the table (also written).

    Args:
        base_config: a `FusionConfig`; its ``output_dir`` holds one folder per pair and the tables.
        fusion_types, loss_types: names (see `FUSION_LAYERS`, `LOSS_DEFAULTS`).
        train_function: `train` (default) or a stand-in with its signature.
    """
    train_function = train_function or train
    rows = []
    for fusion_type in fusion_types:
        teacher = base_config.teacher_model
        for loss_type in loss_types:
            folder = Path(base_config.output_dir) / f"{fusion_type}-{loss_type}"
            config = dataclasses.replace(
                base_config, fusion_type=fusion_type, loss_type=loss_type, output_dir=str(folder), teacher_model=teacher
            )
            rows.append(table_row(train_function(config), **{"Fusion Type": fusion_type, "Loss": loss_type}))
            teacher = teacher or str(folder / "teacher.keras")
    table = pd.DataFrame(rows)
    write_tables(table, base_config.output_dir, "sweep")
    return table


def main(argv=None):
    """The command: `training.image_text_fusion.train`'s flags plus ``--fusion_types`` and ``--loss_types``."""
    parser = command_parser(__doc__.splitlines()[0])
    parser.add_argument("--fusion_types", default=",".join(FUSION_LAYERS), help="comma-separated (default: all nine)")
    parser.add_argument("--loss_types", default=",".join(LOSS_DEFAULTS), help="comma-separated (default: all five)")
    parser.set_defaults(output_dir="runs/image_text_fusion_sweep")
    args = parser.parse_args(argv)
    with exit_on_user_errors():
        config = config_from_args(args, own=("fusion_types", "loss_types"))
        fusion_types = [
            dataclasses.replace(config, fusion_type=f).validated().fusion_type for f in args.fusion_types.split(",")
        ]
        losses = [
            dataclasses.replace(config, loss_type=loss).validated().loss_type for loss in args.loss_types.split(",")
        ]
        table = sweep(config, fusion_types, losses)
    print(markdown_table(table))
    return table


if __name__ == "__main__":
    main()

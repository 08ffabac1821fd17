"""Re-evaluate a saved model on a labelled set: the same metrics, CSV and plots as training.

`evaluate(model_path, csv, ...)`, and the command ``python -m training.boneage.evaluate --model runs/boneage_cpu/best.keras --csv TEST.csv --image_dir DIR``
(the original's ``test_saved_model.py``). Writes ``evaluation.json``, ``predictions.csv`` and the
agreement plots into ``--output_dir`` (default: beside the model).
"""

import argparse
from pathlib import Path

import modeling  # noqa: F401  (registers the custom layers for loading)
from training.boneage.data_sources import add_column_arguments, column_options
from training.boneage.evaluation import agreement_figures, predictions_table, regression_metrics
from training.boneage.predict import predict_months
from training.boneage.tables import read_table
from training.cli import exit_on_user_errors, load_saved_model
from training.results import write_csv, write_json


def evaluate(
    model_path, csv, image_dir=None, use_tta=False, tta_steps=8, batch_size=32, seed=42, output_dir=None, columns=None
):
    """Metrics in months of a saved model on a labelled CSV; writes JSON, predictions and plots.

    Args:
        model_path: a ``best.keras`` written by `training.boneage.train.train`.
        csv: labelled CSV (RSNA, original or custom layout).
        image_dir: image folder (default: the CSV's folder).
        use_tta, tta_steps: also report test-time-augmented metrics with this many views.
        batch_size, seed: prediction batch size and the TTA views' seed.
        output_dir: where ``evaluation.json``, ``evaluation_predictions.csv`` and the plots go
            (default: the model's folder).
        columns: `training.boneage.tables.read_table` options (``layout``, ``age_column``, ...).

    Returns:
        The metrics written to ``evaluation.json``.
    """
    model = load_saved_model(model_path)
    table, report = read_table(csv, image_dir or Path(csv).parent, **(columns or {}))
    predicted, predicted_tta = predict_months(model, table, batch_size, tta_steps if use_tta else 0, seed)
    results = regression_metrics(table["boneage"], predicted, table["male"], prefix="test_")
    if predicted_tta is not None:
        tta = regression_metrics(table["boneage"], predicted_tta, prefix="test_")
        results.update({f"{key}_tta": value for key, value in tta.items() if key != "test_n"})
    results.update({"model": str(model_path), "csv": str(csv), "report": report.as_dict()})
    output_dir = Path(output_dir or Path(model_path).parent)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / "evaluation.json", results)
    write_csv(output_dir / "evaluation_predictions.csv", predictions_table(table, predicted, predicted_tta))
    for figure, kind in zip(
        agreement_figures(table["boneage"], predicted, "evaluation"),
        ("predicted_vs_true", "bland_altman"),
        strict=False,
    ):
        figure.savefig(output_dir / f"evaluation_{kind}.png", dpi=100)
    print(
        f"MAE {results['test_mae_months']:.2f} months, RMSE {results['test_rmse_months']:.2f}, "
        f"r {results['test_correlation']:.3f} on {results['test_n']} images -> {output_dir / 'evaluation.json'}"
    )
    return results


def run(argv=None):
    """The command ``evaluate-boneage``: the flags of `evaluate`."""
    parser = argparse.ArgumentParser(prog="evaluate-boneage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a best.keras written by train-boneage")
    parser.add_argument("--csv", required=True, help="labelled CSV (RSNA, original or custom layout)")
    parser.add_argument("--image_dir", help="image folder (default: the CSV's folder)")
    add_column_arguments(parser)
    parser.add_argument("--use_tta", action="store_true")
    parser.add_argument("--tta_steps", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output_dir", help="default: the model's folder")
    args = parser.parse_args(argv)
    with exit_on_user_errors():
        return evaluate(
            args.model,
            args.csv,
            args.image_dir,
            args.use_tta,
            args.tta_steps,
            args.batch_size,
            args.seed,
            args.output_dir,
            column_options(args),
        )


def main(argv=None):
    """Console entry point: `run` without returning its result (a non-None return is an exit status)."""
    run(argv)


if __name__ == "__main__":
    main()

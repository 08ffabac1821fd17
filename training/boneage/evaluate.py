"""Re-evaluate a saved model on a labelled set: the same metrics, CSV and plots as training.

``python -m training.evaluate --model runs/boneage_cpu/best.keras --csv TEST.csv --image_dir DIR``
(the original's ``test_saved_model.py``). Writes ``evaluation.json``, ``predictions.csv`` and the
agreement plots into ``--output_dir`` (default: beside the model).
"""

import argparse
from pathlib import Path

import keras

import modeling  # noqa: F401  (registers the custom layers for loading)
from training.boneage.data_sources import add_column_arguments, column_options
from training.boneage.predict import predict_months
from training.boneage.evaluation import agreement_figures, predictions_table, regression_metrics
from training.results import write_csv, write_json
from training.boneage.tables import DataError, read_table


def run(argv=None):
    parser = argparse.ArgumentParser(prog="evaluate-boneage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a best.keras written by training.train_boneage")
    parser.add_argument("--csv", required=True, help="labelled CSV (RSNA, original or custom layout)")
    parser.add_argument("--image_dir", help="image folder (default: the CSV's folder)")
    add_column_arguments(parser)
    parser.add_argument("--use_tta", action="store_true")
    parser.add_argument("--tta_steps", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output_dir", help="default: the model's folder")
    args = parser.parse_args(argv)
    if not Path(args.model).is_file():
        parser.error(f"--model {args.model}: no such file")
    try:
        table, report = read_table(args.csv, args.image_dir or Path(args.csv).parent, **column_options(args))
    except DataError as error:
        raise SystemExit(f"Data error: {error}") from None
    model = keras.saving.load_model(args.model, safe_mode=True)
    predicted, predicted_tta = predict_months(model, table, args.batch_size, args.tta_steps if args.use_tta else 0, args.seed)
    results = regression_metrics(table["boneage"], predicted, table["male"], prefix="test_")
    if predicted_tta is not None:
        tta = regression_metrics(table["boneage"], predicted_tta, prefix="test_")
        results.update({f"{key}_tta": value for key, value in tta.items() if key != "test_n"})
    results.update({"model": str(args.model), "csv": str(args.csv), "report": report.as_dict()})
    output_dir = Path(args.output_dir or Path(args.model).parent)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / "evaluation.json", results)
    write_csv(output_dir / "evaluation_predictions.csv", predictions_table(table, predicted, predicted_tta))
    for figure, kind in zip(agreement_figures(table["boneage"], predicted, "evaluation"), ("predicted_vs_true", "bland_altman")):
        figure.savefig(output_dir / f"evaluation_{kind}.png", dpi=100)
    print(
        f"MAE {results['test_mae_months']:.2f} months, RMSE {results['test_rmse_months']:.2f}, "
        f"r {results['test_correlation']:.3f} on {results['test_n']} images -> {output_dir / 'evaluation.json'}"
    )
    return results


def main(argv=None):
    """Console entry point: `run` without returning its result (a non-None return is an exit status)."""
    run(argv)


if __name__ == "__main__":
    main()

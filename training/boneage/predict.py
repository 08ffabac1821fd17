"""Predict bone age in months with a model saved by the training CLI.

`predict(model_path, images, ...)`, and the command ``python -m training.boneage.predict --model runs/boneage_cpu/best.keras --images DIR_OR_CSV [--sex M|F]``

The saved model carries its image size, pixel scaling, CLAHE and target statistics, so no other
flag is needed. ``--images`` is a folder (every PNG/JPEG in it; give ``--sex`` for all of them when
the model uses sex) or a CSV in any layout `training.boneage.tables` reads (sex from its sex column, or
``--sex_column``, unless ``--sex`` is given).
"""

import argparse
from pathlib import Path

import pandas as pd

import modeling  # noqa: F401  (registers the custom layers for loading)
from modeling.inference import predict_tta
from training.boneage.pipeline import make_dataset
from training.boneage.tables import parse_sex, read_table
from training.cli import ConfigError, exit_on_user_errors, load_saved_model
from training.data.tables import DataError
from training.results import write_csv

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def images_table(images, sex=None, image_dir=None, sex_column=None, id_column=None, on_bad_rows="raise"):
    """A table (``id``, ``path``, ``boneage``, ``male``) for a folder of images or a CSV.

    Ages are NaN when unknown. For a folder ``sex`` (M/F) applies to every image.
    """
    images = Path(images)
    if images.is_dir():
        files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"No PNG or JPEG images in {images}.")
        male = float("nan") if sex is None else parse_sex(sex)
        return pd.DataFrame(
            {"id": [p.stem for p in files], "path": [str(p) for p in files], "boneage": float("nan"), "male": male}
        )
    if not images.is_file():
        raise DataError(f"--images {images} is neither a folder nor a CSV file.")
    table, _ = read_table(
        images,
        image_dir or images.parent,
        sex_column=sex_column,
        id_column=id_column,
        default_sex=sex,
        require_age=False,
        on_error=on_bad_rows,
    )
    return table


def predict_months(model, table, batch_size=32, tta_steps=0, seed=42):
    """Predictions in months (and with TTA when ``tta_steps`` > 0) for the rows of ``table``.

    Images are resized with the method the model was trained with (its ``"resize"`` layer).
    """
    names = [layer.name for layer in model.layers]
    img_size = model.get_layer("resize").height if "resize" in names else model.inputs[0].shape[1]
    interpolation = model.get_layer("resize").interpolation if "resize" in names else "bilinear"
    dataset = make_dataset(
        table.fillna({"boneage": 0.0}),
        img_size,
        batch_size,
        target_mean=0.0,
        target_std=1.0,
        cache=False,
        interpolation=interpolation,
    )
    if len(model.inputs) == 1:
        dataset = dataset.map(lambda inputs, z: ({"image": inputs["image"]}, z))
    predicted = model.predict(dataset, verbose=0)[:, 0]
    predicted_tta = predict_tta(model, dataset, n=tta_steps, seed=seed)[:, 0] if tta_steps else None
    return predicted, predicted_tta


def predict(
    model_path,
    images,
    sex=None,
    image_dir=None,
    sex_column=None,
    id_column=None,
    use_tta=False,
    tta_steps=8,
    batch_size=32,
    on_bad_rows="raise",
    output="predictions.csv",
):
    """Bone age in months for a folder of images or a CSV, written to ``output`` and returned.

    Args:
        model_path: a ``best.keras`` written by `training.boneage.train.train`.
        images: a folder (every PNG/JPEG in it) or a CSV in any layout `read_table` knows.
        sex: ``"M"`` or ``"F"`` for every image (overrides a CSV's sex column).
        image_dir: image folder of a CSV (default: the CSV's folder).
        sex_column, id_column: the CSV's columns holding sex and image ids.
        use_tta, tta_steps: add test-time-augmented predictions with this many views.
        batch_size: images per prediction step.
        on_bad_rows: ``"raise"`` at the first bad CSV row, or ``"skip"`` bad rows.
        output: the CSV written.

    Returns:
        A DataFrame: ``image_id``, ``path``, ``male``, ``predicted_bone_age`` (and the TTA and
        true ages when known).
    """
    model = load_saved_model(model_path)
    table = images_table(images, sex, image_dir, sex_column, id_column, on_bad_rows)
    if len(model.inputs) > 1 and table["male"].isna().any():
        raise ConfigError("this model uses sex: pass --sex M|F, or a CSV with a sex column")
    predicted, predicted_tta = predict_months(model, table, batch_size, tta_steps if use_tta else 0)
    frame = pd.DataFrame(
        {"image_id": table["id"], "path": table["path"], "male": table["male"], "predicted_bone_age": predicted}
    )
    if predicted_tta is not None:
        frame["predicted_bone_age_tta"] = predicted_tta
    if table["boneage"].notna().all():
        frame["true_bone_age"] = table["boneage"].to_numpy()
    write_csv(output, frame)
    print(f"{len(frame)} predictions written to {output}")
    return frame


def run(argv=None):
    """The command ``predict-boneage``: the flags of `predict`."""
    parser = argparse.ArgumentParser(prog="predict-boneage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a best.keras written by train-boneage")
    parser.add_argument("--images", required=True, help="folder of images, or a CSV")
    parser.add_argument("--image_dir", help="image folder for a CSV (default: the CSV's folder)")
    parser.add_argument("--sex", help="M or F for every image (overrides a CSV's sex column)")
    parser.add_argument("--sex_column", help="the CSV column holding sex")
    parser.add_argument("--id_column", help="the CSV column holding image ids")
    parser.add_argument("--use_tta", action="store_true")
    parser.add_argument("--tta_steps", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--on_bad_rows", choices=("raise", "skip"), default="raise")
    parser.add_argument("--output", default="predictions.csv")
    args = parser.parse_args(argv)
    with exit_on_user_errors():
        return predict(
            args.model,
            args.images,
            args.sex,
            args.image_dir,
            args.sex_column,
            args.id_column,
            args.use_tta,
            args.tta_steps,
            args.batch_size,
            args.on_bad_rows,
            args.output,
        )


def main(argv=None):
    """Console entry point: `run` without returning its result (a non-None return is an exit status)."""
    run(argv)


if __name__ == "__main__":
    main()

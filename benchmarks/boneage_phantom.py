"""Bone-age benchmark on the embedded phantom dataset (a script, not a test).

``python benchmarks/boneage_phantom.py [--models baseline,sex,attn_sex,attn_sex_improved] [train flags]``

Trains each model type with the CPU preset (plus any extra ``train-boneage`` flags) and reports,
next to their test MAE in months: the histogram-ridge shortcut (RidgeCV on a 32-bin intensity
histogram plus sex), the predict-the-mean baseline, the generator's error floor (MAE of the best
possible reader), and for attention models the share of attention mass inside the age-bearing
masks compared with the masks' share of the image. Writes ``benchmarks/results/boneage_phantom.json``
and prints a Markdown table.
"""

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import keras
import numpy as np
from PIL import Image
from sklearn.linear_model import RidgeCV

from training.boneage import phantom
from training.boneage import train as train_boneage
from training.boneage.data_sources import DEFAULT_PHANTOM_DIR, rsna_split_paths
from training.boneage.tables import read_table
from training.results import write_json

HISTOGRAM_BINS = 32


def load_split(data_dir, split):
    csv, image_dir = rsna_split_paths(data_dir, split)
    return read_table(csv, image_dir, check_images=False)[0]


def histogram_features(table):
    """Normalised 32-bin grey-level histograms plus sex: the shortcut a model must beat."""
    rows = []
    for path, male in zip(table["path"], table["male"], strict=False):
        pixels = np.asarray(Image.open(path).convert("L"))
        counts, _ = np.histogram(pixels, bins=HISTOGRAM_BINS, range=(0, 256))
        rows.append(np.append(counts / counts.sum(), male))
    return np.asarray(rows)


def histogram_ridge_mae(data_dir):
    train, test = load_split(data_dir, "train"), load_split(data_dir, "test")
    ridge = RidgeCV(alphas=np.logspace(-4, 3, 15)).fit(histogram_features(train), train["boneage"])
    predicted = ridge.predict(histogram_features(test))
    return float(np.abs(predicted - test["boneage"]).mean()), float(
        np.abs(train["boneage"].mean() - test["boneage"]).mean()
    )


def attention_mass_in_masks(checkpoint, data_dir):
    """Mean share of |attention| inside the age-bearing masks, the masks' share of the image, the map's size."""
    network = keras.saving.load_model(checkpoint)
    probe = keras.Model(network.inputs, network.get_layer("attention_map").output)
    test = load_split(data_dir, "test")
    size = network.inputs[0].shape[1]
    images = np.stack(
        [
            np.repeat(np.asarray(Image.open(p).convert("L").resize((size, size)), "float32")[..., None], 3, -1)
            for p in test["path"]
        ]
    )
    masks = np.stack(
        [
            np.asarray(Image.open(Path(data_dir) / phantom.MASKS_DIR / f"{i}.png").convert("L").resize((size, size)))
            > 127
            for i in test["id"]
        ]
    )
    inputs = [images, test["male"].to_numpy("float32")[:, None]] if len(network.inputs) > 1 else images
    maps = np.abs(probe.predict(inputs, verbose=0))
    map_size = list(maps.shape[1:3])
    maps = keras.ops.convert_to_numpy(keras.ops.image.resize(maps, (size, size), interpolation="bilinear"))[..., 0]
    inside = (maps * masks).sum(axis=(1, 2)) / np.maximum(maps.sum(axis=(1, 2)), 1e-12)
    return float(inside.mean()), float(masks.mean()), map_size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="baseline,sex,attn_sex,attn_sex_improved")
    parser.add_argument("--runs_dir", default="runs/benchmark")
    parser.add_argument("--output", default="benchmarks/results/boneage_phantom.json")
    args, train_argv = parser.parse_known_args(argv)
    config = train_boneage.parse_args(train_argv)
    data_dir = Path(config.data_dir) if config.data_dir else DEFAULT_PHANTOM_DIR
    rows = []
    for model_type in args.models.split(","):
        output_dir = Path(args.runs_dir) / model_type
        started = time.time()
        if (output_dir / "results.json").exists():
            results = json.loads((output_dir / "results.json").read_text())
        else:
            keras.backend.clear_session()
            results = train_boneage.train(
                dataclasses.replace(config, model_type=model_type, output_dir=str(output_dir))
            )
        row = {
            "model": model_type,
            "test_mae_months": results["test_mae_months"],
            "test_mae_months_tta": results.get("test_mae_months_tta"),
            "test_correlation": results["test_correlation"],
            "wall_seconds": results.get("wall_seconds", round(time.time() - started, 1)),
        }
        if model_type.startswith("attn"):
            row["attention_mass_in_masks"], row["mask_area_fraction"], row["attention_map_size"] = (
                attention_mass_in_masks(output_dir / "checkpoint.keras", data_dir)
            )
            row["attention_concentration"] = row["attention_mass_in_masks"] / row["mask_area_fraction"]
        rows.append(row)
    ridge_mae, mean_mae = histogram_ridge_mae(data_dir)
    manifest = json.loads((data_dir / phantom.MANIFEST).read_text())
    summary = {
        "models": rows,
        "histogram_ridge_test_mae_months": ridge_mae,
        "predict_mean_test_mae_months": mean_mae,
        "error_floor_test_mae_months": manifest["splits"]["test"]["error_floor_mae_months"],
        "dataset": manifest["arguments"],
        "train_flags": train_argv,
        "preset": config.preset,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "keras_backend": keras.backend.backend(),
    }
    write_json(args.output, summary)
    print("| model | test MAE (months) | with TTA | r | attention mass in masks / mask area (map) | wall s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        attention = (
            f"{row['attention_mass_in_masks']:.3f} / {row['mask_area_fraction']:.3f} "
            f"= {row['attention_concentration']:.2f} ({'x'.join(map(str, row['attention_map_size']))})"
            if "attention_mass_in_masks" in row
            else "-"
        )
        tta = f"{row['test_mae_months_tta']:.1f}" if row["test_mae_months_tta"] is not None else "-"
        print(
            f"| {row['model']} | {row['test_mae_months']:.1f} | {tta} | {row['test_correlation']:.3f} | {attention} | {row['wall_seconds']:.0f} |"
        )
    print(f"| histogram + sex ridge (shortcut) | {ridge_mae:.1f} | | | | |")
    print(f"| predict the training mean | {mean_mae:.1f} | | | | |")
    print(f"| error floor of the generator | {summary['error_floor_test_mae_months']:.1f} | | | | |")
    print(f"Machine: {summary['machine']}; written to {args.output}")
    return summary


if __name__ == "__main__":
    main()

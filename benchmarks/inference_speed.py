"""Inference speed of the bone-age models per backbone and batch size (the original's compute_inference_speed.py).

``python benchmarks/inference_speed.py [--img_size 500] [--batch_sizes 1 4 8 16 32] [--num_runs 10]
[--backbones ...] [--models baseline ...]``

As the original: for each model and backbone (ImageNet-sized random weights, ``weights=None``), per
batch size 3 warm-up ``predict`` calls, then ``--num_runs`` timed ``model.predict`` calls on a fresh
random batch each (so Keras' predict overhead is included). Records mean/std/min/max/median batch
time, ms per image, images/s, parameter counts; then the original's analysis: images/s at batch 1,
the best throughput and its batch size, and efficiency (images/s at batch 1 per million
parameters). Writes ``benchmarks/results/inference_speed.csv`` (one row per run setting),
``inference_speed_comparison.csv`` (one row per model and backbone) and ``inference_speed.json``
(with the machine and its load average), and prints the comparison.
"""

import argparse
import os
import platform
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

import modeling
from modeling.backbones import BACKBONE_MAP
from training.results import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def time_predictions(model, batch_size, num_runs, rng):
    """Seconds of each of ``num_runs`` ``predict`` calls after 3 warm-up calls."""
    inputs = model.inputs

    def batch():
        images = rng.normal(size=(batch_size, *inputs[0].shape[1:])).astype("float32")
        if len(inputs) == 1:
            return images
        return [images, rng.integers(0, 2, (batch_size, 1)).astype("float32")]

    for _ in range(3):
        model.predict(batch(), batch_size=batch_size, verbose=0)
    seconds = []
    for _ in range(num_runs):
        data = batch()
        start = time.perf_counter()
        model.predict(data, batch_size=batch_size, verbose=0)
        seconds.append(time.perf_counter() - start)
    return np.array(seconds)


def measure(model_name, backbone, img_size, batch_sizes, num_runs, seed=0):
    """One row per batch size for one model on one backbone."""
    keras.backend.clear_session()
    model = modeling.create_model(
        f"boneage/{model_name}", img_dims=(img_size, img_size, 3), backbone=backbone, weights=None
    )
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    rng = np.random.default_rng(seed)
    rows = []
    for batch_size in batch_sizes:
        seconds = time_predictions(model, batch_size, num_runs, rng)
        mean = float(seconds.mean())
        rows.append(
            {
                "model": model_name,
                "backbone": backbone,
                "batch_size": batch_size,
                "mean_batch_s": mean,
                "std_batch_s": float(seconds.std()),
                "min_batch_s": float(seconds.min()),
                "max_batch_s": float(seconds.max()),
                "median_batch_s": float(np.median(seconds)),
                "ms_per_image": 1000 * mean / batch_size,
                "images_per_s": batch_size / mean,
                "total_parameters": int(model.count_params()),
                "trainable_parameters": trainable,
                "non_trainable_parameters": int(model.count_params()) - trainable,
                "num_runs": num_runs,
                "image_size": img_size,
            }
        )
        print(f"{model_name:18s} {backbone:18s} batch {batch_size:3d}: {rows[-1]['ms_per_image']:8.1f} ms/image")
    return rows


def comparison(runs):
    """The original's analysis: one row per model and backbone."""
    rows = []
    for (model_name, backbone), group in runs.groupby(["model", "backbone"], sort=False):
        smallest = group.loc[group["batch_size"].idxmin()]
        best = group.loc[group["images_per_s"].idxmax()]
        millions = smallest["total_parameters"] / 1e6
        rows.append(
            {
                "model": model_name,
                "backbone": backbone,
                "smallest_batch_size": int(smallest["batch_size"]),
                "smallest_batch_ms_per_image": round(float(smallest["ms_per_image"]), 2),
                "smallest_batch_images_per_s": round(float(smallest["images_per_s"]), 2),
                "best_images_per_s": round(float(best["images_per_s"]), 2),
                "best_batch_size": int(best["batch_size"]),
                "parameters_millions": round(millions, 2),
                "images_per_s_per_million_parameters": round(float(smallest["images_per_s"]) / millions, 3),
            }
        )
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--img_size", type=int, default=500)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--num_runs", type=int, default=10)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONE_MAP), choices=list(BACKBONE_MAP))
    parser.add_argument("--models", nargs="+", default=["baseline"], help="bone-age registry names without 'boneage/'")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    runs = pd.DataFrame(
        [
            row
            for model_name in args.models
            for backbone in args.backbones
            for row in measure(model_name, backbone, args.img_size, args.batch_sizes, args.num_runs)
        ]
    )
    table = comparison(runs)
    RESULTS.mkdir(exist_ok=True)
    runs.to_csv(RESULTS / "inference_speed.csv", index=False)
    table.to_csv(RESULTS / "inference_speed_comparison.csv", index=False)
    write_json(
        RESULTS / "inference_speed.json",
        {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "load_average_before": round(load_before, 2),
            "load_average_after": round(os.getloadavg()[0], 2),
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "arguments": vars(args),
            "comparison": table.to_dict(orient="records"),
        },
    )
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()

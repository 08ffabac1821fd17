"""Bone-age input pipeline, first epoch: where the time goes, against the original's loader.

``pip install -e ".[benchmarks]"`` (adds tf_keras, the original's framework), then::

    python -m benchmarks.input_pipeline [--images 416] [--source_size 512] [--sizes 224 500]

Writes ``--images`` phantom PNGs of ``--source_size`` px once (``data/benchmarks/``, reused while
its settings match) and, for each training size and each resize interpolation (``bilinear``, the
CPU preset's, and ``nearest``, the original preset's), times full passes over the files with
nothing cached, adding one stage at a time:

1. ``read``: the file bytes (`tf.io.read_file`, in parallel as the pipeline reads);
2. ``decode``: + PNG/JPEG decoding to grey float32;
3. ``resize``: + resizing to the training size (`training.data.images.decode_image`, what the
   pipeline runs per file);
4. ``batch``: the whole `make_dataset` without augmentation (shuffled names, batches of 32,
   three channels);
5. ``first_epoch``: the whole `make_dataset` with the original's augmentation (flip, rotation 20
   degrees, shifts 0.2, zoom 0.2; no brightness or contrast), what a first epoch reads;
6. ``cached``: a later epoch of the same pipeline with the decoded images cached in memory;

and the original's loader: tf_keras' ``ImageDataGenerator.flow_from_dataframe`` with the original
scripts' arguments (RGB, ``class_mode="raw"``, the same augmentation, shear 0.2,
``fill_mode="nearest"``, Xception's ``preprocess_input``, batches of 32, nearest resize: Keras 2's
only choice there). Each figure is images per second, the best of ``--repeats`` passes after one
untimed pass; the table also gives each stage's added milliseconds per image. Prints a Markdown
table and writes ``benchmarks/results/input_pipeline.json``.
"""

import argparse
import os
import platform
from pathlib import Path

import pandas as pd
import tensorflow as tf

from benchmarks.micro import best_of
from training.boneage import phantom
from training.boneage.data_sources import rsna_split_paths
from training.boneage.pipeline import PARALLEL_CALLS, make_dataset
from training.boneage.tables import read_table
from training.data.augmentation import Augmentation
from training.data.images import decode_image, read_grey_image
from training.results import write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "input_pipeline.json"
BATCH = 32
# The original scripts' training augmentation (`idg` in the original's preprocessing.py).
ORIGINAL_AUGMENTATION = Augmentation(rotation_degrees=20.0, shift=0.2, zoom=0.2, brightness=0.0, contrast=0.0)
STAGES = ("read", "decode", "resize", "batch", "first_epoch", "cached")


def phantom_table(images, source_size):
    """The training table of a phantom of ``images`` PNGs at ``source_size`` px (written once)."""
    data_dir = REPO / "data" / "benchmarks" / f"phantom_{images}_{source_size}px"
    if not (data_dir / "manifest.json").exists():
        phantom.make_dataset(data_dir, n_train=images, n_val=1, n_test=1, img_size=source_size)
    csv, image_dir = rsna_split_paths(data_dir, "train")
    return read_table(csv, image_dir, check_images=False)[0]


def stage_datasets(table, img_size, interpolation):
    """One dataset per stage of `STAGES`, each adding one step to the one before."""
    paths = tf.data.Dataset.from_tensor_slices(table["path"].astype(str).to_numpy())

    def per_file(function):
        return paths.map(function, num_parallel_calls=PARALLEL_CALLS, deterministic=True)

    common = dict(
        img_size=img_size, batch_size=BATCH, target_mean=0.0, target_std=1.0, training=True, interpolation=interpolation
    )
    first_epoch = dict(common, augmentation=ORIGINAL_AUGMENTATION)
    return {
        "read": per_file(tf.io.read_file),
        "decode": per_file(read_grey_image),
        "resize": per_file(lambda path: decode_image(path, img_size, interpolation)),
        "batch": make_dataset(table, cache=False, **common),
        "first_epoch": make_dataset(table, cache=False, **first_epoch),
        "cached": make_dataset(table, cache=True, **first_epoch),
    }


def original_loader(table, img_size, seed=42):
    """The original's training iterator (tf_keras `ImageDataGenerator.flow_from_dataframe`)."""
    import tf_keras

    generator = tf_keras.preprocessing.image.ImageDataGenerator(
        horizontal_flip=True,
        vertical_flip=False,
        height_shift_range=0.2,
        width_shift_range=0.2,
        rotation_range=20,
        shear_range=0.2,
        zoom_range=0.2,
        fill_mode="nearest",
        preprocessing_function=tf_keras.applications.xception.preprocess_input,
    )
    frame = pd.DataFrame({"filename": table["path"].astype(str), "boneage_zscore": table["boneage"]})
    return generator.flow_from_dataframe(
        frame,
        x_col="filename",
        y_col="boneage_zscore",
        class_mode="raw",
        color_mode="rgb",
        target_size=(img_size, img_size),
        batch_size=BATCH,
        shuffle=True,
        seed=seed,
    )


def measure(table, img_size, interpolation, repeats):
    """Images/s of every stage (and of the original's loader with nearest resizing)."""
    rates = {
        stage: len(table) / best_of(lambda dataset=dataset: sum(1 for _ in dataset), repeats)
        for stage, dataset in stage_datasets(table, img_size, interpolation).items()
    }
    if interpolation == "nearest":
        iterator = original_loader(table, img_size)
        rates["original"] = len(table) / best_of(lambda: [iterator[i] for i in range(len(iterator))], repeats)
    return rates


def added_milliseconds(rates):
    """Milliseconds per image each stage adds to the one before (wall time of the parallel map)."""
    added, before = {}, 0.0
    for stage in STAGES[:-1]:
        added[stage] = 1000.0 / rates[stage] - before
        before = 1000.0 / rates[stage]
    return added


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=416)
    parser.add_argument("--source_size", type=int, default=512, help="side of the PNG files")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 500], help="training sizes")
    parser.add_argument("--interpolations", nargs="+", default=["bilinear", "nearest"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    table = phantom_table(args.images, args.source_size)
    rows = []
    for img_size in args.sizes:
        for interpolation in args.interpolations:
            rates = measure(table, img_size, interpolation, args.repeats)
            rows.append(
                {
                    "img_size": img_size,
                    "interpolation": interpolation,
                    "images_per_s": rates,
                    "added_ms_per_image": added_milliseconds(rates),
                }
            )
            print(rows[-1], flush=True)
    write_json(
        RESULTS,
        {
            "rows": rows,
            "images": args.images,
            "source_size": args.source_size,
            "repeats": args.repeats,
            "parallel_calls": PARALLEL_CALLS,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "tensorflow": tf.__version__,
            "load_average_end": os.getloadavg(),
        },
    )
    print("| size, resize | " + " | ".join(STAGES) + " | original (tf_keras) |")
    print("|---" * (len(STAGES) + 2) + "|")
    for row in rows:
        cells = [f"{row['images_per_s'][stage]:.0f}" for stage in STAGES]
        original = row["images_per_s"].get("original")
        cells.append(f"{original:.0f}" if original else "")
        print(f"| {row['img_size']} px, {row['interpolation']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Micro-benchmarks of three hot paths against the naive way (a script, not a test).

``python benchmarks/micro.py [--images 512] [--img_size 256]``

1. Input pipeline: images per second of `training.boneage.pipeline.make_dataset` (parallel decode, resize,
   one affine warp per image, brightness, contrast), for a first epoch (decoding) and a later one
   (decoded images cached), against a per-image Python loop that reads with PIL and warps with
   SciPy, as the original's ImageDataGenerator did, on the same phantom PNG files.
2. `LocallyConnected2D` forward + backward at the sizes the models use against a per-position loop.
3. `predict_tta` (views of a batch in one pass) against one full ``predict`` pass per view.

Prints a Markdown table and writes ``benchmarks/results/micro.json``.
"""

import argparse
import os
import platform
import time

import keras
import numpy as np
from PIL import Image
from scipy import ndimage

from modeling.inference import DEFAULT_TRANSFORMS, apply_views, predict_tta, sample_views
from modeling.layers import LocallyConnected2D
from training.boneage import phantom
from training.boneage.data_sources import rsna_split_paths
from training.boneage.pipeline import make_dataset
from training.boneage.tables import read_table
from training.data.augmentation import Augmentation
from training.results import write_json


def best_of(function, repeats=3):
    """Smallest wall time of ``repeats`` calls (after one warm-up call)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def naive_loader(table, img_size, rng):
    """Per image, as Keras 2's ImageDataGenerator did for the original: PIL load as RGB with a
    nearest-neighbour resize, one random affine warp (rotation 20 degrees, shifts 0.2, zoom 0.2)
    applied channel by channel with SciPy (bilinear, nearest fill), random horizontal flip."""
    batch = []
    for path in table["path"]:
        image = np.asarray(
            Image.open(path).convert("RGB").resize((img_size, img_size), Image.NEAREST), dtype=np.float32
        )
        angle = np.deg2rad(rng.uniform(-20, 20))
        shift = rng.uniform(-0.2, 0.2, 2) * img_size
        zoom = rng.uniform(0.8, 1.2, 2)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        matrix = rotation @ np.diag(zoom)
        centre = (np.array(image.shape[:2]) - 1) / 2.0
        offset = centre - matrix @ centre + shift
        image = np.stack(
            [ndimage.affine_transform(image[..., c], matrix, offset, order=1, mode="nearest") for c in range(3)],
            axis=-1,
        )
        if rng.random() < 0.5:
            image = image[:, ::-1]
        batch.append(image)
    return np.stack(batch)


def pipeline_benchmark(data_dir, img_size):
    csv, image_dir = rsna_split_paths(data_dir, "train")
    table, _ = read_table(csv, image_dir, check_images=False)
    options = dict(training=True, augmentation=Augmentation())
    first_epoch = make_dataset(table, img_size, 32, 0.0, 1.0, cache=False, **options)  # decode every time
    later_epochs = make_dataset(table, img_size, 32, 0.0, 1.0, cache=True, **options)  # decoded images cached
    uncached = best_of(lambda: sum(1 for _ in first_epoch), repeats=3)
    cached = best_of(lambda: sum(1 for _ in later_epochs), repeats=3)
    slow = best_of(lambda: naive_loader(table, img_size, np.random.default_rng(0)), repeats=1)
    return {
        "images": len(table),
        "pipeline_images_per_s": len(table) / uncached,
        "pipeline_cached_images_per_s": len(table) / cached,
        "naive_images_per_s": len(table) / slow,
    }


def naive_locally_connected(x, kernel, bias):
    """Per-position 1x1 unshared dense, the way a loop over positions computes it."""
    rows, cols = x.shape[1], x.shape[2]
    outputs = []
    for i in range(rows):
        for j in range(cols):
            outputs.append(keras.ops.matmul(x[:, i, j, :], kernel[i * cols + j]) + bias[i, j])
    return keras.ops.reshape(keras.ops.stack(outputs, axis=1), (-1, rows, cols, kernel.shape[-1]))


def locally_connected_benchmark(size, batch=32, channels=16):
    import tensorflow as tf

    layer = LocallyConnected2D(1, 1, activation="tanh")
    x = tf.random.normal((batch, size, size, channels))
    layer.build(x.shape)

    def step(forward):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(forward(x))
        return tape.gradient(loss, [layer.kernel, layer.bias])

    fast = tf.function(lambda: step(layer))
    slow = tf.function(lambda: step(lambda inputs: tf.tanh(naive_locally_connected(inputs, layer.kernel, layer.bias))))
    return {"size": size, "layer_s": best_of(fast, 10), "loop_s": best_of(slow, 10)}


def tta_benchmark(n=8, images=128, img_size=96):
    image = keras.Input((img_size, img_size, 3), name="image")
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(image)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    model = keras.Model(image, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x)))
    data = np.random.default_rng(0).uniform(0, 255, (images, img_size, img_size, 3)).astype("float32")
    views = sample_views(DEFAULT_TRANSFORMS, n, 0, img_size, img_size)

    def one_pass_per_view():
        return np.mean(
            [model.predict(apply_views(data, views[i : i + 1]), batch_size=16, verbose=0) for i in range(n)], axis=0
        )

    batched = best_of(lambda: predict_tta(model, data, n=n, batch_size=16), 3)
    looped = best_of(one_pass_per_view, 3)
    return {"n_views": n, "images": images, "batched_s": batched, "one_pass_per_view_s": looped}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--img_size", type=int, default=256)
    parser.add_argument("--output", default="benchmarks/results/micro.json")
    args = parser.parse_args(argv)
    data_dir = f"data/phantom_micro_{args.images}_{args.img_size}"
    if not os.path.exists(os.path.join(data_dir, phantom.MANIFEST)):
        phantom.make_dataset(data_dir, n_train=args.images, n_val=8, n_test=8, img_size=args.img_size, seed=0)
    results = {
        "pipeline": pipeline_benchmark(data_dir, args.img_size),
        # the attention maps' sizes: 3x3 (96 px MobileNetV2, the CPU preset), 16x16 (500 px Xception)
        "locally_connected": [locally_connected_benchmark(size) for size in (3, 16)],
        "tta": tta_benchmark(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "backend": keras.backend.backend(),
    }
    write_json(args.output, results)
    pipe = results["pipeline"]
    print("| benchmark | ours | naive | ratio |\n|---|---|---|---|")
    for label, key in (
        ("decode + resize + augment", "pipeline_images_per_s"),
        ("cached decode, augment", "pipeline_cached_images_per_s"),
    ):
        print(
            f"| input pipeline, images/s, {label} ({pipe['images']} PNGs, {args.img_size} px) | {pipe[key]:.0f} | {pipe['naive_images_per_s']:.0f} | {pipe[key] / pipe['naive_images_per_s']:.1f}x |"
        )
    for row in results["locally_connected"]:
        print(
            f"| LocallyConnected2D fwd+bwd, {row['size']}x{row['size']}x16, batch 32, ms | {row['layer_s'] * 1e3:.2f} | {row['loop_s'] * 1e3:.2f} | {row['loop_s'] / row['layer_s']:.1f}x |"
        )
    tta = results["tta"]
    print(
        f"| predict_tta, {tta['n_views']} views of {tta['images']} images, s | {tta['batched_s']:.2f} | {tta['one_pass_per_view_s']:.2f} | {tta['one_pass_per_view_s'] / tta['batched_s']:.1f}x |"
    )
    print(f"Machine: {results['machine']}; written to {args.output}")
    return results


if __name__ == "__main__":
    main()

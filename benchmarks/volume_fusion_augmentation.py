"""3D augmentation throughput: the `tf.data` warp of `training.data.augmentation` vs a per-volume SciPy loop.

``python benchmarks/volume_fusion_augmentation.py [--size 32] [--volumes 256] [--batch 16]``

Both apply the same kind of transform per volume (random flips on all three axes and rotations
about each axis, trilinear, edge values outside): `Augmentation(flip_all_axes=True,
rotation_all_axes=True)` mapped over batches inside `tf.data`, and `scipy.ndimage.affine_transform`
called once per volume in Python. Reports volumes per second; writes
``benchmarks/results/volume_fusion_augmentation_<size>.json`` with the 1-minute load average before the run
(on a busy machine the numbers are lower bounds).
"""

import argparse
import json
import os
import platform
import time

import numpy as np
import tensorflow as tf
from scipy import ndimage

from modeling import geometry
from training.data.augmentation import Augmentation
from training.results import write_json


def scipy_loop(volumes, degrees, rng):
    """Each volume warped with its own random flips and rotations by `scipy.ndimage.affine_transform`."""
    out = np.empty_like(volumes)
    shape = volumes.shape[1:4]
    for index, volume in enumerate(volumes):
        angles = rng.uniform(-1, 1, (1, 3)) * np.deg2rad(degrees)
        matrix = geometry.affine_matrix(shape, flip=rng.uniform(size=(1, 3)) < 0.5, rotation=angles)[0]
        # geometry's matrices act on (x, y, z); SciPy's on array axes (z, y, x)
        order = [2, 1, 0]
        linear = matrix[:3, :3][np.ix_(order, order)]
        offset = matrix[:3, 3][order]
        out[index, ..., 0] = ndimage.affine_transform(volume[..., 0], linear, offset, order=1, mode="nearest")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--volumes", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--degrees", type=float, default=15.0)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    volumes = rng.uniform(size=(args.volumes, args.size, args.size, args.size, 1)).astype("float32")
    augment = Augmentation(flip_all_axes=True, rotation_degrees=args.degrees, rotation_all_axes=True, shift=0.0,
                           zoom=0.0, brightness=0.0, contrast=0.0)  # fmt: skip
    dataset = tf.data.Dataset.from_tensor_slices(volumes).batch(args.batch).repeat().enumerate()
    dataset = dataset.map(
        lambda i, v: augment(v, tf.stack([tf.cast(i, tf.int32), 0])), num_parallel_calls=tf.data.AUTOTUNE
    )
    batches = iter(dataset)
    next(batches)  # traces the map function and starts the pipeline's threads: not timed
    timings = {}
    started = time.perf_counter()
    for _ in range(args.volumes // args.batch):
        next(batches)
    timings["tf_data_augmentation"] = args.volumes // args.batch * args.batch / (time.perf_counter() - started)
    started = time.perf_counter()
    scipy_loop(volumes, args.degrees, rng)
    timings["scipy_per_volume_loop"] = args.volumes / (time.perf_counter() - started)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "load_average_before": round(load_before, 2),
        "volume": [args.size] * 3,
        "volumes": args.volumes,
        "batch": args.batch,
        "volumes_per_second": {key: round(value, 1) for key, value in timings.items()},
        "speedup": round(timings["tf_data_augmentation"] / timings["scipy_per_volume_loop"], 2),
    }
    os.makedirs("benchmarks/results", exist_ok=True)
    write_json(f"benchmarks/results/volume_fusion_augmentation_{args.size}.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

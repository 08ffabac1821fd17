"""Training-step throughput of every bone-age builder, with and without XLA (a script, not a test).

``python benchmarks/train_step.py [--img_size 96] [--batch_size 32] [--backbone mobilenet_v2]``

Each builder is trained on in-memory random data with the whole network trainable (the CPU
preset's fine-tuning), once with ``jit_compile=False`` and once with ``True``; the first epoch
(compilation) is not timed. Run it once per backend; each run adds its rows to
``benchmarks/results/train_step.json`` under the backend's name::

    KERAS_BACKEND=tensorflow python benchmarks/train_step.py
    KERAS_BACKEND=jax python benchmarks/train_step.py
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import keras
import numpy as np

from modeling import create_model, list_models
from modeling.backbones import unfreeze_backbone_layers
from modeling.boneage import optimizer
from training.distribution import dtype_policy, mixed_precision_policy
from training.results import write_json


def fine_tuning_model(model_type, backbone, img_size, jit_compile="auto"):
    """A builder's model with every layer trainable, compiled with the original's Adam and MAE."""
    model = create_model(
        model_type,
        img_dims=(img_size, img_size, 3),
        backbone=backbone,
        weights=None,
        dense_units=64,
        **(
            {"gender_units": 16}
            if model_type in ("boneage/sex", "boneage/attn_sex", "boneage/attn_sex_improved")
            else {}
        ),
    )
    unfreeze_backbone_layers(model, n_layers=10**6, freeze_batchnorm=False)
    model.compile(optimizer=optimizer(1e-3, 0.9, 0.999, 1e-7, 0.0), loss="mae", jit_compile=jit_compile)
    return model


def images_per_second(model_type, backbone, img_size, batch_size, steps, jit_compile):
    model = fine_tuning_model(model_type, backbone, img_size, jit_compile)
    rng = np.random.default_rng(0)
    n = batch_size * steps
    inputs = [rng.uniform(0, 255, (n, img_size, img_size, 3)).astype("float32")]
    if len(model.inputs) > 1:
        inputs.append(rng.integers(0, 2, (n, 1)).astype("float32"))
    targets = rng.normal(size=(n, 1)).astype("float32")
    warm_up = [x[: 2 * batch_size] for x in inputs]
    model.fit(warm_up, targets[: 2 * batch_size], batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(inputs, targets, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    return n / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(list_models("boneage")))
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--img_size", type=int, default=96)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per configuration (XLA off on JAX: 2)")
    parser.add_argument("--mixed_precision", action="store_true")
    parser.add_argument("--output", default="benchmarks/results/train_step.json")
    args = parser.parse_args(argv)
    backend = keras.backend.backend()
    policy = mixed_precision_policy() if args.mixed_precision else None
    rows = []
    print("| backend | builder | images/s, jit off | images/s, jit on |\n|---|---|---|---|", flush=True)
    with dtype_policy(policy):
        for model_type in args.models.split(","):
            row = {"model_type": model_type}
            for jit in (False, True):
                # without jit, JAX runs op by op: a few steps are enough to measure it
                steps = 2 if (backend == "jax" and not jit) else args.steps
                keras.utils.set_random_seed(0)
                row[f"jit_{'on' if jit else 'off'}_images_per_s"] = images_per_second(
                    model_type, args.backbone, args.img_size, args.batch_size, steps, jit
                )
                keras.backend.clear_session()
            rows.append(row)
            print(
                f"| {backend} | {model_type} | {row['jit_off_images_per_s']:.1f} | {row['jit_on_images_per_s']:.1f} |",
                flush=True,
            )
    path = Path(args.output)
    results = json.loads(path.read_text()) if path.exists() else {}
    results[backend] = {
        "rows": rows,
        "backbone": args.backbone,
        "img_size": args.img_size,
        "batch_size": args.batch_size,
        "timed_steps": args.steps,
        "mixed_precision": policy,
        "keras_version": keras.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
    }
    write_json(path, results)
    print(f"Written to {path}")
    return results


if __name__ == "__main__":
    main()

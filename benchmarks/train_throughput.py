"""Whole-network training throughput: Keras 3 (plain and fused batch norm) against Keras 2 (tf_keras).

``pip install -e ".[benchmarks]"`` (adds tf_keras, the original's framework), then::

    python benchmarks/train_throughput.py [--rounds 2] [--steps 6]
    python benchmarks/train_throughput.py --profile   # op-level profile, one step per engine

For each case (a `keras.applications` backbone + Dense(1), every layer trainable, random data,
``weights=None``, Adam, MAE) and each engine, a fresh Python process times ``train_on_batch`` after
three warm-up steps. Engines:

* ``keras3``: Keras 3 with its own `BatchNormalization` (moments and normalisation as separate ops);
* ``keras3_fused``: the same model after `modeling.layers.fuse_batch_normalization` (TensorFlow's
  fused batch-norm kernel, what this project's backbones use);
* ``keras3_no_bn``: Keras 3 with every BatchNormalization replaced by an identity (an ablation: the
  time batch norm costs at most);
* ``tf_keras``: Keras 2.x (tf_keras) with its default ``fused=True`` batch norm.

Rounds alternate the engines; the table reports the median images/s per engine and the ratios to
tf_keras. Writes ``benchmarks/results/train_throughput.json``.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "train_throughput.json"
PROFILE = REPO / "benchmarks" / "results" / "train_step_profile.json"
CASES = {  # name -> (keras.applications class, image side, batch)
    "mobilenet_v2_224_b16": ("MobileNetV2", 224, 16),
    "mobilenet_v2_96_b4": ("MobileNetV2", 96, 4),
    "resnet50_v2_224_b8": ("ResNet50V2", 224, 8),
}
ENGINES = ("keras3", "keras3_fused", "keras3_no_bn", "tf_keras")

# One measurement, run in its own process so that engines and cases do not share caches or threads.
_MEASURE = """
import json, sys, time
import numpy as np
engine, application, side, batch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if engine == "tf_keras":
    import tf_keras as keras
else:
    import keras
from_backbone = getattr(keras.applications, application)
backbone = from_backbone(include_top=False, weights=None, input_shape=(side, side, 3), pooling="avg")
if engine == "keras3_fused":
    from modeling.layers import fuse_batch_normalization
    fuse_batch_normalization(backbone)
if engine == "keras3_no_bn":
    class NoNormalization(keras.layers.Layer):
        def call(self, inputs, training=None, mask=None):
            return inputs

    def without_normalization(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            return NoNormalization(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    backbone = keras.models.clone_model(backbone, clone_function=without_normalization)
model = keras.Sequential([backbone, keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (batch, side, side, 3)).astype("float32")
y = rng.normal(size=(batch, 1)).astype("float32")
for _ in range(3):
    model.train_on_batch(x, y)
start = time.perf_counter()
for _ in range(steps):
    model.train_on_batch(x, y)
print("RESULT " + json.dumps(batch * steps / (time.perf_counter() - start)))
if len(sys.argv) > 6:  # op-level profile of 3 more steps, read back from TensorFlow's trace
    import collections, glob, tempfile
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    for _ in range(3):
        model.train_on_batch(x, y)
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(open(glob.glob(logdir + "/**/*.xplane.pb", recursive=True)[0], "rb").read())
    by_type, normalisation, count = collections.Counter(), 0.0, 0
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name or name.startswith("EagerLocalExecute"):
                    continue  # kernels only ("scope/op:OpType"), not the runtime's own spans
                milliseconds = event.duration_ps / 1e9 / 3
                by_type[name.rsplit(":", 1)[1]] += milliseconds
                count += 1
                scope = name.rsplit(":", 1)[0].lower()
                normalisation += milliseconds if ("_bn" in scope or "batch_norm" in scope) else 0.0
    print("PROFILE " + json.dumps({
        "kernel_ms_per_step": sum(by_type.values()),
        "kernels_per_step": count / 3,
        "batch_norm_ms_per_step": normalisation,
        "top_kernel_types_ms_per_step": dict(by_type.most_common(8)),
    }))
"""


def measure(engine, case, steps, profile=False):
    """Images/s of one engine on one case, and with ``profile`` also the op-level profile."""
    application, side, batch = CASES[case]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-c", _MEASURE, engine, application, str(side), str(batch), str(steps)]
        + (["profile"] if profile else []),
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"{engine} on {case} failed:\n{completed.stderr[-3000:]}")
    speed = json.loads(lines[-1][len("RESULT ") :])
    if not profile:
        return speed
    profiles = [line for line in completed.stdout.splitlines() if line.startswith("PROFILE ")]
    return speed, json.loads(profiles[-1][len("PROFILE ") :])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    parser.add_argument(
        "--profile", action="store_true", help=f"instead: one op-level profile per engine and case, to {PROFILE}"
    )
    args = parser.parse_args(argv)
    if args.profile:
        return profile(args)
    samples = {case: {engine: [] for engine in ENGINES} for case in args.cases}
    for round_index in range(args.rounds):
        order = ENGINES if round_index % 2 == 0 else ENGINES[::-1]
        for case in args.cases:
            for engine in order:
                samples[case][engine].append(measure(engine, case, args.steps))
                print(f"round {round_index + 1} {case:22s} {engine:13s} {samples[case][engine][-1]:7.2f} img/s")
    rows = []
    for case, per_engine in samples.items():
        medians = {engine: statistics.median(values) for engine, values in per_engine.items()}
        rows.append(
            {
                "case": case,
                **{f"{engine}_images_per_s": round(value, 2) for engine, value in medians.items()},
                **{f"{engine}_vs_tf_keras": round(medians[engine] / medians["tf_keras"], 3) for engine in ENGINES[:3]},
                "samples": per_engine,
            }
        )
    import keras
    import tensorflow as tf

    payload = {
        "rows": rows,
        "rounds": args.rounds,
        "steps": args.steps,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "note": args.note,
    }
    from training.results import write_json

    write_json(RESULTS, payload)
    for row in rows:
        print(json.dumps({key: value for key, value in row.items() if key != "samples"}))


def profile(args):
    """Where a step's time goes per engine: kernel time and count, batch-norm share, top kernel types."""
    from training.results import write_json

    payload = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "note": args.note, "cases": {}}
    for case in args.cases:
        payload["cases"][case] = {}
        for engine in ENGINES:
            speed, breakdown = measure(engine, case, args.steps, profile=True)
            payload["cases"][case][engine] = {"images_per_s": round(speed, 2), **breakdown}
            print(case, engine, json.dumps(payload["cases"][case][engine]))
    write_json(PROFILE, payload)


if __name__ == "__main__":
    main()

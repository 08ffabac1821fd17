"""Training throughput: Keras 3 (plain and fused batch norm) against Keras 2 (tf_keras).

``pip install -e ".[benchmarks]"`` (adds tf_keras, the original's framework), then::

    python benchmarks/train_throughput.py [--rounds 4] [--steps 6]          # backbone cases
    python benchmarks/train_throughput.py --cases attention --rounds 3      # the attention models
    python benchmarks/train_throughput.py --profile   # op-level profile, one step per engine

Each measurement is a fresh Python process that times ``train_on_batch`` after three warm-up steps
(random data, ``weights=None``, Adam(1e-3), MAE). Two groups of cases:

* ``backbones`` (`CASES`): a `keras.applications` backbone + Dense(1), every layer trainable, on the
  engines ``keras3`` (Keras 3 with its own `BatchNormalization`: moments and normalisation as
  separate ops), ``keras3_fused`` (the same model after `modeling.layers.fuse_batch_normalization`:
  TensorFlow's fused batch-norm kernel, what this project's backbones use), ``keras3_no_bn`` (every
  BatchNormalization replaced by an identity, an ablation: the time batch norm costs at most) and
  ``tf_keras`` (Keras 2.x with its default ``fused=True`` batch norm);
  results in ``benchmarks/results/train_throughput.json``.
* ``attention`` (`ATTENTION_CASES`): the original's ``attn_sex_model`` / ``attn_sex_model_improved``,
  backbone frozen (as the builders leave it) or the whole network trainable, on the engines
  ``keras3_fused`` (the port, ``modeling.create_model("boneage/attn_sex...")`` as it builds by
  default: `build_backbone` with ``fused_batch_norm=True``), ``keras3`` (the port with its backbone's
  batch norm switched back to Keras' plain layer) and ``tf_keras`` (the original, rebuilt in
  `benchmarks/original_tf_keras.py` and checked there against the original's weight files);
  results in ``benchmarks/results/train_throughput_attention.json``.

Rounds follow a balanced order (`round_orders`, a Williams design: over a full set of rounds, n for
an even number of engines and 2n for an odd one, every engine runs equally often in every position
and right after every other engine), because a measurement depends on where it runs: on 2026-12-07
the fused engine and tf_keras measured about 12 % slower in the rounds where they ran right after
the no-BN ablation. The results hold the median images/s per engine, the ratios
to tf_keras, every sample, the trainable parameter count and normalisation layer types per engine, and
the date and load average at the start and end. They are written after every round.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "train_throughput.json"
ATTENTION_RESULTS = REPO / "benchmarks" / "results" / "train_throughput_attention.json"
PROFILE = REPO / "benchmarks" / "results" / "train_step_profile.json"
CASES = {  # name -> (keras.applications class, image side, batch)
    "mobilenet_v2_224_b16": ("MobileNetV2", 224, 16),
    "mobilenet_v2_96_b4": ("MobileNetV2", 96, 4),
    "resnet50_v2_224_b8": ("ResNet50V2", 224, 8),
}
ENGINES = ("keras3", "keras3_fused", "keras3_no_bn", "tf_keras")
ATTENTION_CASES = {  # name -> (original builder, backbone, image side, batch, backbone trainable)
    "attn_sex_improved_mobilenet_v2_224_b16_frozen": ("attn_sex_model_improved", "mobilenet_v2", 224, 16, False),
    "attn_sex_resnet50v2_224_b8_frozen": ("attn_sex_model", "resnet50v2", 224, 8, False),
    "attn_sex_improved_mobilenet_v2_224_b16_trainable": ("attn_sex_model_improved", "mobilenet_v2", 224, 16, True),
}
ATTENTION_ENGINES = ("keras3", "keras3_fused", "tf_keras")
REGISTRY_NAMES = {"attn_sex_model": "boneage/attn_sex", "attn_sex_model_improved": "boneage/attn_sex_improved"}
CASE_GROUPS = {"backbones": list(CASES), "attention": list(ATTENTION_CASES)}

# One measurement, run in its own process so that engines and cases do not share caches or threads.
_MEASURE = """
import json, sys, time
import numpy as np
engine, spec, steps = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
side, batch = spec["side"], spec["batch"]
if engine == "tf_keras":
    import tf_keras as keras
else:
    import keras
if "builder" in spec:  # an attention model: the port (Keras 3) or the original rebuilt in tf_keras
    if engine == "tf_keras":
        from benchmarks import original_tf_keras
        build = getattr(original_tf_keras, spec["builder"])
    else:
        from modeling import create_model

        def build(img_dims, optim, metric, **kwargs):
            return create_model(spec["registry_name"], img_dims=img_dims, optim=optim, metric=metric, **kwargs)
    model = build((side, side, 3), keras.optimizers.Adam(1e-3), [], backbone=spec["backbone"], weights=None)
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    if engine == "keras3":  # undo the port's default (fused backbone and feature batch norm)
        from modeling.layers import FusedBatchNormalization
        for layer in model._flatten_layers(include_self=False, recursive=True):  # backbone and feature_bn
            if type(layer) is FusedBatchNormalization:
                layer.__class__ = keras.layers.BatchNormalization
    if spec["trainable"]:
        backbone.trainable = True
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=model.loss)
else:  # a keras.applications backbone + Dense(1), every layer trainable
    from_backbone = getattr(keras.applications, spec["application"])
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
if "builder" in spec:
    x = [x, rng.integers(0, 2, (batch, 1)).astype("float32")]
y = rng.normal(size=(batch, 1)).astype("float32")
for _ in range(3):
    model.train_on_batch(x, y)
start = time.perf_counter()
for _ in range(steps):
    model.train_on_batch(x, y)
speed = batch * steps / (time.perf_counter() - start)
normalisations = [type(layer).__name__ for layer in model._flatten_layers() if "Normalization" in type(layer).__name__]
print("RESULT " + json.dumps({
    "images_per_s": speed,
    "trainable_params": int(sum(np.prod(weight.shape) for weight in model.trainable_weights)),
    "normalisation_layers": {name: normalisations.count(name) for name in sorted(set(normalisations))},
}))
if len(sys.argv) > 4:  # op-level profile of 3 more steps, read back from TensorFlow's trace
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


def case_spec(case):
    """The measurement's description of ``case`` (JSON-able) and the engines it runs."""
    if case in CASES:
        application, side, batch = CASES[case]
        return {"application": application, "side": side, "batch": batch}, ENGINES
    builder, backbone, side, batch, trainable = ATTENTION_CASES[case]
    spec = {"builder": builder, "registry_name": REGISTRY_NAMES[builder], "backbone": backbone}
    return {**spec, "side": side, "batch": batch, "trainable": trainable}, ATTENTION_ENGINES


def measure(engine, case, steps, profile=False):
    """Images/s of one engine on one case, and with ``profile`` also the op-level profile."""
    spec, _ = case_spec(case)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-c", _MEASURE, engine, json.dumps(spec), str(steps)] + (["profile"] if profile else []),
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"{engine} on {case} failed:\n{completed.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    if profile:
        profiles = [line for line in completed.stdout.splitlines() if line.startswith("PROFILE ")]
        result["profile"] = json.loads(profiles[-1][len("PROFILE ") :])
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="4 completes the balanced set of the backbone cases; 3 puts each attention engine in each position once",
    )
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["backbones"],
        choices=[*CASE_GROUPS, *CASES, *ATTENTION_CASES],
        help="case names, or the groups 'backbones' (default) and 'attention'",
    )
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    parser.add_argument(
        "--profile", action="store_true", help=f"instead: one op-level profile per engine and case, to {PROFILE}"
    )
    args = parser.parse_args(argv)
    args.cases = list(dict.fromkeys(name for case in args.cases for name in CASE_GROUPS.get(case, [case])))
    if args.profile:
        return profile(args)
    engines = {case: case_spec(case)[1] for case in args.cases}
    samples = {case: {engine: [] for engine in engines[case]} for case in args.cases}
    models = {}  # case -> engine -> what was trained (trainable parameters, normalisation layer types)
    started = {"date": _now(), "load_average": os.getloadavg()}
    for round_index in range(args.rounds):
        for case in args.cases:
            orders = round_orders(engines[case])
            for engine in orders[round_index % len(orders)]:
                result = measure(engine, case, args.steps)
                samples[case][engine].append(result.pop("images_per_s"))
                models.setdefault(case, {})[engine] = result
                print(f"round {round_index + 1} {case:48s} {engine:13s} {samples[case][engine][-1]:7.2f} img/s")
        write_results(
            samples, models, args, round_index + 1, started
        )  # after every round: a cut-short run keeps its data


def round_orders(engines):
    """The engines' order in each round of a balanced set (a Williams design, cyclic from the first row).

    With n engines there are n rounds (2n for an odd n): every engine runs equally often in every
    position and right after every other engine, so neither the position nor the measurement just
    before favours one engine.

    Example:

    >>> round_orders(["a", "b", "c", "d"])
    [['a', 'b', 'd', 'c'], ['b', 'c', 'a', 'd'], ['c', 'd', 'b', 'a'], ['d', 'a', 'c', 'b']]
    """
    n = len(engines)
    first = [0]  # 0, 1, n-1, 2, n-2, ...
    for step in range(1, n):
        first.append((step + 1) // 2 if step % 2 else n - step // 2)
    rows = [[(index + shift) % n for index in first] for shift in range(n)]
    if n % 2:
        rows += [row[::-1] for row in rows]
    return [[engines[index] for index in row] for row in rows]


def write_results(samples, models, args, rounds, started):
    """Medians and ratios to tf_keras per case, into `RESULTS` (backbone cases) and `ATTENTION_RESULTS`."""
    import keras
    import tensorflow as tf

    from training.results import write_json

    for path, group in ((RESULTS, CASES), (ATTENTION_RESULTS, ATTENTION_CASES)):
        rows = []
        for case, per_engine in samples.items():
            if case not in group:
                continue
            medians = {engine: statistics.median(values) for engine, values in per_engine.items()}
            rows.append(
                {
                    "case": case,
                    **{f"{engine}_images_per_s": round(value, 2) for engine, value in medians.items()},
                    **{
                        f"{engine}_vs_tf_keras": round(medians[engine] / medians["tf_keras"], 3)
                        for engine in per_engine
                        if engine != "tf_keras"
                    },
                    "samples": per_engine,
                    "models": models[case],
                }
            )
        if not rows:
            continue
        payload = {
            "rows": rows,
            "rounds": rounds,
            "steps": args.steps,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "note": args.note,
            "started": started,
            "finished": {"date": _now(), "load_average": os.getloadavg()},
        }
        write_json(path, payload)
        for row in rows:
            print(json.dumps({key: value for key, value in row.items() if key != "samples"}))


def profile(args):
    """Where a step's time goes per engine: kernel time and count, batch-norm share, top kernel types."""
    from training.results import write_json

    payload = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "note": args.note, "cases": {}}
    for case in args.cases:
        payload["cases"][case] = {}
        for engine in case_spec(case)[1]:
            result = measure(engine, case, args.steps, profile=True)
            payload["cases"][case][engine] = {"images_per_s": round(result["images_per_s"], 2), **result["profile"]}
            print(case, engine, json.dumps(payload["cases"][case][engine]))
    write_json(PROFILE, payload)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


if __name__ == "__main__":
    main()

"""Images per second of JAX data-parallel training with 1 and 2 processes (a script, not a test).

``KERAS_BACKEND=jax python benchmarks/scaling.py [--processes 1,2] [--img_size 96] [--batch_size 32]``

For each process count N it starts N processes on this machine (127.0.0.1, gloo CPU
collectives). Each joins the others with `keras.distribution.initialize` (N > 1), trains
``attn_sex_improved`` under `keras.distribution.DataParallel` on its own shard of in-memory random
data (global batch split N ways), and process 0 times one epoch after a warm-up epoch. On one machine
the processes share the same cores, so this measures the cost of the collectives, not a speed-up.
Writes ``benchmarks/results/scaling.json``.
"""

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time


def worker(args):
    import keras
    import numpy as np
    import tensorflow as tf
    from train_step import fine_tuning_model  # the sibling benchmark script

    from training.distribution import make_distribution

    kind = "data_parallel" if args.num_processes > 1 else "none"
    dist = make_distribution(kind, args.batch_size, args.coordinator, args.num_processes, args.process_id)
    keras.utils.set_random_seed(0)
    local_batch = dist.per_process_batch(args.batch_size)
    rng = np.random.default_rng(args.process_id)
    n = local_batch * args.steps
    images = rng.uniform(0, 255, (n, args.img_size, args.img_size, 3)).astype("float32")
    sex = rng.integers(0, 2, (n, 1)).astype("float32")
    targets = rng.normal(size=(n, 1)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices(((images, sex), targets)).batch(local_batch, drop_remainder=True).cache()
    with dist.scope():
        model = fine_tuning_model("boneage/attn_sex_improved", args.backbone, args.img_size)
        model.fit(data, epochs=1, verbose=0)  # compilation
        start = time.perf_counter()
        model.fit(data, epochs=1, verbose=0)
        seconds = time.perf_counter() - start
    if dist.is_chief:
        print(
            "RESULT "
            + json.dumps({"processes": args.num_processes, "images_per_s": args.batch_size * args.steps / seconds})
        )


def launch(num_processes, args):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, KERAS_BACKEND="jax")
    common = [
        sys.executable,
        __file__,
        "--worker",
        "--coordinator",
        f"127.0.0.1:{port}",
        "--num_processes",
        str(num_processes),
        "--img_size",
        str(args.img_size),
        "--batch_size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--backbone",
        args.backbone,
    ]
    processes = [
        subprocess.Popen(
            common + ["--process_id", str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        for i in range(num_processes)
    ]
    outputs = [process.communicate()[0] for process in processes]
    if any(process.returncode for process in processes):
        raise SystemExit(f"A worker of the {num_processes}-process run failed.")
    line = next(line for line in outputs[0].splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--img_size", type=int, default=96)
    parser.add_argument("--batch_size", type=int, default=32, help="global batch")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--output", default="benchmarks/results/scaling.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--coordinator", help=argparse.SUPPRESS)
    parser.add_argument("--num_processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--process_id", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    from training.results import write_json

    rows = [launch(int(n), args) for n in args.processes.split(",")]
    results = {
        "rows": rows,
        "model": "attn_sex_improved",
        "backbone": args.backbone,
        "img_size": args.img_size,
        "global_batch": args.batch_size,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
    }
    write_json(args.output, results)
    print("| processes | images/s |\n|---|---|")
    for row in rows:
        print(f"| {row['processes']} | {row['images_per_s']:.1f} |")
    return results


if __name__ == "__main__":
    main()

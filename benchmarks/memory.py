"""Peak resident memory of bone-age training (a script, not a test).

``python benchmarks/memory.py [--epochs 1] [--checkout DIR --label NAME] [extra train-boneage flags]``

Builds the default phantom first when no data is given (so its generator processes are not
measured), then runs ``python -m training.boneage.train --epochs_finetune N --no-use_tta`` in a
subprocess and reads the kernel's high-water mark of its resident set (``VmHWM`` in
``/proc/PID/status``, Linux) until it exits. ``--checkout`` runs the command from another checkout
of this repository (e.g. a ``git worktree`` of an older commit, for a before/after comparison) with
this interpreter. Each run is stored under its ``--label`` in ``benchmarks/results/memory.json``.

At real scale (the issue's case: one epoch at 500 px on a 2,000-image phantom)::

    make-phantom --out /tmp/phantom500 --n_train 2000 --n_val 100 --n_test 100 --img_size 500
    python benchmarks/memory.py --label now --data_dir /tmp/phantom500 --img_size 500
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from training.boneage import train as train_boneage
from training.boneage.data_sources import use_default_phantom
from training.results import write_json


def peak_rss_bytes(command, cwd=None, poll_seconds=0.2):
    """Run ``command``; returns (exit status, its largest VmHWM in bytes, wall seconds)."""
    started = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(cwd)) if cwd else None
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=cwd, env=env)
    status_file = Path(f"/proc/{process.pid}/status")
    peak = 0
    while process.poll() is None:
        try:
            for line in status_file.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(poll_seconds)
    return process.wait(), peak, time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--checkout", help="run the training command of this checkout (default: this one)")
    parser.add_argument("--label", default="now", help="name of this run in the JSON")
    parser.add_argument("--output", default="benchmarks/results/memory.json")
    args, train_flags = parser.parse_known_args(argv)
    use_default_phantom(train_boneage.parse_args(train_flags))
    output_dir = Path("runs/benchmark_memory").resolve() / args.label
    command = [
        sys.executable,
        "-m",
        "training.boneage.train",
        "--epochs_finetune",
        str(args.epochs),
        "--no-use_tta",
        "--output_dir",
        str(output_dir),
        "--overwrite",
        *train_flags,
    ]
    cwd = str(Path(args.checkout).resolve()) if args.checkout else None
    load_before = list(os.getloadavg())
    status, peak, wall = peak_rss_bytes(command, cwd)
    if status:
        raise SystemExit(f"{' '.join(command)} failed with status {status}")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, check=False
    ).stdout.strip()
    output = Path(args.output)
    runs = json.loads(output.read_text()).get("runs", {}) if output.is_file() else {}
    runs[args.label] = {
        "command": " ".join(command[1:]),
        "commit": commit,
        "epochs": args.epochs,
        "peak_rss_gib": peak / 2**30,
        "wall_seconds": wall,
        "load_average_before": load_before,
    }
    write_json(output, {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "runs": runs})
    print("| run | commit | epochs | peak RSS (GiB) | wall (s) |\n|---|---|---|---|---|")
    for label, run in runs.items():
        print(
            f"| {label} | {run['commit']} | {run['epochs']} | {run['peak_rss_gib']:.2f} | {run['wall_seconds']:.0f} |"
        )
    return runs


if __name__ == "__main__":
    main()

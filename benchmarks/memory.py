"""Peak resident memory of the default main job over one training epoch (a script, not a test).

``python benchmarks/memory.py [--epochs 1] [extra train-boneage flags]``

Builds the default phantom first (so its generator processes are not measured), then runs
``python -m training.boneage.train --epochs_finetune N --no-use_tta`` in a subprocess and reads the
kernel's high-water mark of its resident set (``VmHWM`` in ``/proc/PID/status``, Linux) until it
exits. Writes ``benchmarks/results/memory.json``.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from training.boneage import train as train_boneage
from training.boneage.data_sources import use_default_phantom
from training.results import write_json


def peak_rss_bytes(command, poll_seconds=0.2):
    """Run ``command``; returns (exit status, its largest VmHWM in bytes, wall seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
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
    parser.add_argument("--output", default="benchmarks/results/memory.json")
    args, train_flags = parser.parse_known_args(argv)
    use_default_phantom(train_boneage.parse_args(train_flags))
    command = [
        sys.executable,
        "-m",
        "training.boneage.train",
        "--epochs_finetune",
        str(args.epochs),
        "--no-use_tta",
        "--output_dir",
        "runs/benchmark_memory",
        "--overwrite",
        *train_flags,
    ]
    status, peak, wall = peak_rss_bytes(command)
    if status:
        raise SystemExit(f"{' '.join(command)} failed with status {status}")
    results = {
        "command": " ".join(command[1:]),
        "epochs": args.epochs,
        "peak_rss_gib": peak / 2**30,
        "wall_seconds": wall,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
    }
    write_json(args.output, results)
    print("| command | epochs | peak RSS (GiB) | wall (s) |\n|---|---|---|---|")
    print(f"| {results['command']} | {args.epochs} | {results['peak_rss_gib']:.2f} | {wall:.0f} |")
    return results


if __name__ == "__main__":
    main()

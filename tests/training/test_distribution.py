"""Mirrored training on two logical CPUs, JAX data-parallel training in two processes, mixed
precision, and the flag checks."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from modeling import create_model
from tests.checkers import tiny_backbone
from training import distribution
from training.boneage import phantom
from training.boneage import train as train_boneage

REPO = Path(__file__).resolve().parents[2]

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from training.boneage import train as train_boneage
    common = ["--data_dir", sys.argv[1], "--img_size", "64", "--weights", "none", "--dense_units", "16",
              "--gender_units", "8", "--epochs_finetune", "1", "--no-use_tta", "--distribute", "mirrored"]
    try:
        train_boneage.run(common + ["--batch_size", "9", "--output_dir", sys.argv[2] + "/odd"])
    except SystemExit as error:
        odd = str(error)
    results = train_boneage.run(common + ["--batch_size", "8", "--output_dir", sys.argv[2] + "/run"])
    print("RESULT " + json.dumps({"replicas": results["replicas"], "odd": odd, "mae": results["test_mae_months"]}))
    """
)


def test_mirrored_strategy_trains_on_two_logical_cpus(tmp_path):
    data_dir = tmp_path / "phantom"
    phantom.make_dataset(data_dir, n_train=24, n_val=8, n_test=8, img_size=64, seed=2)
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    completed = subprocess.run(
        [sys.executable, str(script), str(data_dir), str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={"KERAS_BACKEND": "tensorflow", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, completed.stdout[-2000:] + completed.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["replicas"] == 2
    assert "must be divisible by the 2 replicas" in result["odd"]
    assert np.isfinite(result["mae"])


# One process trained like `train-boneage` phase 1, on the global batches that the two processes'
# shards make together (shard 0's rows first); prints how far its weights are from the others'.
REFERENCE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np, tensorflow as tf
    from training.boneage import train as train_boneage
    from training.boneage.data_sources import load_splits
    from training.boneage.pipeline import DataEpoch, make_dataset

    flags, weights, weights_worker, shards = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    args = train_boneage.parse_args(flags)
    keras.utils.set_random_seed(args.seed)
    splits = load_splits(args)
    ages = splits["train"].table["boneage"]
    mean, std = float(ages.mean()), float(ages.std(ddof=1))
    model, _ = train_boneage.build_model(args, mean, std)
    initial = model.get_weights()
    common = train_boneage.dataset_options(args, mean, std) | {"batch_size": args.batch_size // shards, "drop_remainder": True}

    def global_batches(table, **options):
        parts = [make_dataset(table, num_shards=shards, shard_index=i, **common, **options) for i in range(shards)]
        return tf.data.Dataset.zip(tuple(parts)).map(lambda *p: tf.nest.map_structure(lambda *t: tf.concat(t, 0), *p))

    train_boneage.recompile(model, args, args.lr, mean, std)
    epoch = tf.Variable(0, dtype=tf.int64)  # the training order is a function of (seed, epoch), as in train-boneage
    train = global_batches(splits["train"].table, **train_boneage.training_options(args), epoch=epoch)
    history = model.fit(train, validation_data=global_batches(splits["val"].table), epochs=args.epochs_frozen,
                        callbacks=[DataEpoch(epoch)], verbose=0)
    other = keras.models.clone_model(model)
    def weights_of(path):
        other.load_weights(path)
        return other.get_weights()
    def distance(first, second):
        return max(float(np.max(np.abs(a - b))) for a, b in zip(first, second))
    chief, worker = weights_of(weights), weights_of(weights_worker)
    print("RESULT " + json.dumps({
        "chief": distance(chief, model.get_weights()),
        "worker_vs_chief": distance(worker, chief),
        "moved": distance(initial, model.get_weights()),
        "loss": history.history["loss"],
    }))
    """
)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_jax_processes_match_one_process_on_the_same_global_batches(tmp_path):
    data_dir = tmp_path / "phantom"
    phantom.make_dataset(data_dir, n_train=32, n_val=16, n_test=8, img_size=64, seed=3)
    flags = [
        "--data_dir",
        str(data_dir),
        "--img_size",
        "64",
        "--weights",
        "none",
        "--dense_units",
        "16",
        "--gender_units",
        "8",
        "--batch_size",
        "8",
        "--epochs_frozen",
        "2",
        "--no-fine_tune",
        "--no-use_tta",
        "--no-augment",
        "--no-use_cyclical_lr",
        "--lr",
        "1e-3",
    ]  # augmentation draws differ per shard; dropout stays on
    parallel = [
        "--distribute",
        "data_parallel",
        "--coordinator",
        f"127.0.0.1:{_free_port()}",
        "--num_processes",
        "2",
        "--output_dir",
        str(tmp_path / "run"),
    ]
    env = {"KERAS_BACKEND": "jax", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "training.boneage.train", *flags, *parallel, "--process_id", str(i)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in (0, 1)
    ]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    chief = json.loads((tmp_path / "run" / "results.json").read_text())
    worker = json.loads((tmp_path / "run" / "process_1" / "results.json").read_text())
    assert (chief["num_processes"], chief["replicas"], chief["distribute"]) == (2, 2, "data_parallel")
    assert (worker["process_id"], worker["epochs_trained"]) == (1, 2) and "test_mae_months" not in worker
    assert chief["n_test"] == 8 and np.isfinite(chief["test_mae_months"])  # process 0 evaluated the whole test split

    script = tmp_path / "reference.py"
    script.write_text(REFERENCE_SCRIPT)
    completed = subprocess.run(
        [
            sys.executable,
            str(script),
            json.dumps(flags),
            str(tmp_path / "run" / "phase1_final.weights.h5"),
            str(tmp_path / "run" / "process_1" / "phase1_final.weights.h5"),
            "2",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, completed.stdout[-2000:] + completed.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["worker_vs_chief"] == 0.0  # every process holds the same replicated weights
    assert result["chief"] < 2e-4, result  # same weights as one process, up to reduction order
    assert result["moved"] > 50 * 2e-4, result  # ... and training moved them far more than that
    log = train_boneage.read_training_log(tmp_path / "run")
    np.testing.assert_allclose(log["loss"], result["loss"], rtol=1e-4)


@pytest.mark.parametrize(
    "backend, kind, extra, message",
    [
        ("jax", "mirrored", {}, "needs the TensorFlow backend"),
        ("tensorflow", "data_parallel", {}, "needs the JAX backend"),
        ("jax", "data_parallel", {"num_processes": 2}, "needs --coordinator HOST:PORT"),
        ("jax", "none", {"coordinator": "h:1", "num_processes": 2}, "work with --distribute data_parallel only"),
        (
            "jax",
            "data_parallel",
            {"coordinator": "h:1", "num_processes": 2, "process_id": 2},
            "--process_id must be in [0, 2)",
        ),
        ("jax", "data_parallel", {"coordinator": "nohostport", "num_processes": 2}, "HOST:PORT"),
        ("jax", "data_parallel", {"num_processes": 0}, "--num_processes must be >= 1"),
    ],
)
def test_distribute_flags_the_backend_cannot_serve_are_refused(monkeypatch, backend, kind, extra, message):
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    assert message in distribution.check_distribute_flags(kind, **extra)


@pytest.mark.parametrize("backend, kind", [("tensorflow", "mirrored"), ("jax", "data_parallel"), ("jax", "none")])
def test_distribute_flags_the_backend_can_serve_pass(monkeypatch, backend, kind):
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    assert distribution.check_distribute_flags(kind) is None
    if kind == "data_parallel":
        assert distribution.check_distribute_flags(kind, "10.0.0.1:1234", 4, 3) is None


def test_mixed_precision_keeps_float32_outputs_and_weights():
    with distribution.dtype_policy("mixed_bfloat16"):
        model = create_model(
            "boneage/attn_sex_improved",
            img_dims=(32, 32, 3),
            backbone=tiny_backbone,
            weights=None,
            dense_units=16,
            gender_units=8,
        )
        assert model.get_layer("image_dense").compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # restored after the block
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, (5, 32, 32, 3)).astype("float32"), np.ones((5, 1), "float32")]
    assert keras.ops.convert_to_numpy(model(inputs)).dtype == np.float32
    assert {w.dtype for w in model.trainable_weights} == {"float32"}
    logs = model.train_on_batch(inputs, rng.normal(size=(5, 1)).astype("float32"), return_dict=True)
    assert np.isfinite(logs["loss"])
    assert distribution.mixed_precision_policy() in ("mixed_bfloat16", "mixed_float16")


def test_progressive_unfreezing_is_refused_under_mirrored(capsys):
    with pytest.raises(SystemExit):
        train_boneage.parse_args(["--distribute", "mirrored", "--unfreeze_schedule", "2:1.0"])
    assert "--unfreeze_schedule cannot be combined with --distribute mirrored" in capsys.readouterr().err


def test_data_parallel_is_refused_on_the_command_line_under_tensorflow(capsys):
    with pytest.raises(SystemExit):
        train_boneage.parse_args(["--distribute", "data_parallel"])
    assert "needs the JAX backend" in capsys.readouterr().err

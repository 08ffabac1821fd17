"""Mirrored multi-device training on two logical CPUs, mixed precision, and the flag checks."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from modeling import create_model
from tests.checkers import tiny_backbone
from training import distribution, phantom, train_boneage

REPO = Path(__file__).resolve().parents[2]

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from training import train_boneage
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
        cwd=REPO, capture_output=True, text=True, timeout=600, env={"KERAS_BACKEND": "tensorflow", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, completed.stdout[-2000:] + completed.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["replicas"] == 2
    assert "must be divisible by the 2 replicas" in result["odd"]
    assert np.isfinite(result["mae"])


def test_mirrored_needs_the_tensorflow_backend(monkeypatch):
    assert distribution.check_distribute_flag("mirrored") is None
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert "needs the TensorFlow backend" in distribution.check_distribute_flag("mirrored")
    assert distribution.check_distribute_flag("none") is None


def test_mixed_precision_keeps_float32_outputs_and_weights():
    with distribution.dtype_policy("mixed_bfloat16"):
        model = create_model("attn_sex_improved", img_dims=(32, 32, 3), backbone=tiny_backbone, weights=None,
                             dense_units=16, gender_units=8)
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

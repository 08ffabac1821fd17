"""The training command end to end (killed, resumed, evaluated, analysed), its flags, and data-parallel training."""

import json
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest

from modeling.nodule_segmentation.optimizers import GroupedAdamW
from tests.checkers import run_on_two_jax_cpu_devices
from training.nodule_segmentation import analysis
from training.nodule_segmentation import train as train_module
from training.nodule_segmentation.config import NoduleSegmentationConfig

# A small backbone keeps the command tests fast (ResNet-50 is the default).
TINY = [
    "--backbone",
    "mobilenet_v3_small",
    "--img_size",
    "32",
    "--phantom_n_cases",
    "16",
    "--phantom_size",
    "32",
    "--batch_size",
    "4",
    "--val_every",
    "1",
]


class Killed(Exception):
    pass


def test_command_killed_resumes_then_evaluates_and_the_analyser_reads_its_model(tmp_path, monkeypatch):
    flags = TINY + ["--epochs", "2", "--phantom_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "run")]
    original = train_module.callbacks_for

    def killed_after_the_first_epoch(config, run, loss):
        class Kill(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 0:
                    raise Killed()

        return original(config, run, loss) + [Kill()]

    monkeypatch.setattr(train_module, "callbacks_for", killed_after_the_first_epoch)
    with pytest.raises(Killed):
        train_module.run(flags)
    monkeypatch.setattr(train_module, "callbacks_for", original)
    results = train_module.run(flags)
    log = pd.read_csv(tmp_path / "run" / "training_log.csv")
    assert log["epoch"].tolist() == [0, 1]  # the second start continued at epoch 2
    assert results["epochs_trained"] == 2 and results["n_test"] == 3
    assert {"dice", "iou", "precision", "recall", "hd95", "attention_gt_overlap"} <= set(results["test"])
    cases = pd.read_csv(tmp_path / "run" / "cases_test.csv")
    assert len(cases) == 3 and cases["dice"].notna().all()
    assert json.loads((tmp_path / "run" / "results.json").read_text())["config"]["epochs"] == 2
    summary = analysis.run(
        [
            "--model",
            str(tmp_path / "run" / "best.keras"),
            "--data_dir",
            str(tmp_path / "data"),
            "--output_dir",
            str(tmp_path / "an"),
        ]
    )
    assert summary["n_cases"] == 16 and (tmp_path / "an" / "overlays.png").is_file()
    with pytest.raises(SystemExit, match="finished"):
        train_module.run(flags)  # a finished run is not replaced without --overwrite


def test_flags_and_presets(capsys):
    config = train_module.parse_args(["--preset", "original", "--alpha", "0.2"])
    assert (config.img_size, config.batch_size, config.epochs, config.lr, config.alpha) == (512, 2, 150, 5e-5, 0.2)
    original = train_module.parse_args(["--preset", "original"])
    assert (original.alpha, original.attention_pooling, original.detach_fused_attention) == (None, "bilinear", False)
    # the preset's detached map applies to the supervised attention only
    assert train_module.parse_args([]).detach_fused_attention
    assert not train_module.parse_args(["--model_type", "lightweight"]).detach_fused_attention
    assert not train_module.parse_args(
        ["--model_type", "anatomical", "--detach_fused_attention"]
    ).detach_fused_attention
    assert train_module.parse_args([]) == NoduleSegmentationConfig().validated()
    assert train_module.parse_args(["--attention_pooling", "max"]).attention_pooling == "max"
    with pytest.raises(SystemExit):
        train_module.parse_args(["--img_size", "100"])
    assert "--img_size: img_size must be a positive multiple of 32" in capsys.readouterr().err


def test_grouped_adamw_scales_each_groups_step_and_decay():
    variables = {
        name: keras.Variable(np.ones(2, "float32"), name=name) for name in ("conv5_x", "spatial_attention_w", "head")
    }
    optimizer = GroupedAdamW(0.1, weight_decay=0.5, lr_multipliers={"^conv[1-5]_": 0.1, "attention": 2.0})
    optimizer.apply([keras.ops.ones(2)] * 3, list(variables.values()))
    # Adam's first step moves by lr * factor; decay first: w * (1 - wd * lr * factor)
    for name, factor in (("conv5_x", 0.1), ("spatial_attention_w", 2.0), ("head", 1.0)):
        expected = 1 - 0.5 * 0.1 * factor - 0.1 * factor
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[name]), expected, rtol=1e-4)
    assert GroupedAdamW.from_config(optimizer.get_config()).lr_multipliers == optimizer.lr_multipliers


DATA_PARALLEL = textwrap.dedent(
    """
    import json, sys
    from training.nodule_segmentation import train
    results = train.run(sys.argv[1:])
    print("RESULT " + json.dumps({"replicas": results["replicas"], "dice": results["val"]["dice"]}))
    """
)


def test_data_parallel_on_two_logical_cpu_devices(tmp_path):
    script = tmp_path / "data_parallel.py"
    script.write_text(DATA_PARALLEL)
    flags = TINY + [
        "--epochs",
        "1",
        "--distribute",
        "data_parallel",
        "--phantom_dir",
        str(tmp_path / "d"),
        "--output_dir",
        str(tmp_path / "r"),
    ]
    completed = run_on_two_jax_cpu_devices([str(script), *flags])
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, completed.stdout[-2000:] + completed.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["replicas"] == 2 and 0.0 <= result["dice"] <= 1.0

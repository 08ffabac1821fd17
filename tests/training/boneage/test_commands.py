"""The training, prediction, evaluation, data-check and sweep commands, end to end on tiny phantoms."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from tests.training.boneage.commands import TINY
from training.boneage import check_data, evaluate, phantom, predict, sweep, tune
from training.boneage import train as train_boneage


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("run")
    argv = [
        "--data_dir",
        str(data_dir),
        *TINY,
        "--epochs_frozen",
        "1",
        "--fine_tune",
        "--epochs_finetune",
        "1",
        "--unfreeze_layers",
        "2",
        "--interpolation",
        "nearest",
        "--output_dir",
        str(output),
    ]
    results = train_boneage.run(argv)
    return output, results, argv


def test_results_json_holds_the_metrics_of_the_prediction_csv(finished_run):
    output, results, _ = finished_run
    saved = json.loads((output / "results.json").read_text())
    for key in (
        "val_mae_months",
        "test_mae_months",
        "test_rmse_months",
        "test_correlation",
        "test_mae_months_tta",
        "n_train",
        "n_val",
        "n_test",
        "wall_seconds",
    ):
        assert key in saved, key
    assert (saved["n_train"], saved["n_val"], saved["n_test"]) == (24, 8, 8)
    predictions = pd.read_csv(output / "predictions_test.csv")
    errors = predictions["predicted_bone_age"] - predictions["true_bone_age"]
    assert saved["test_mae_months"] == pytest.approx(errors.abs().mean(), rel=1e-5)
    assert saved["test_rmse_months"] == pytest.approx(np.sqrt((errors**2).mean()), rel=1e-5)
    assert saved["epochs_trained"] == 2 and saved["config"]["model_type"] == "attn_sex_improved"
    # the original's keys: best validation MAE (z-units) and its 1-based epoch, test MAE in z-units
    log = train_boneage.read_training_log(output)
    assert saved["best_val_mae"] == pytest.approx(log["val_mae"].min(), rel=1e-6)
    assert saved["best_val_epoch"] == int(log["val_mae"].to_numpy().argmin()) + 1
    std = saved["target_std_months"]
    assert saved["test_mae_zscore"] == pytest.approx(saved["test_mae_months"] / std, rel=1e-6)
    assert saved["best_val_mae_months"] == pytest.approx(saved["best_val_mae"] * std, rel=1e-6)
    assert log["learning_rate"].notna().all()


def test_results_give_the_test_mae_as_a_multiple_of_the_phantom_error_floor(finished_run, data_dir):
    _, results, _ = finished_run
    floor = json.loads((data_dir / phantom.MANIFEST).read_text())["splits"]["test"]["error_floor_mae_months"]
    assert results["test_error_floor_mae_months"] == floor > 0
    assert results["test_mae_to_floor"] == pytest.approx(results["test_mae_months"] / floor, rel=1e-9)
    assert results["test_mae_to_floor_tta"] == pytest.approx(results["test_mae_months_tta"] / floor, rel=1e-9)


def test_saved_model_predicts_months_from_raw_pixels(finished_run, data_dir):
    output, results, argv = finished_run
    assert "--interpolation" in argv and "nearest" in argv  # a non-default the model must carry
    model = keras.saving.load_model(output / "best.keras", safe_mode=True)
    assert model.get_layer("resize").interpolation == "nearest"
    assert model.output.shape == (None, 1) and model.inputs[0].shape == (None, None, None, 3)
    layers = {layer.name for layer in model.layers}
    assert "boneage_months" in layers
    table = predict.images_table(
        output / "predictions_test.csv", image_dir=data_dir / phantom.TEST_DIR, id_column="image_id", sex_column="male"
    )
    predicted, _ = predict.predict_months(model, table)
    expected = pd.read_csv(output / "predictions_test.csv")["predicted_bone_age"].to_numpy()
    np.testing.assert_allclose(predicted, expected, rtol=1e-4)
    # any other size is resized inside: 128 px (each pixel twice, so "nearest" gives back the 64 px image)
    images = np.stack([np.asarray(keras.utils.load_img(path, target_size=(64, 64))) for path in table["path"][:3]])
    sex = table["male"].to_numpy("float32")[:3, None]
    at_64 = model.predict([images.astype("float32"), sex], verbose=0)
    at_128 = model.predict([np.repeat(np.repeat(images, 2, 1), 2, 2).astype("float32"), sex], verbose=0)
    np.testing.assert_allclose(at_128, at_64, rtol=1e-5)
    at_96x80 = model.predict([np.zeros((3, 96, 80, 3), "float32"), sex], verbose=0)
    assert at_96x80.shape == (3, 1) and np.isfinite(at_96x80).all()


def test_plots_and_logs_are_written(finished_run):
    output, _, _ = finished_run
    for name in (
        "learning_curve_loss.png",
        "test_predicted_vs_true.png",
        "test_bland_altman.png",
        "phase1/gate_weights.png",
        "phase2/gate_weights.png",
    ):
        assert (output / "plots" / name).stat().st_size > 1000, name
    assert list((output / "plots" / "attention" / "phase1").glob("*.png"))
    assert list((output / "plots" / "attention" / "phase2").glob("*.png"))
    log = train_boneage.read_training_log(output)
    assert log["phase"].tolist() == ["phase1", "phase2"] and {"val_mae_months", "gate_mean"} <= set(log.columns)


def test_a_finished_run_is_not_overwritten(finished_run):
    _, _, argv = finished_run
    with pytest.raises(SystemExit, match="already holds a finished train-boneage run"):
        train_boneage.run(argv)


def test_evaluate_reproduces_the_training_metrics(finished_run, data_dir, tmp_path):
    output, results, _ = finished_run
    csv = data_dir / phantom.TEST_CSV
    evaluation = evaluate.run(["--model", str(output / "best.keras"), "--csv", str(csv), "--output_dir", str(tmp_path)])
    assert evaluation["test_mae_months"] == pytest.approx(results["test_mae_months"], rel=1e-5)
    assert evaluation["test_correlation"] == pytest.approx(results["test_correlation"], rel=1e-4)
    assert json.loads((tmp_path / "evaluation.json").read_text())["test_n"] == 8


def test_predict_on_a_folder_with_one_sex(finished_run, data_dir, tmp_path):
    output, _, _ = finished_run
    out_csv = tmp_path / "p.csv"
    frame = predict.run(
        [
            "--model",
            str(output / "best.keras"),
            "--images",
            str(data_dir / phantom.TEST_DIR),
            "--sex",
            "F",
            "--output",
            str(out_csv),
            "--use_tta",
            "--tta_steps",
            "2",
        ]
    )
    assert len(frame) == 8 and (frame["male"] == 0.0).all()
    assert {"predicted_bone_age", "predicted_bone_age_tta"} <= set(pd.read_csv(out_csv).columns)
    with pytest.raises(SystemExit):
        predict.run(["--model", str(output / "best.keras"), "--images", str(data_dir / phantom.TEST_DIR)])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--use_cyclical_lr", "--lr", "1e-3", "--clr_max_lr", "1e-4"], "must exceed --lr"),
        (["--dropout_rate", "1.5"], "dropout_rate"),
        (["--epochs_frozen", "0", "--no-fine_tune"], "nothing to train"),
        (["--backbone", "vgg16"], "invalid choice"),
        (["--img_size", "0"], "img_size"),
        (["--backbone_lr_multiplier", "0.1"], "works with --unfreeze_schedule only"),
        (["--unfreeze_schedule", "4:0.5,2:1.0"], "increasing"),
        (["--unfreeze_schedule", "4:1.5"], "(0, 1]"),
        (["--unfreeze_schedule", "four"], "EPOCH:AMOUNT"),
    ],
)
def test_bad_flags_fail_before_training(flags, message, capsys):
    with pytest.raises(SystemExit):
        train_boneage.parse_args(flags)
    assert message in capsys.readouterr().err


def test_progressive_unfreezing_from_the_command_line(data_dir, tmp_path):
    argv = [
        "--data_dir",
        str(data_dir),
        *TINY,
        "--epochs_frozen",
        "1",
        "--fine_tune",
        "--epochs_finetune",
        "2",
        "--unfreeze_schedule",
        "1:0.5",
        "--backbone_lr_multiplier",
        "0.1",
        "--no-use_tta",
        "--output_dir",
        str(tmp_path / "run"),
    ]
    train_boneage.run(argv)
    log = train_boneage.read_training_log(tmp_path / "run")
    # phase 1 and the first phase-2 epoch: frozen; then half of the weighted backbone layers
    assert log["backbone_trainable_weights"].fillna(0).tolist()[1] == 0
    assert log["backbone_trainable_weights"].tolist()[2] > 0


def test_cyclical_lr_defaults_to_a_real_cycle():
    # the CPU preset sets its own peak (3e-3); the original preset leaves it to the 10 x --lr rule
    assert train_boneage.parse_args([]).clr_max_lr == pytest.approx(3e-3)
    args = train_boneage.parse_args(["--preset", "original", "--use_cyclical_lr", "--lr", "1e-4"])
    assert args.clr_max_lr == pytest.approx(1e-3)
    assert not train_boneage.parse_args(["--no-use_cyclical_lr"]).use_cyclical_lr


def test_original_preset_restores_the_original_settings():
    args = train_boneage.parse_args(["--preset", "original"])
    assert (args.backbone, args.img_size, args.weights, args.batch_size, args.lr) == (
        "xception",
        500,
        "imagenet",
        64,
        1e-4,
    )
    assert (args.dense_units, args.gender_units, args.epochs_frozen, args.epochs_finetune) == (500, 32, 5, 10)
    assert args.use_clahe_val_test and args.preprocessing == "original"


def test_check_data_reports_bad_rows(data_dir, tmp_path):
    csv = tmp_path / "val.csv"
    frame = pd.read_csv(data_dir / phantom.VAL_CSV, dtype=str)
    frame.loc[0, "male"] = "maybe"
    frame.loc[1, "Bone Age (months)"] = "-3"
    frame.to_csv(csv, index=False)
    status = check_data.main(
        ["--val_csv", str(csv), "--val_images", str(data_dir / phantom.VAL_DIR), "--report", str(tmp_path / "r.json")]
    )
    report = json.loads((tmp_path / "r.json").read_text())["val"]
    assert status == 1
    assert report["skipped"] == {"unknown sex": 1, "bad age": 1} and report["rows_kept"] == 6
    assert report["skipped_lines"] == {"unknown sex": [2], "bad age": [3]}


def test_sweep_writes_one_comparison_table(data_dir, tmp_path):
    table = sweep.run(
        [
            "--backbones",
            "mobilenet_v2,mobilenet_v3_small",
            "--sweep_dir",
            str(tmp_path),
            "--data_dir",
            str(data_dir),
            *[f for f in TINY if f not in ("--backbone", "mobilenet_v2")],
            "--epochs_frozen",
            "1",
            "--no-fine_tune",
            "--no-use_tta",
            "--model_type",
            "attn_sex",
        ]
    )
    assert sorted(table["backbone"]) == ["mobilenet_v2", "mobilenet_v3_small"]
    saved = pd.read_csv(tmp_path / "comparison.csv")
    assert saved["val_mae_months"].is_monotonic_increasing and len(saved) == 2


def test_tuner_searches_and_writes_the_best_hyperparameters(data_dir, tmp_path):
    summary = tune.run(
        [
            "--tuner",
            "random",
            "--max_trials",
            "2",
            "--max_epochs",
            "1",
            "--tuning_dir",
            str(tmp_path),
            "--data_dir",
            str(data_dir),
            *TINY,
            "--model_type",
            "attn_sex",
        ]
    )
    saved = json.loads((tmp_path / "best_hyperparameters.json").read_text())
    assert saved["trials"] == 2 and set(saved["best_hyperparameters"]) == {
        "dropout_rate",
        "dense_units",
        "gender_units",
        "loss_type",
        "lr",
    }
    train_std = pd.read_csv(data_dir / phantom.TRAIN_CSV)["boneage"].std()
    assert saved["best_val_mae_months"] == pytest.approx(saved["best_val_mae_z"] * train_std, rel=1e-6)
    assert summary["best_val_mae_z"] == saved["best_val_mae_z"] > 0

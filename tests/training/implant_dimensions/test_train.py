"""End to end on a tiny embedded dataset: pretraining both embedding models, then the regressor; data parallel."""

import dataclasses
import json

import keras
import numpy as np
import pandas as pd
import pytest

from modeling.implant_dimensions import DIMENSIONS
from modeling.losses import ScaledMeanSquaredError
from tests.checkers import run_on_two_jax_cpu_devices, run_on_two_tensorflow_cpu_devices
from training.cli import ConfigError
from training.data.tables import DataError
from training.implant_dimensions import train as train_module
from training.implant_dimensions.config import ImplantConfig
from training.implant_dimensions.data import read_split
from training.implant_dimensions.phantom import make_phantom
from training.implant_dimensions.predict import main as predict_main
from training.implant_dimensions.train import build_regressor, run_command, train

TINY = dict(
    image_size=32,
    patch_size=16,
    vit_layers=1,
    vit_hidden_dim=32,
    company_embed_dim=8,
    model_embed_dim=8,
    epochs=3,
    pretrain_epochs=1,
    batch_size=16,
    warmup_epochs=1,
    unfreeze_epoch=2,
    full_unfreeze_epoch=3,
)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(tmp_path_factory.mktemp("phantom"), n_train=32, n_val=16, n_test=16, image_size=40)


def test_the_command_pretrains_unfreezes_and_reports_every_target(phantom, tmp_path):
    flags = [f"--{k}={v}" for k, v in TINY.items()]
    results = run_command(
        [*flags, f"--data_dir={phantom}", f"--output_dir={tmp_path}", "--select_by=avg_mae", "--jit_compile=off"]
    )
    for key in ("val_length_mae", "val_diameter_rmse", "val_length_r2", "test_avg_mae"):
        assert key in results
    assert [change[0] for change in results["unfreezing"]["embedding_company"]] == [0, 1, 2]  # frozen at 0
    log = (tmp_path / "training_log.csv").read_text().splitlines()
    assert len(log) == 4 and "attention_weights_2" in log[0] and "val_avg_mae" in log[0]
    vocabulary = json.loads((tmp_path / "vocabulary.json").read_text())
    assert len(vocabulary["company"]) == results["vocabulary_sizes"]["company"]
    for target in ("company", "model"):
        assert (tmp_path / f"embedding_{target}.keras").exists()
        pretrain_log = pd.read_csv(tmp_path / f"pretrain_{target}_log.csv")
        assert len(pretrain_log) == TINY["pretrain_epochs"]
        assert results["pretraining_best_val_accuracy"][target] == pretrain_log["val_accuracy"].max()
    table = predict_main(
        [f"--model={tmp_path / 'best.keras'}", f"--json={phantom / 'test.json'}", f"--output={tmp_path / 'p.csv'}"]
    )
    assert len(table) == 16 and {"predicted_length", "predicted_diameter", "attention_weights_2"} <= set(table)
    # the CPU preset's loss: MSE of the sizes over the training split's standard deviations
    stds = read_split(phantom / "train.json").table[["length", "diameter"]].std(ddof=0)
    loss = keras.saving.load_model(tmp_path / "best.keras").loss[DIMENSIONS]
    assert isinstance(loss, ScaledMeanSquaredError) and loss.scale == pytest.approx(stds.tolist(), rel=1e-6)


def test_bad_entries_are_skipped_and_counted_and_bad_files_named(tmp_path, phantom):
    entries = json.loads((phantom / "train.json").read_text())[:4]
    entries[1]["length"] = "NaN"
    entries[2]["diameter"] = "wide"
    entries[3]["company"] = ""
    (tmp_path / "bad.json").write_text(json.dumps(entries))
    split = read_split(tmp_path / "bad.json", image_root=phantom)
    assert split.report.as_dict()["skipped"] == {"non-finite length": 1, "non-numeric diameter": 1, "empty company": 1}
    assert split.table["path"].iloc[0].startswith(str(phantom))
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(DataError, match="Cannot parse JSON .*broken.json"):
        read_split(tmp_path / "broken.json")
    (tmp_path / "keys.json").write_text(json.dumps([{"image": "x.png"}]))
    with pytest.raises(DataError, match=r"keys.json, entry 0: missing key\(s\) \['company'"):
        read_split(tmp_path / "keys.json")
    (tmp_path / "gone.json").write_text(json.dumps([dict(entries[0], image="gone.png")]))
    with pytest.raises(DataError, match="entry 0: image not found"):
        read_split(tmp_path / "gone.json", image_root=phantom)
    with pytest.raises(ConfigError, match="--unfreeze_epoch"):
        train(ImplantConfig(unfreeze_epoch=9, full_unfreeze_epoch=5))
    with pytest.raises(ConfigError, match="--loss must be one of"):
        train(ImplantConfig(loss="mae"))


@pytest.mark.parametrize("distribute", ["data_parallel", "mirrored"])
def test_scale_out_on_two_logical_cpu_devices(phantom, tmp_path, distribute):
    # the baseline (one ViT, nothing to pretrain) keeps the compiles short on 2 shared cores
    flags = [f"--{k}={v}" for k, v in dict(TINY, epochs=1, embeddings="none").items()]
    flags += [f"--data_dir={phantom}", f"--output_dir={tmp_path}", f"--distribute={distribute}"]
    if distribute == "data_parallel":
        run_on_two_jax_cpu_devices(["-m", "training.implant_dimensions.train", *flags, "--jit_compile=off"])
    else:
        run_on_two_tensorflow_cpu_devices("training.implant_dimensions.train", flags)
    results = json.loads((tmp_path / "results.json").read_text())
    backend = "jax" if distribute == "data_parallel" else "tensorflow"
    assert (results["backend"], results["distribute"], results["replicas"]) == (backend, distribute, 2)
    log = pd.read_csv(tmp_path / "training_log.csv")
    assert len(log) == 1 and np.isfinite(log["val_avg_mae"]).all() and np.isfinite(results["test_avg_mae"])


def test_training_without_augmentation_shuffles_the_validation_transform(phantom):
    from training.implant_dimensions.data import make_dataset

    table = read_split(phantom / "train.json").table
    rows = np.arange(len(table), dtype="int32")

    def images_by_row(**options):
        pairs = [
            (int(r), np.asarray(x))
            for xs, ys in make_dataset(table, 24, 8, labels=rows, **options)
            for x, r in zip(xs, ys, strict=True)
        ]
        return [r for r, _ in pairs], dict(pairs)

    order, plain = images_by_row(training=True, augment=False, seed=3)
    val_order, val = images_by_row(training=False)
    assert val_order == list(range(len(table)))
    assert sorted(order) == val_order and order != val_order  # every row once, shuffled
    for row in val_order:  # each image is exactly the validation transform of its row
        np.testing.assert_array_equal(plain[row], val[row])
    _, augmented = images_by_row(training=True, seed=3)
    assert max(np.abs(augmented[r] - val[r]).max() for r in val_order) > 0.5


def test_vit_weights_come_from_keras_hub_presets(phantom, tmp_path, monkeypatch):
    import keras_hub

    original = ImplantConfig.from_preset("original").validated()
    assert original.vit_weights_preset == "vit_base_patch16_224_imagenet" and original.vit_overrides == {}
    large = ImplantConfig.from_preset("original", model_size="large").validated()
    assert large.vit_weights_preset == "vit_large_patch16_224_imagenet"
    with pytest.raises(ConfigError, match="--vit_weights imagenet: .* not 'tiny'"):
        ImplantConfig.from_preset("original", model_size="tiny").validated()
    with pytest.raises(ConfigError, match="pass --vit_layers none --vit_hidden_dim none"):
        ImplantConfig(vit_weights="imagenet", model_size="base").validated()  # the CPU preset's small ViT
    # a local preset directory: its weights arrive in the ViT the command builds
    source = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=16, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64
    )
    source.save_to_preset(tmp_path / "vit")
    config = ImplantConfig(
        image_size=32, vit_weights=str(tmp_path / "vit"), vit_layers=None, vit_hidden_dim=None, embeddings="none"
    ).validated()
    model = build_regressor(config, {}, ([10.0, 4.0], [2.0, 1.0]))
    expected = source.get_layer("vit_patching_and_embedding").get_weights()
    for got, want in zip(model.get_layer("patch_embedding").get_weights(), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    # and pretraining builds its classifiers from the same weights
    seen = {}

    def stop_at_the_classifier(**arguments):
        seen.update(arguments)
        raise InterruptedError

    monkeypatch.setattr(train_module, "embedding_classifier", stop_at_the_classifier)
    with pytest.raises(InterruptedError):
        train(dataclasses.replace(config, embeddings="dual", data_dir=str(phantom), output_dir=str(tmp_path / "run")))
    assert seen["weights"] == str(tmp_path / "vit") and seen["vit_overrides"] == {}

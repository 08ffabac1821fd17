"""BoneAgeConfig: the training command's flags, one field each; presets; validation."""

import dataclasses

import pytest

from training.boneage import PRESETS, BoneAgeConfig
from training.boneage import train as train_boneage
from training.cli import ConfigError


def test_every_flag_is_a_config_field_and_back():
    dests = {action.dest for action in train_boneage.build_parser()._actions if action.dest != "help"}
    assert dests == {field.name for field in dataclasses.fields(BoneAgeConfig)}


def test_the_cpu_preset_is_the_default_and_the_command_line_gives_the_same_config():
    assert BoneAgeConfig.from_preset("cpu") == BoneAgeConfig()
    assert train_boneage.parse_args([]) == BoneAgeConfig().validated()
    assert train_boneage.parse_args(["--preset", "original", "--lr", "3e-4"]) == (
        BoneAgeConfig.from_preset("original", lr=3e-4).validated()
    )


def test_presets_hold_the_original_and_the_cpu_settings():
    cpu, original = BoneAgeConfig(), BoneAgeConfig.from_preset("original")
    assert (cpu.backbone, cpu.img_size, cpu.epochs_frozen, cpu.epochs_finetune, cpu.bn_momentum) == (
        "mobilenet_v2",
        128,
        0,
        24,
        0.9,
    )
    # the CPU preset: triangular2 from 1e-4 to 3e-3, half the original's geometric augmentation
    assert (cpu.use_cyclical_lr, cpu.clr_mode, cpu.lr, cpu.clr_max_lr) == (True, "triangular2", 1e-4, 3e-3)
    assert (cpu.augment_rotation, cpu.augment_shift, cpu.augment_zoom, cpu.augment_brightness) == (10, 0.1, 0.1, 0)
    # the original: ReduceLROnPlateau at a constant 1e-4, ImageDataGenerator's 20 degrees, 0.2, 0.2
    assert (original.use_cyclical_lr, original.lr, original.clr_max_lr) == (False, 1e-4, None)
    assert (original.augment_rotation, original.augment_shift, original.augment_zoom) == (20, 0.2, 0.2)
    assert (original.augment_brightness, original.augment_contrast) == (0, 0)
    assert (original.model_type, original.use_tta, original.bn_momentum, original.output_dir) == (
        "baseline",
        False,
        None,
        "runs/boneage_original",
    )
    assert set(PRESETS) == {"cpu", "original"}


def test_help_shows_each_presets_value(capsys):
    with pytest.raises(SystemExit):
        train_boneage.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "[presets: cpu 128, original 500]" in help_text
    assert "[presets: cpu mobilenet_v2, original xception]" in help_text


def test_validation_names_the_setting_and_fills_derived_defaults():
    assert BoneAgeConfig(lr=2e-4, clr_max_lr=None).validated().clr_max_lr == pytest.approx(2e-3)
    assert BoneAgeConfig(weights="None").validated().weights is None
    with pytest.raises(ConfigError, match="--dropout_rate must be in"):
        BoneAgeConfig(dropout_rate=1.0).validated()
    with pytest.raises(ConfigError, match=r"Unknown setting\(s\) \['learning_rate'\]"):
        BoneAgeConfig.from_preset("cpu", learning_rate=0.1)
    with pytest.raises(ConfigError, match="Unknown preset 'gpu'"):
        BoneAgeConfig.from_preset("gpu")


def test_the_originals_remaining_flags():
    config = train_boneage.parse_args(
        ["--batch_size_train", "8", "--batch_size_val", "4", "--no_clahe", "--weight_decay", "0.01"]
        + ["--gradient_clip_norm", "0", "--cache", "disk", "--preset", "original"]
    )
    assert (config.batch_size, config.split_batch_size("val"), config.split_batch_size("test")) == (8, 4, 32)
    assert config.use_clahe_val_test is False and config.cache == "disk"
    optimizer = train_boneage.make_optimizer(config, 1e-3)
    assert type(optimizer).__name__ == "AdamW" and optimizer.clipnorm is None
    assert optimizer.weight_decay == pytest.approx(0.01)
    assert train_boneage.parse_args([]).use_clahe_val_test is False
    assert train_boneage.parse_args(["--preset", "original"]).use_clahe_val_test is True
    assert train_boneage.make_optimizer(train_boneage.parse_args([]), 1e-3).clipnorm == 1.0
    with pytest.raises(ConfigError, match="--weight_decay must be >= 0"):
        BoneAgeConfig(weight_decay=-1.0).validated()
    with pytest.raises(ConfigError, match="--batch_size_val must be a positive integer"):
        BoneAgeConfig(batch_size_val=0).validated()

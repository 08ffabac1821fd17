"""Bone age: train, evaluate, predict, search and sweep from Python; the commands wrap these.

>>> from training.boneage import BoneAgeConfig
>>> from training.boneage.train import train
>>> config = BoneAgeConfig.from_preset("cpu", epochs_finetune=2, output_dir="runs/quick")
>>> config.model_type
'attn_sex_improved'

``train(config)`` returns the results dictionary (also written to ``results.json``); likewise
``sweep.sweep(config, backbones)`` and ``tune.tune(config, ...)``. Each module named after a
command (`train`, `evaluate`, `predict`, `sweep`, `tune`, `check_data`, `make_phantom`) also has
``main()``, its console script. The others: `config` (settings, presets), `tables` (RSNA and
original CSV layouts), `pipeline` (`tf.data`), `data_sources` (where the splits live), `phantom`
(the synthetic dataset), `evaluation` (metrics and plots).
"""

from training.boneage.config import PRESETS, BoneAgeConfig

__all__ = ["PRESETS", "BoneAgeConfig"]

"""The volume_fusion system's commands, data and evaluation.

* `config`: `VolumeFusionConfig` (presets "cpu" and "original"); `train`: `train(config)` and the command.
* `tables`: the Excel workbook / CSV reader; `data`: splits, volumes in memory and `tf.data` pipelines.
* `phantom`: the deterministic synthetic hip-MRI dataset in the original's layout.
"""

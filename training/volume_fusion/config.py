"""The settings of one volume-fusion training run, as a typed object: what `train` takes.

`VolumeFusionConfig()` is the CPU preset (embedded synthetic hips, 32^3 volumes, a ResNet-18 at an
eighth of its width); ``from_preset("original")`` restores the original's settings (64^3, ResNet-50,
batch 128, 100 epochs). The training command's flags are these fields, one to one.
"""

import dataclasses
from typing import ClassVar

from modeling.backbones.resnet3d import DEPTHS, SHORTCUT_TYPES
from modeling.volume_fusion import FUSIONS
from training.cli import ConfigError
from training.config import RunConfig

MODELS = ("learned_feature_fusion", "feature_fusion", "image_only", "metadata_only", "probability_fusion",
          "learned_feature_fusion_variant")  # fmt: skip
ORIGINAL_PRESET = {
    "depth": 50,
    "widen_factor": 1.0,
    "volume_size": 64,
    "batch_size": 128,
    "epochs": 100,
    "loss": "bce",
    "label_smoothing": 0.01,
    "rotation_degrees": 180.0,
    "output_dir": "runs/volume_fusion_original",
}
PRESETS = {"cpu": {}, "original": ORIGINAL_PRESET}
RESUME_INDEPENDENT = ("overwrite", "output_dir", "coordinator", "verbose")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SELECT_BY = ("accuracy", "auc", "pr_auc")


@dataclasses.dataclass
class VolumeFusionConfig(RunConfig):
    """Every setting of a volume-fusion training run (the flags of ``train-volume-fusion``).

    Example:

    >>> config = VolumeFusionConfig.from_preset("cpu", epochs=2)
    >>> config.depth, config.volume_size, config.epochs
    (18, 32, 2)
    >>> VolumeFusionConfig.from_preset("original").depth
    50
    """

    PRESETS: ClassVar[dict] = PRESETS

    # model
    model: str = "learned_feature_fusion"
    fusion: str = "concat"
    depth: int = 18
    widen_factor: float = 0.125
    stem_stride: int = 1
    shortcut_type: str = "B"
    backbone_weights: str | None = None
    dropout_rate: float = 0.25
    volume_size: int = 32
    # training
    loss: str = "focal"
    focal_gamma: float = 2.0
    focal_alpha: str = "dynamic"
    label_smoothing: float = 0.0
    pos_weight: float = 3.0
    optimizer: str = "adam"
    lr: float = 1e-4
    min_lr: float = 1e-7
    weight_decay: float = 0.0
    batch_size: int = 16
    epochs: int = 20
    select_by: str = "accuracy"
    seed: int = 42
    # data
    data_dir: str | None = None
    train_table: str | None = None
    val_table: str | None = None
    test_table: str | None = None
    image_dir: str | None = None
    train_sheet: str = "2year model"
    eval_sheet: str = "2 year FU model"
    study_column: str = "Study number"
    side_column: str = "Side"
    target_column: str = "THP"
    metadata_columns: str = "Age,Gender,Treatment,Luxation"
    gender_column: str = "Gender"
    path_column: str | None = None
    on_bad_rows: str = "raise"
    augment: bool = True
    flip: bool = True
    rotation_degrees: float = 15.0
    phantom_n_train: int = 200
    phantom_n_val: int = 100
    phantom_n_test: int = 100
    # output
    output_dir: str = "runs/volume_fusion_cpu"
    overwrite: bool = False
    verbose: bool = False

    @property
    def metadata_list(self):
        return [c.strip() for c in self.metadata_columns.split(",") if c.strip()]

    def validated(self):
        """A checked copy; ``focal_alpha`` is "dynamic" or a number, ``"none"`` strings mean ``None``.

        Raises:
            ConfigError: naming the flag at fault.
        """
        config = dataclasses.replace(self)
        choices = {"model": MODELS, "fusion": FUSIONS, "depth": tuple(DEPTHS), "shortcut_type": SHORTCUT_TYPES,
                   "loss": ("focal", "bce"), "optimizer": OPTIMIZERS, "select_by": SELECT_BY,
                   "on_bad_rows": ("raise", "skip")}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(config, name) not in allowed:
                raise ConfigError(
                    f"--{name} must be one of {', '.join(map(str, allowed))}; got {getattr(config, name)!r}"
                )
        for name in ("volume_size", "batch_size", "epochs", "stem_stride"):
            value = getattr(config, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ConfigError(f"--{name} must be a positive integer; got {value}")
        for name in ("lr", "widen_factor", "pos_weight"):
            if getattr(config, name) <= 0:
                raise ConfigError(f"--{name} must be positive; got {getattr(config, name)}")
        if not 0 <= config.min_lr < config.lr:
            raise ConfigError(f"--min_lr must be in [0, --lr); got {config.min_lr}")
        if config.focal_gamma < 0 or not 0 <= config.label_smoothing < 1 or not 0 <= config.dropout_rate < 1:
            raise ConfigError("--focal_gamma must be >= 0, --label_smoothing and --dropout_rate in [0, 1)")
        if config.focal_alpha != "dynamic":
            try:
                alpha = float(config.focal_alpha)
            except ValueError:
                raise ConfigError(
                    f"--focal_alpha must be 'dynamic' or a number in [0, 1]; got {config.focal_alpha!r}"
                ) from None
            if not 0 <= alpha <= 1:
                raise ConfigError(f"--focal_alpha must be 'dynamic' or a number in [0, 1]; got {alpha}")
        if not config.metadata_list and config.model != "image_only":
            raise ConfigError("--metadata_columns is empty; the model needs at least one metadata column")
        if config.gender_column and str(config.gender_column).lower() != "none":
            if config.gender_column not in config.metadata_list:
                raise ConfigError(f"--gender_column {config.gender_column!r} is not in --metadata_columns")
        else:
            config.gender_column = None
        explicit = [config.train_table, config.val_table, config.test_table]
        if any(explicit) and not (all(explicit) and config.image_dir):
            raise ConfigError("--train_table, --val_table, --test_table and --image_dir go together")
        if any(explicit) and config.data_dir:
            raise ConfigError("give either --data_dir (the embedded layout) or the explicit tables, not both")
        for name in ("backbone_weights", "path_column"):
            if str(getattr(config, name)).lower() == "none":
                setattr(config, name, None)
        config.check_scale_out()
        return config

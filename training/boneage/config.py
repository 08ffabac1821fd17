"""The settings of one bone-age training run, as a typed object: what `train` takes.

`BoneAgeConfig()` is the CPU preset (the main job); `BoneAgeConfig.from_preset("original", ...)`
restores the original scripts' settings. The training command's flags are these fields, one to one.
"""

import dataclasses
from typing import ClassVar

from callbacks import BackboneFreezer
from training.cli import ConfigError
from training.config import RunConfig

# The original scripts' defaults (train_advanced_FIXED_enhanced.py) for real data on a GPU: the
# fields that differ from the CPU preset.
ORIGINAL_PRESET = {
    "backbone": "xception",
    "model_type": "baseline",
    "weights": "imagenet",
    "img_size": 500,
    "batch_size": 64,
    "batch_size_val": 32,
    "batch_size_test": 32,
    "lr": 1e-4,
    "dropout_rate": 0.5,
    "dense_units": 500,
    "gender_units": 32,
    "epochs_frozen": 5,
    "epochs_finetune": 10,
    "fine_tune": False,
    "unfreeze_layers": 2,
    "finetune_lr_factor": 0.1,
    "bn_momentum": None,
    "use_clahe_val_test": True,
    "preprocessing": "original",
    "interpolation": "nearest",
    "use_cyclical_lr": False,
    "clr_max_lr": None,
    "clr_step_size": 2000,
    "clr_mode": "triangular",
    "augment_rotation": 20.0,
    "augment_shift": 0.2,
    "augment_zoom": 0.2,
    "use_tta": False,
    "output_dir": "runs/boneage_original",
}
# The CPU preset is the fields' defaults: it fits in about 10 minutes on 2 CPU cores
# (MobileNetV2 trained from scratch on 128 px phantoms, a triangular2 cyclical learning rate, the
# original's augmentation at half its geometric strength).
PRESETS = {"cpu": {}, "original": ORIGINAL_PRESET}
# Where decoded training and validation images are kept: in memory, in the run folder, or nowhere.
CACHE_CHOICES = ("memory", "disk", "none")
# Settings that may change when a killed run is started again: they do not change what is trained.
RESUME_INDEPENDENT = ("overwrite", "output_dir", "attention_every", "use_tta", "tta_steps", "coordinator", "verbose")


@dataclasses.dataclass
class BoneAgeConfig(RunConfig):
    """Every setting of a bone-age training run (the flags of ``train-boneage``).

    Example:

    >>> config = BoneAgeConfig.from_preset("cpu", epochs_finetune=2, output_dir="runs/try")
    >>> config.backbone, config.img_size, config.epochs_finetune
    ('mobilenet_v2', 128, 2)
    >>> BoneAgeConfig.from_preset("original").img_size
    500
    """

    PRESETS: ClassVar[dict] = PRESETS

    # model
    model_type: str = "attn_sex_improved"
    backbone: str = "mobilenet_v2"
    weights: str | None = None
    activation: str = "tanh"
    dropout_rate: float = 0.2
    dense_units: int = 64
    gender_units: int = 16
    img_size: int = 128
    preprocessing: str = "backbone"
    bn_momentum: float | None = 0.9
    # training
    lr: float = 1e-4
    batch_size: int = 32
    batch_size_val: int | None = None
    batch_size_test: int | None = None
    epochs_frozen: int = 0
    epochs_finetune: int = 24
    fine_tune: bool = True
    unfreeze_layers: int = -1
    finetune_lr_factor: float = 1.0
    unfreeze_schedule: str | None = None
    backbone_lr_multiplier: float = 1.0
    loss_type: str = "mae"
    huber_delta: float = 1.0
    smooth_l1_sigma: float = 1.0
    wing_w: float = 10.0
    wing_epsilon: float = 2.0
    use_cyclical_lr: bool = True
    clr_max_lr: float | None = 3e-3
    clr_step_size: int = 113  # 3 epochs of the phantom's 1,200 training images at batch 32
    clr_mode: str = "triangular2"
    clr_gamma: float = 1.0
    early_stopping_patience: int = 0
    gradient_clip_norm: float = 1.0
    weight_decay: float = 0.0
    seed: int = 42
    # data
    data_dir: str | None = None
    train_csv: str | None = None
    train_images: str | None = None
    val_csv: str | None = None
    val_images: str | None = None
    test_csv: str | None = None
    test_images: str | None = None
    layout: str = "auto"
    id_column: str | None = None
    age_column: str | None = None
    sex_column: str | None = None
    filename_column: str | None = None
    image_extension: str = ".png"
    on_bad_rows: str = "raise"
    allow_shared_images: bool = False
    use_clahe_val_test: bool = False
    interpolation: str = "bilinear"
    cache: str = "memory"
    label_noise_std: float = 0.0
    mixup_alpha: float = 0.0
    augment: bool = True
    augment_rotation: float = 10.0
    augment_shift: float = 0.1
    augment_zoom: float = 0.1
    augment_brightness: float = 0.0
    augment_contrast: float = 0.0
    phantom_n_train: int = 1200
    phantom_n_val: int = 200
    phantom_n_test: int = 300
    # evaluation and output
    use_tta: bool = True
    tta_steps: int = 8
    output_dir: str = "runs/boneage_cpu"
    overwrite: bool = False
    attention_every: int = 5
    verbose: bool = False

    def split_batch_size(self, split):
        """The batch size of ``split`` ("train", "val" or "test"): ``batch_size_<split>``, else ``batch_size``.

        Example:

        >>> BoneAgeConfig.from_preset("original").split_batch_size("test")
        32
        """
        size = None if split == "train" else getattr(self, f"batch_size_{split}")
        return self.batch_size if size is None else size

    def validated(self):
        """A checked copy with the derived defaults filled in.

        ``clr_max_lr`` defaults to 10 x ``lr`` with ``use_cyclical_lr``, and ``weights="none"``
        means ``None``.

        Raises:
            ConfigError: naming the setting at fault.
        """
        config = dataclasses.replace(self)
        for name in ("img_size", "batch_size", "dense_units", "gender_units", "tta_steps", "clr_step_size"):
            value = getattr(config, name)
            if value is None or isinstance(value, bool) or int(value) != value or value < 1:
                raise ConfigError(f"--{name} must be a positive integer; got {value}")
        for name in ("batch_size_val", "batch_size_test"):
            value = getattr(config, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ConfigError(f"--{name} must be a positive integer; got {value}")
        if not config.lr or config.lr <= 0:
            raise ConfigError(f"--lr must be positive; got {config.lr}")
        if config.epochs_frozen < 0 or config.epochs_finetune < 0:
            raise ConfigError("--epochs_frozen and --epochs_finetune must be >= 0")
        if config.epochs_frozen + (config.epochs_finetune if config.fine_tune else 0) == 0:
            raise ConfigError("nothing to train: set --epochs_frozen, or --fine_tune with --epochs_finetune")
        if not 0 <= config.dropout_rate < 1:
            raise ConfigError(f"--dropout_rate must be in [0, 1); got {config.dropout_rate}")
        if config.use_cyclical_lr:
            config.clr_max_lr = config.clr_max_lr if config.clr_max_lr is not None else 10 * config.lr
            if config.clr_max_lr <= config.lr:
                raise ConfigError(
                    f"--clr_max_lr ({config.clr_max_lr}) must exceed --lr ({config.lr}), else the cycle is flat"
                )
        if config.gradient_clip_norm < 0 or config.weight_decay < 0:
            raise ConfigError("--gradient_clip_norm and --weight_decay must be >= 0 (0 disables each)")
        if config.label_noise_std < 0 or config.mixup_alpha < 0:
            raise ConfigError("--label_noise_std and --mixup_alpha must be >= 0")
        if config.unfreeze_schedule:
            try:
                BackboneFreezer(parse_unfreeze_schedule(config.unfreeze_schedule), config.backbone_lr_multiplier)
            except ValueError as error:
                raise ConfigError(str(error)) from None
            if config.distribute != "none":
                raise ConfigError(
                    f"--unfreeze_schedule cannot be combined with --distribute {config.distribute} "
                    "(its optimizer rebuild is not distributed)"
                )
        elif config.backbone_lr_multiplier != 1.0:
            raise ConfigError("--backbone_lr_multiplier works with --unfreeze_schedule only")
        if config.cache not in CACHE_CHOICES:
            raise ConfigError(f"--cache must be one of {', '.join(CACHE_CHOICES)}; got {config.cache!r}")
        config.check_scale_out()
        config.weights = None if str(config.weights).lower() == "none" else config.weights
        return config


def parse_unfreeze_schedule(text):
    """``"20:0.5,40:1.0"`` -> ``{20: 0.5, 40: 1.0}`` (a float is a fraction, an int a layer count).

    Example:

    >>> parse_unfreeze_schedule("20:0.5,40:8")
    {20: 0.5, 40: 8}
    """
    schedule = {}
    for item in text.split(","):
        epoch, _, amount = item.partition(":")
        try:
            schedule[int(epoch)] = float(amount) if "." in amount else int(amount)
        except ValueError:
            raise ValueError(f"--unfreeze_schedule item {item!r} is not EPOCH:AMOUNT (e.g. 20:0.5)") from None
    return schedule

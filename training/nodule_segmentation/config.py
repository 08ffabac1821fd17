"""The settings of one nodule-segmentation training run, as a typed object: what `train` takes.

`NoduleSegmentationConfig()` is the CPU preset: embedded synthetic DRRs at 128 px (a 4x4 ResNet grid),
batch 4, base LR 1e-3, the supervised attention left out of the alignment gradient and of the
segmentation's (max-pooled onto the grid, alpha 1.0), training stopped after 8 minutes so the whole
run fits in 10 on 2 cores. ``from_preset("original")`` restores
``IMPROVED_CONFIG`` of the original (512 px, batch 2, 150 epochs, base LR 5e-5, its loss). The
training command's flags are these fields, one to one.
"""

import dataclasses
from typing import ClassVar

from modeling.losses.segmentation import ALIGNMENTS
from modeling.nodule_segmentation import check_image_size
from modeling.nodule_segmentation.layers import POOLINGS, UPSAMPLED_CONV_MODES
from modeling.nodule_segmentation.models import NODULE_BRANCHES
from training.cli import ConfigError
from training.config import RunConfig

MODEL_TYPES = ("improved", "anatomical", "lightweight")
ORIGINAL_PRESET = {
    "alpha": None,  # the model's own: 0.3 improved, 0.1 lightweight
    "attention_pooling": "bilinear",
    "detach_fused_attention": False,
    "img_size": 512,
    "batch_size": 2,
    "epochs": 150,
    "lr": 5e-5,
    "align_supervised_attention": True,
    "val_every": 5,
    "test_fraction": 0.0,
    "time_budget_minutes": 0.0,
    "phantom_n_cases": 600,
    "phantom_size": 512,
    "output_dir": "runs/nodule_segmentation_original",
}
PRESETS = {"cpu": {}, "original": ORIGINAL_PRESET}
# Settings that may change when a killed run is started again: they do not change what is trained.
RESUME_INDEPENDENT = ("overwrite", "output_dir", "verbose", "coordinator")


@dataclasses.dataclass
class NoduleSegmentationConfig(RunConfig):
    """Every setting of a nodule-segmentation run (the flags of ``train-nodule-segmentation``).

    Example:

    >>> config = NoduleSegmentationConfig.from_preset("original")
    >>> config.img_size, config.batch_size, config.epochs, config.lr
    (512, 2, 150, 5e-05)
    >>> NoduleSegmentationConfig(img_size=100).validated()
    Traceback (most recent call last):
    training.cli.ConfigError: --img_size: img_size must be a positive multiple of 32 (the segmentation head upsamples the 1/32 feature grid by 32); got 100.
    """

    PRESETS: ClassVar[dict] = PRESETS

    # model
    model_type: str = "improved"
    backbone: str = "resnet50"
    weights: str | None = None
    img_size: int = 128
    alpha: float | None = 1.0
    attention_pooling: str = "max"
    detach_fused_attention: bool = True
    anatomical_upsampling: str = "exact"
    nodule_branch: str = "fallback"
    train_whole_backbone: bool = False
    # loss (ImprovedCombinedLoss)
    seg_weight: float = 1.0
    attention_weight: float = 0.5
    dice_weight: float = 0.3
    bce_weight: float = 0.7
    alignment_weight: float = 0.1
    alignment: str = "mse"
    align_supervised_attention: bool = False
    use_focal_loss: bool = True
    # training
    epochs: int = 40
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    backbone_lr_factor: float = 0.1
    attention_lr_factor: float = 2.0
    clip_norm: float = 1.0
    val_every: int = 2
    lr_patience: int = 15
    lr_factor: float = 0.5
    min_lr: float = 1e-7
    early_stopping_patience: int = 25
    time_budget_minutes: float = 8.0
    seed: int = 42
    # data
    data_dir: str | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    train_list: str | None = None
    val_list: str | None = None
    test_list: str | None = None
    on_bad_pairs: str = "raise"
    skip_empty_masks: bool = False
    augment: bool = True
    phantom_dir: str = "data/nodule_phantom"
    phantom_n_cases: int = 200
    phantom_size: int = 128
    # output
    output_dir: str = "runs/nodule_segmentation_cpu"
    overwrite: bool = False
    verbose: bool = False

    def validated(self):
        """A checked copy (``weights="none"`` means ``None``).

        Raises:
            ConfigError: naming the flag at fault.
        """
        config = dataclasses.replace(self)
        try:
            check_image_size(config.img_size)
        except ValueError as error:
            raise ConfigError(f"--img_size: {error}") from None
        for name in ("epochs", "batch_size", "val_every", "phantom_n_cases", "phantom_size"):
            value = getattr(config, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ConfigError(f"--{name} must be a positive integer; got {value}")
        for name in ("lr", "clip_norm", "lr_factor"):
            if not getattr(config, name) > 0:
                raise ConfigError(f"--{name} must be positive; got {getattr(config, name)}")
        choices = {
            "model_type": MODEL_TYPES,
            "anatomical_upsampling": UPSAMPLED_CONV_MODES,
            "nodule_branch": NODULE_BRANCHES,
            "attention_pooling": POOLINGS,
            "alignment": ALIGNMENTS,
            "on_bad_pairs": ("raise", "skip"),
        }
        for name, allowed in choices.items():
            if getattr(config, name) not in allowed:
                raise ConfigError(f"--{name} must be one of {', '.join(allowed)}; got {getattr(config, name)!r}")
        if not (
            0 < config.val_fraction < 1
            and 0 <= config.test_fraction < 1
            and config.val_fraction + config.test_fraction < 1
        ):
            raise ConfigError("--val_fraction must be in (0, 1), --test_fraction in [0, 1), and their sum < 1")
        if config.lr_patience < 0 or config.early_stopping_patience < 0 or config.time_budget_minutes < 0:
            raise ConfigError("--lr_patience, --early_stopping_patience and --time_budget_minutes must be >= 0")
        # only a supervised map can be detached: an unsupervised one learns through the fusion
        config.detach_fused_attention = config.detach_fused_attention and config.model_type == "improved"
        config.check_scale_out()
        config.weights = None if str(config.weights).lower() == "none" else config.weights
        return config

"""The settings of one implant-dimension run (`ImplantConfig`): the CPU preset and the original's."""

import dataclasses
from typing import ClassVar

from modeling.implant_dimensions import ATTENTION_TYPES, TASK_OUTPUTS
from training.cli import ConfigError
from training.config import RunConfig

EMBEDDINGS = ("dual", "company", "none")
LOSSES = ("mse", "scaled_mse")
# keras-hub's ImageNet ViTs at 224 px, patches of 16 (the original loads timm's pretrained ViTs)
IMAGENET_VIT_PRESETS = {"base": "vit_base_patch16_224_imagenet", "large": "vit_large_patch16_224_imagenet"}
ORIGINAL_PRESET = {  # train_dual_embeddings_regression.py and train_company_classifier_hpo.py
    "model_size": "base",
    "image_size": 224,
    "patch_size": 16,
    "vit_layers": None,
    "vit_hidden_dim": None,
    "vit_weights": "imagenet",
    "company_embed_dim": 256,
    "model_embed_dim": 256,
    "lr": 1e-4,
    "epochs": 100,
    "pretrain_epochs": 75,
    "pretrain_lr": 1e-4,
    "pretrain_augmentation": True,
    "batch_size": 32,
    "warmup_epochs": 5,
    "unfreeze_epoch": 20,
    "full_unfreeze_epoch": 40,
    "company_lr_multiplier": 0.1,
    "model_lr_multiplier": 0.1,
    "loss": "mse",
    "output_dir": "runs/implant_dimensions_original",
}


@dataclasses.dataclass
class ImplantConfig(RunConfig):
    """Fields are the command's flags (the original's names where it had them).

    With no ``train_json`` the embedded synthetic dataset is built in ``data_dir``; with no
    ``company_checkpoint`` / ``model_checkpoint`` the two embedding models are pretrained first.
    ``embeddings`` picks the regressor: "dual" (the seed's), "company" (the single-embedding
    variant) or "none" (the baseline, no pretraining).
    """

    PRESETS: ClassVar[dict] = {"cpu": {}, "original": ORIGINAL_PRESET}

    train_json: str | None = None
    val_json: str | None = None
    test_json: str | None = None
    image_root: str | None = None
    data_dir: str = "data/implant_phantom"
    company_checkpoint: str | None = None
    model_checkpoint: str | None = None
    embeddings: str = "dual"
    attention_type: str = "triple"
    task: str = "both"
    model_size: str = "tiny"
    # The CPU preset's ViTs start from random weights (the original fine-tunes ImageNet ones). What
    # makes them learn the pretraining on 2 cores (benchmarks/implant_pretraining.py): 96 px, the
    # original's embedding width 256, lr 1e-3 and no strong augmentation in pretraining (at 48 px or
    # with it, the classifiers stay at chance); then the regressor's higher learning rate, and the
    # embedding models unfrozen at 30 % / 60 % of the epochs at the original's x 0.1.
    image_size: int = 96
    patch_size: int = 8
    vit_layers: int | None = 2
    vit_hidden_dim: int | None = 64
    # The ViTs' starting weights: None (random), "imagenet" (keras-hub's ImageNet preset of --model_size;
    # --preset original), or a keras-hub preset name or local preset directory. A preset sets the
    # ViT's dimensions, so --vit_layers and --vit_hidden_dim must then be none.
    vit_weights: str | None = None
    company_embed_dim: int = 256
    model_embed_dim: int = 256
    epochs: int = 20
    pretrain_epochs: int = 40
    pretrain_lr: float = 1e-3
    # True: the reference's strong augmentation in pretraining; False: the shuffled training images
    # get the validation transform.
    pretrain_augmentation: bool = False
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 2
    unfreeze_epoch: int = 6
    full_unfreeze_epoch: int = 12
    company_lr_multiplier: float = 0.1
    model_lr_multiplier: float = 0.1
    # "mse": the original's MSE in mm, where length (sd 2.8 mm) outweighs diameter (sd 0.87 mm) about
    # 10 to 1; "scaled_mse": each target divided by its training standard deviation first.
    loss: str = "scaled_mse"
    select_by: str = "val_loss"
    seed: int = 42
    output_dir: str = "runs/implant_dimensions_cpu"
    overwrite: bool = False
    verbose: bool = False

    def validated(self):
        """A checked copy. Raises `ConfigError` naming the flag at fault."""
        config = dataclasses.replace(self)
        if config.attention_type not in ATTENTION_TYPES:
            raise ConfigError(f"--attention_type must be one of {ATTENTION_TYPES}; got {config.attention_type!r}")
        if config.embeddings not in EMBEDDINGS:
            raise ConfigError(f"--embeddings must be one of {EMBEDDINGS}; got {config.embeddings!r}")
        if config.task not in TASK_OUTPUTS:
            raise ConfigError(f"--task must be one of {sorted(TASK_OUTPUTS)}; got {config.task!r}")
        if config.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {LOSSES}; got {config.loss!r}")
        if config.select_by not in ("val_loss", "avg_mae"):
            raise ConfigError(f"--select_by must be val_loss or avg_mae; got {config.select_by!r}")
        for name in ("image_size", "batch_size", "epochs", "company_embed_dim", "model_embed_dim"):
            if getattr(config, name) < 1:
                raise ConfigError(f"--{name} must be >= 1; got {getattr(config, name)}")
        if not 1 <= config.unfreeze_epoch <= config.full_unfreeze_epoch:
            raise ConfigError(
                f"--unfreeze_epoch ({config.unfreeze_epoch}) must be >= 1 and <= --full_unfreeze_epoch "
                f"({config.full_unfreeze_epoch})"
            )
        if min(config.lr, config.pretrain_lr) <= 0 or config.weight_decay < 0:
            raise ConfigError("--lr and --pretrain_lr must be > 0 and --weight_decay >= 0")
        if config.vit_weights is not None:
            if config.vit_weights == "imagenet" and config.model_size not in IMAGENET_VIT_PRESETS:
                raise ConfigError(
                    f"--vit_weights imagenet: keras-hub has ImageNet ViTs for --model_size "
                    f"{' or '.join(IMAGENET_VIT_PRESETS)}, not {config.model_size!r}; pass a preset name or "
                    "directory, or --vit_weights none"
                )
            if config.vit_layers or config.vit_hidden_dim:
                raise ConfigError(
                    "--vit_weights sets the ViT's dimensions from its preset: pass --vit_layers none "
                    "--vit_hidden_dim none"
                )
        config.check_scale_out()
        return config

    @property
    def vit_weights_preset(self):
        """What `embedding_model` takes as ``weights``: None, or a keras-hub preset name or directory."""
        if self.vit_weights == "imagenet":
            return IMAGENET_VIT_PRESETS[self.model_size]
        return self.vit_weights

    @property
    def vit_overrides(self):
        """`hub_backbone`-style overrides of the ViT (patch size, and depth/width for a small build).

        Empty with ``vit_weights``: the preset sets the dimensions.
        """
        if self.vit_weights is not None:
            return {}
        overrides = {"patch_size": self.patch_size}
        if self.vit_layers:
            overrides["num_layers"] = self.vit_layers
        if self.vit_hidden_dim:
            heads = max(1, self.vit_hidden_dim // 32)
            overrides.update(hidden_dim=self.vit_hidden_dim, num_heads=heads, mlp_dim=4 * self.vit_hidden_dim)
        return overrides

"""Settings of the image + text fusion system: `FusionConfig` (one field per flag) and the original's
YAML layout (`from_yaml`: sections ``teacher``, ``student``, ``fusion``, ``loss``, ``training``, ``data``).

Example:

>>> FusionConfig.from_preset("original").teacher_vision
'vit-base'
>>> FusionConfig.from_mapping({"training": {"studnet_lr": 1e-4}})
Traceback (most recent call last):
training.cli.ConfigError: Unknown key 'studnet_lr' in section 'training'; did you mean 'student_lr'?
"""

import dataclasses
import difflib
from pathlib import Path
from typing import ClassVar

from modeling.fusion import canonical_fusion_type
from modeling.losses.distillation import LOSS_DEFAULTS
from training.cli import ConfigError
from training.config import RunConfig

BACKBONES = {  # the original's backbone names -> (hub architecture, size)
    "vit-base": ("vit", "base"),
    "vit-large": ("vit", "large"),
    "vit-tiny": ("vit", "tiny"),
    "deit-tiny": ("deit", "tiny"),
    "deit-small": ("deit", "small"),
    "deit-base": ("deit", "base"),
    "bio-clinical-bert": ("bert", "base"),
    "bert-base": ("bert", "base"),
    "bert-mini": ("bert", "mini"),
    "bert-tiny": ("bert", "tiny"),
    "distilbert": ("distilbert", "base"),
    "mobilevit-xx-small": ("vit", "tiny"),  # no keras-hub MobileViT: a 3-layer ViT-Ti (see the README)
}

# YAML section -> {key: field}
SECTIONS = {
    "teacher": {
        k: f"teacher_{k}"
        for k in (
            "vision",
            "text",
            "fusion_layers",
            "fusion_dim",
            "fusion_heads",
            "dropout",
            "vision_layers",
            "text_layers",
        )
    },
    "student": {
        k: f"student_{k}"
        for k in (
            "vision",
            "text",
            "fusion_layers",
            "fusion_dim",
            "fusion_heads",
            "dropout",
            "vision_layers",
            "text_layers",
        )
    },
    "fusion": {
        "type": "fusion_type",
        "hidden_mult": "hidden_mult",
        "p_img": "p_img",
        "p_txt": "p_txt",
        "inference_routing": "inference_routing",
    },
    "loss": {"type": "loss_type", "train_teacher_projections": "train_teacher_projections"},
    "training": {
        k: k
        for k in (
            "teacher_epochs",
            "student_epochs",
            "teacher_lr",
            "student_lr",
            "batch_size",
            "alpha",
            "beta",
            "gamma",
            "T",
            "seed",
        )
    },
    "data": {
        "dataset": "dataset",
        "root": "data_root",
        "image_size": "image_size",
        "patch_size": "patch_size",
        "max_length": "max_length",
        "vocabulary_size": "vocabulary_size",
        "samples": "samples",
    },
}


@dataclasses.dataclass
class FusionConfig(RunConfig):
    """One teacher-then-student run. ``cpu``: small backbones on the embedded data (minutes on 2 cores);
    ``original``: the original's tuned wound configuration (vit-base + Bio_ClinicalBERT teacher,
    MobileViT-xxs stand-in + bert-mini student, 224 px, 256 tokens)."""

    PRESETS: ClassVar[dict] = {
        "cpu": {},
        "original": dict(
            teacher_vision="vit-base",
            teacher_text="bio-clinical-bert",
            teacher_fusion_layers=3,
            teacher_dropout=0.0962,
            student_vision="mobilevit-xx-small",
            student_text="bert-mini",
            student_fusion_heads=8,
            student_dropout=0.2924,
            teacher_vision_layers=None,
            teacher_text_layers=None,
            student_vision_layers=3,
            student_text_layers=None,
            teacher_epochs=3,
            student_epochs=10,
            teacher_lr=9.0217e-5,
            student_lr=3.6732e-4,
            batch_size=32,
            alpha=0.9569,
            beta=64.651,
            T=4.7369,
            image_size=224,
            patch_size=16,
            max_length=256,
            vocabulary_size=30522,
        ),
    }

    teacher_vision: str = "vit-tiny"
    teacher_text: str = "bert-tiny"
    teacher_fusion_layers: int = 2
    teacher_fusion_dim: int = 64
    teacher_fusion_heads: int = 4
    teacher_dropout: float = 0.1
    teacher_vision_layers: int | None = 2
    teacher_text_layers: int | None = 2
    student_vision: str = "vit-tiny"
    student_text: str = "bert-tiny"
    student_fusion_layers: int = 1
    student_fusion_dim: int = 64
    student_fusion_heads: int = 4
    student_dropout: float = 0.1
    student_vision_layers: int | None = 1
    student_text_layers: int | None = 1
    fusion_type: str = "cross_attention"
    hidden_mult: int = 2
    p_img: float = 0.3
    p_txt: float = 0.3
    inference_routing: str = "argmax"
    loss_type: str = "combined"
    teacher_model: str | None = None  # a trained teacher (.keras) to distil from: no teacher phase
    modalities: str = "both"  # "image" or "text": the single-modality baselines (the other one blanked)
    train_teacher_projections: bool = True
    teacher_epochs: int = 8
    student_epochs: int = 10
    teacher_lr: float = 3e-4
    student_lr: float = 1e-3
    batch_size: int = 16
    alpha: float | None = None
    beta: float | None = None
    gamma: float | None = None
    T: float | None = None  # noqa: N815 (the original's key)
    seed: int = 0
    dataset: str = "wound"
    data_root: str | None = None  # None: the embedded synthetic data, written into the run folder
    samples: int = 600
    image_size: int = 32
    patch_size: int = 8
    max_length: int = 32
    vocabulary_size: int = 400
    output_dir: str = "runs/image_text_fusion"
    overwrite: bool = False
    verbose: int = 1

    def validated(self):
        """Check names and ranges; raise `ConfigError` naming the setting."""
        self.check_scale_out()
        try:
            self.fusion_type = canonical_fusion_type(self.fusion_type)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        for field in ("teacher_vision", "teacher_text", "student_vision", "student_text"):
            if getattr(self, field) not in BACKBONES:
                close = difflib.get_close_matches(getattr(self, field), BACKBONES, n=1)
                raise ConfigError(
                    f"--{field} {getattr(self, field)!r} is unknown{f'; did you mean {close[0]!r}' if close else ''}."
                )
        if self.loss_type not in LOSS_DEFAULTS:
            raise ConfigError(f"--loss_type must be one of {sorted(LOSS_DEFAULTS)}; got {self.loss_type!r}.")
        if self.num_processes > 1:
            raise ConfigError("--num_processes > 1 is not supported by this command yet; use one process.")
        if self.modalities not in ("both", "image", "text"):
            raise ConfigError(f"--modalities must be 'both', 'image' or 'text'; got {self.modalities!r}.")
        if self.teacher_model is not None and not Path(self.teacher_model).is_file():
            raise ConfigError(f"--teacher_model {self.teacher_model!r} is not a file.")
        if self.dataset not in ("wound", "medpix"):
            raise ConfigError(f"--dataset must be 'wound' or 'medpix'; got {self.dataset!r}.")
        for field in ("teacher_epochs", "student_epochs", "batch_size", "image_size", "max_length"):
            if getattr(self, field) < 1:
                raise ConfigError(f"--{field} must be >= 1; got {getattr(self, field)}.")
        return self

    @classmethod
    def from_mapping(cls, sections, preset="cpu"):
        """Settings from the original's YAML sections (unknown sections and keys are named, with the closest)."""
        overrides = {}
        for section, values in (sections or {}).items():
            if section not in SECTIONS:
                close = difflib.get_close_matches(section, SECTIONS, n=1)
                raise ConfigError(f"Unknown section {section!r}{f'; did you mean {close[0]!r}' if close else ''}.")
            for key, value in (values or {}).items():
                if key not in SECTIONS[section]:
                    close = difflib.get_close_matches(key, SECTIONS[section], n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(SECTIONS[section])}."
                    raise ConfigError(f"Unknown key {key!r} in section {section!r}{hint}")
                overrides[SECTIONS[section][key]] = value
        return cls.from_preset(preset, **overrides).validated()

    @classmethod
    def from_yaml(cls, path, preset="cpu"):
        import yaml

        with open(path) as handle:
            return cls.from_mapping(yaml.safe_load(handle), preset)

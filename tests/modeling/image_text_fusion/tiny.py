"""Tiny builds of the image_text_fusion models for the registry test (`tests/modeling/test_registry.py`)."""

import numpy as np

from modeling import create_model
from modeling.image_text_fusion import compile_classifier

TINY_VOCABULARY = 40
TINY_LENGTH = 12
TINY_IMAGE = 32
TINY_FUSION = dict(fusion_dim=8, fusion_heads=2, fusion_layers=2)
TINY_VISION = dict(num_layers=1, hidden_dim=16, num_heads=2, mlp_dim=32)
TINY_TEXT = dict(num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32, vocabulary_size=TINY_VOCABULARY)

_POOLER = (("pooled_dense",), "BERT's pooler: the models take the CLS token of the sequence output, as the original")
_ROUTED = "routes are argmax/sampled (no gradient to the router)"
NO_GRADIENT = {
    "image_text_fusion/teacher": _POOLER,
    "image_text_fusion/student": _POOLER,
    "image_text_fusion/features_shomr": (
        tuple(f"fusion/{part}" for part in ("router", "proj_single", "gate", "norm2")),
        f"{_ROUTED}; at initialisation the confidence is ~0.5 < 0.6, so every sample takes the soft path",
    ),
    "image_text_fusion/features_energy_aware_adaptive": (
        ("fusion/router", "fusion/lambda_energy"),
        f"{_ROUTED}; the energy term (which would train it) is 0 while the expected cost is under the budget",
    ),
}


def build(name, num_classes=(3, 2)):
    """A compiled tiny model: 1-layer ViT/BERT of width 16 on 32 px images and 12 tokens, or the feature head.

    Compiled without weight decay: on JAX, weights without a gradient get zeros and AdamW would decay
    them, which the registry test would read as learning.
    """
    return compile_classifier(_tiny_model(name, num_classes), weight_decay=0.0)


def _tiny_model(name, num_classes):
    if name.split("/")[1].startswith("features_"):
        params = {"fusion_params": {"p_img": 0.0, "p_txt": 0.0}} if name.endswith("modality_dropout") else {}
        return create_model(
            name, vision_dim=12, text_dim=10, num_classes=num_classes, compile=False, **TINY_FUSION, **params
        )
    return create_model(
        name,
        num_classes=num_classes,
        image_size=TINY_IMAGE,
        sequence_length=TINY_LENGTH,
        vision_size="tiny",
        vision_overrides=TINY_VISION,
        text_size="tiny",
        text_overrides=TINY_TEXT,
        compile=False,
        **TINY_FUSION,
    )


def batch(model, size=5, seed=0):
    """Inputs for every model input and integer labels of both tasks.

    The energy-aware model gets 32 samples so that sampled routes include the full one; the SHoMR
    model gets small features so that every sample takes the soft path (see `NO_GRADIENT`).
    """
    rng = np.random.default_rng(seed)
    size = 32 if "energy_aware" in model.name else size
    scale = 0.05 if "shomr" in model.name else 1.0
    if isinstance(model.input, dict):
        inputs = {
            "images": rng.uniform(-1, 1, (size, TINY_IMAGE, TINY_IMAGE, 3)).astype("float32"),
            "token_ids": rng.integers(0, TINY_VOCABULARY, (size, TINY_LENGTH)).astype("int32"),
            "padding_mask": np.ones((size, TINY_LENGTH), "int32"),
        }
        if "segment_ids" in model.input:
            inputs["segment_ids"] = np.zeros((size, TINY_LENGTH), "int32")
    else:
        inputs = [scale * rng.uniform(-1, 1, (size, *tensor.shape[1:])).astype("float32") for tensor in model.inputs]
    targets = {
        name: rng.integers(0, model.output[name].shape[-1], size) for name in ("logits_modality", "logits_location")
    }
    return inputs, targets

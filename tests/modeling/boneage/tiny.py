"""Tiny builds of the bone-age models for the registry test (`tests/modeling/test_registry.py`)."""

from modeling import create_model, get_builder
from tests.checkers import tiny_backbone

# name -> (weight path prefixes that never receive a gradient, why)
NO_GRADIENT = {
    "boneage/attn_sex_improved": (
        ("cross_attention_mha/query", "cross_attention_mha/key"),
        "MultiHeadAttention over a single key token: the softmax weight is always 1 (original design)",
    ),
}


def build(name):
    """A compiled 64 px model on a two-layer backbone (the builders compile, as the original's do)."""
    kwargs = dict(img_dims=(64, 64, 3), backbone=tiny_backbone, weights=None, dropout_rate=0.5, dense_units=16)
    if "gender_units" in get_builder(name).__code__.co_varnames:
        kwargs["gender_units"] = 8
    return create_model(name, **kwargs)

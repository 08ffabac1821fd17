"""The implant_dimensions system's models (registered when this package is imported)."""

from modeling.implant_dimensions.layers import ClassToken, Destandardize, WeightedConcatenation
from modeling.implant_dimensions.models import (
    ATTENTION_TYPES,
    DIMENSIONS,
    EMBEDDING_NAMES,
    TARGETS,
    TASK_OUTPUTS,
    baseline_regression,
    dual_embedding_regression,
    embedding_classifier,
    embedding_head_model,
    embedding_model,
    feature_dim,
    fusion_regressor,
    renamed_embedding,
    single_embedding_regression,
)

__all__ = [
    "ATTENTION_TYPES",
    "DIMENSIONS",
    "EMBEDDING_NAMES",
    "TARGETS",
    "TASK_OUTPUTS",
    "ClassToken",
    "Destandardize",
    "WeightedConcatenation",
    "baseline_regression",
    "dual_embedding_regression",
    "embedding_classifier",
    "embedding_head_model",
    "embedding_model",
    "feature_dim",
    "fusion_regressor",
    "renamed_embedding",
    "single_embedding_regression",
]

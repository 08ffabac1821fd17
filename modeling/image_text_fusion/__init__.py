"""The image_text_fusion system's models (registered when this package is imported): teacher and student
image + text multi-task classifiers (seed 002) and their PyTorch converter (`convert`)."""

from modeling.image_text_fusion.models import (
    LOGITS,
    TASKS,
    compile_classifier,
    fusion_classifier,
    fusion_features_classifier,
    student,
    teacher,
)

__all__ = [
    "LOGITS",
    "TASKS",
    "compile_classifier",
    "fusion_classifier",
    "fusion_features_classifier",
    "student",
    "teacher",
]

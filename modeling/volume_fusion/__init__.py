"""3D volume + clinical-metadata fusion classifiers (seed 003): LearnedFeatureFusion3D and its baselines.

Registered as ``volume_fusion/learned_feature_fusion``, ``feature_fusion``, ``image_only``,
``metadata_only``, ``probability_fusion`` and ``learned_feature_fusion_variant``; every model
gives one logit. The image branch is `modeling.backbones.resnet3d` (MONAI's layout).

Example:

>>> from modeling import create_model
>>> model = create_model("volume_fusion/learned_feature_fusion", volume_shape=(16, 16, 16, 1),
...                      fusion="add", backbone={"depth": 18, "widen_factor": 0.0625})
>>> model.name
'learned_feature_fusion_3d_add'
"""

from modeling.volume_fusion.layers import ProbabilityAverage
from modeling.volume_fusion.models import (
    DEFAULT_VOLUME_SHAPE,
    FUSIONS,
    backbone_3d,
    feature_fusion_3d,
    image_only_3d,
    learned_feature_fusion_3d,
    learned_feature_fusion_variant_3d,
    metadata_only,
    probability_fusion_3d,
)

__all__ = [
    "DEFAULT_VOLUME_SHAPE",
    "FUSIONS",
    "ProbabilityAverage",
    "backbone_3d",
    "feature_fusion_3d",
    "image_only_3d",
    "learned_feature_fusion_3d",
    "learned_feature_fusion_variant_3d",
    "metadata_only",
    "probability_fusion_3d",
]

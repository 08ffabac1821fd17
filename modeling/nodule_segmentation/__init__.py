"""The nodule_segmentation system's models (registered when this package is imported).

* `models`: ``improved`` (supervised attention), ``anatomical`` (unsupervised), ``lightweight``, and the
  two attention modules alone.
* `layers`: the upsampled convolution (exact memory-saving form), attention normalisations, modulation.
* `convert`: the original's PyTorch ``state_dict`` (``.npz`` or ``.pth``) into these models.
"""

from modeling.nodule_segmentation.convert import load_torch_state_dict, read_state_dict
from modeling.nodule_segmentation.models import (
    OUTPUT_NAMES,
    anatomical_attention_module,
    anatomical_model,
    check_image_size,
    improved_model,
    lightweight_model,
    supervised_attention_module,
)

__all__ = [
    "OUTPUT_NAMES",
    "anatomical_attention_module",
    "anatomical_model",
    "check_image_size",
    "improved_model",
    "lightweight_model",
    "load_torch_state_dict",
    "read_state_dict",
    "supervised_attention_module",
]

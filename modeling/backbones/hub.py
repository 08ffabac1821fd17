"""keras-hub backbones by architecture and size: random weights offline, a local preset, or a preset name.

Three ways to get the same backbone, chosen by ``weights``:

* ``None``: built from this module's size table (the published dimensions of each size, e.g. timm's
  ViT-Ti/S/B/L), with random weights; nothing is downloaded, so it works offline and in tests.
* a directory: a keras-hub preset saved locally (``backbone.save_to_preset(path)``, or a downloaded
  Kaggle/Hugging Face preset), loaded with its weights.
* any other string: a keras-hub preset name (``"vit_base_patch16_224_imagenet"``,
  ``"bert_base_en_uncased"``); keras-hub downloads it, and a failed download names the preset and
  the two offline alternatives.

Example:

>>> backbone = hub_backbone("vit", "tiny", image_shape=(32, 32, 3), patch_size=16, num_layers=1)
>>> backbone.output.shape  # the class token and 2 x 2 patches, 192 wide
(None, 5, 192)
"""

import os

VIT_SIZES = {  # timm's ViT-Ti/S/B/L at patch 16: hidden width, depth, heads, MLP width
    "tiny": dict(hidden_dim=192, num_layers=12, num_heads=3, mlp_dim=768),
    "small": dict(hidden_dim=384, num_layers=12, num_heads=6, mlp_dim=1536),
    "base": dict(hidden_dim=768, num_layers=12, num_heads=12, mlp_dim=3072),
    "large": dict(hidden_dim=1024, num_layers=24, num_heads=16, mlp_dim=4096),
}
BERT_SIZES = {  # Google's BERT sizes (Turc et al. 2019 for tiny/mini/small) with the uncased vocabulary
    "tiny": dict(hidden_dim=128, num_layers=2, num_heads=2, intermediate_dim=512),
    "mini": dict(hidden_dim=256, num_layers=4, num_heads=4, intermediate_dim=1024),
    "small": dict(hidden_dim=512, num_layers=4, num_heads=8, intermediate_dim=2048),
    "base": dict(hidden_dim=768, num_layers=12, num_heads=12, intermediate_dim=3072),
}
_VISION = dict(image_shape=(224, 224, 3), patch_size=16)
_TEXT = dict(vocabulary_size=30522, max_sequence_length=512)


def _rename_mlp(dims):
    """ViT's ``mlp_dim`` is DeiT's ``intermediate_dim``."""
    return {("intermediate_dim" if key == "mlp_dim" else key): value for key, value in dims.items()}


# architecture -> (keras_hub.models class name, sizes, defaults of the other constructor arguments)
HUB_ARCHITECTURES = {
    "vit": ("ViTBackbone", VIT_SIZES, _VISION),
    "deit": ("DeiTBackbone", {size: _rename_mlp(dims) for size, dims in VIT_SIZES.items()}, _VISION),
    "bert": ("BertBackbone", BERT_SIZES, _TEXT),
    "distilbert": ("DistilBertBackbone", {"base": dict(BERT_SIZES["base"], num_layers=6)}, _TEXT),
}


def hub_backbone(architecture, size="base", weights=None, **overrides):
    """A keras-hub backbone of ``architecture`` and ``size``.

    Args:
        architecture: a key of `HUB_ARCHITECTURES` ("vit", "deit", "bert", "distilbert").
        size: a size of that architecture (e.g. "tiny", "small", "base", "large"); ignored when
            ``weights`` names a preset, which carries its own size.
        weights: ``None`` (random weights, offline), a local preset directory, or a preset name.
        **overrides: constructor arguments replacing the size table's (e.g. ``image_shape``,
            ``num_layers``, ``vocabulary_size``); with a preset, only ``image_shape`` and dropout
            arguments that the preset's class accepts.

    Returns:
        A `keras_hub.models.Backbone`.

    Raises:
        ValueError: an unknown architecture or size (the message lists the known ones), or a preset
            that cannot be found or downloaded.
    """
    if architecture not in HUB_ARCHITECTURES:
        raise ValueError(f"Unknown keras-hub architecture {architecture!r}; choose one of {sorted(HUB_ARCHITECTURES)}.")
    import keras_hub  # imported here: it takes seconds and pulls in TensorFlow Text

    class_name, sizes, defaults = HUB_ARCHITECTURES[architecture]
    backbone_class = getattr(keras_hub.models, class_name)
    if weights is not None:
        return _from_preset(backbone_class, str(weights), overrides)
    if size not in sizes:
        raise ValueError(f"Unknown size {size!r} for {architecture}; choose one of {sorted(sizes)}.")
    return backbone_class(**{**defaults, **sizes[size], **overrides})


def _from_preset(backbone_class, preset, overrides):
    local = os.path.isdir(preset)
    try:
        return backbone_class.from_preset(preset, **overrides)
    except Exception as error:  # keras-hub raises several types for a missing file or a failed download
        where = "the local preset directory" if local else "the keras-hub preset"
        raise ValueError(
            f"Could not load {where} {preset!r} as a {backbone_class.__name__} ({type(error).__name__}: {error}). "
            "Offline, pass weights=None to build it with random weights, or the path of a preset directory "
            "saved with backbone.save_to_preset(path)."
        ) from error

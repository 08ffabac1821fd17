"""Teacher and student image + text multi-task classifiers (the original's ``Teacher``/``Student``).

Both are: vision backbone -> CLS feature ``img_raw``; text backbone -> CLS feature ``txt_raw``;
``img_proj = proj_vis(img_raw)``, ``txt_proj = proj_txt(txt_raw)`` (Linear to D, no activation);
``fused = Dropout(fusion(img_proj, txt_proj))``; two heads Dropout(0.1) + Linear. The model returns a
dict: ``logits_modality`` (task 1), ``logits_location`` (task 2), ``img_raw``, ``txt_raw``,
``img_proj``, ``txt_proj`` (what the distillation losses need).

Registered: ``image_text_fusion/teacher`` (ViT-B/16 + BERT-base by default, the original's
vit-base + Bio_ClinicalBERT), ``image_text_fusion/student`` (ViT-Ti/16 with 3 layers + BERT-mini: the
original's MobileViT-xx-small has no keras-hub port) and ``image_text_fusion/features_<fusion type>``
(the projection, fusion and heads on precomputed backbone features, one per fusion type).

Example:

>>> model = fusion_features_classifier(vision_dim=12, text_dim=10, num_classes=(3, 2), fusion_dim=8,
...                                    fusion_heads=2)
>>> sorted(model.output)
['img_proj', 'img_raw', 'logits_location', 'logits_modality', 'txt_proj', 'txt_raw']
"""

import keras

from modeling.backbones import hub_backbone
from modeling.fusion import FUSION_LAYERS, build_vector_fusion
from modeling.image_text_fusion.layers import TokenAt
from modeling.registry import register_model

TASKS = ("modality", "location")  # task 1 (Wound: type), task 2 (Wound: severity)
LOGITS = tuple(f"logits_{task}" for task in TASKS)
TEXT_INPUTS = {"bert": ("token_ids", "segment_ids", "padding_mask"), "distilbert": ("token_ids", "padding_mask")}


def fusion_outputs(
    img_raw,
    txt_raw,
    num_classes,
    fusion_type="cross_attention",
    fusion_dim=256,
    fusion_heads=4,
    fusion_layers=1,
    dropout=0.1,
    fusion_params=None,
):
    """The output dict of the projection -> fusion -> heads path on two feature tensors."""
    img_proj = keras.layers.Dense(fusion_dim, name="proj_vis")(img_raw)
    txt_proj = keras.layers.Dense(fusion_dim, name="proj_txt")(txt_raw)
    fusion = build_vector_fusion(fusion_type, fusion_dim, fusion_heads, fusion_layers, **(fusion_params or {}))
    fused = keras.layers.Dropout(dropout, name="fused_dropout")(fusion(img_proj, txt_proj))
    outputs = {}
    for task, classes in zip(TASKS, num_classes, strict=True):
        hidden = keras.layers.Dropout(0.1, name=f"head_{task}_dropout")(fused)
        outputs[f"logits_{task}"] = keras.layers.Dense(classes, name=f"head_{task}")(hidden)
    outputs["img_raw"] = keras.layers.Identity(name="img_raw")(img_raw)
    outputs["txt_raw"] = keras.layers.Identity(name="txt_raw")(txt_raw)
    outputs["img_proj"], outputs["txt_proj"] = img_proj, txt_proj
    return outputs


def compile_classifier(model, learning_rate=1e-4, weight_decay=0.01, jit_compile="auto"):
    """AdamW (torch's default weight decay 0.01) and CE on both logits (per-task metrics come from
    `training.image_text_fusion.metrics` on predictions: Keras metrics would need targets for every output)."""
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay),
        loss={name: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for name in LOGITS},
        jit_compile=jit_compile,
    )
    return model


def fusion_features_classifier(
    vision_dim, text_dim, num_classes=(6, 3), name="fusion_features_classifier", compile=True, **fusion_kwargs
):
    """Projection, fusion and heads on precomputed CLS features ``img_raw (vision_dim)``, ``txt_raw (text_dim)``.

    Args:
        vision_dim, text_dim: feature widths of the two backbones.
        num_classes: classes of task 1 and task 2.
        name: model name.
        compile: compile with `compile_classifier`.
        **fusion_kwargs: ``fusion_type``, ``fusion_dim``, ``fusion_heads``, ``fusion_layers``, ``dropout``,
            ``fusion_params`` (see `fusion_outputs`).
    """
    img_raw = keras.Input((vision_dim,), name="img_raw_features")
    txt_raw = keras.Input((text_dim,), name="txt_raw_features")
    model = keras.Model([img_raw, txt_raw], fusion_outputs(img_raw, txt_raw, num_classes, **fusion_kwargs), name=name)
    return compile_classifier(model) if compile else model


def _cls_features(backbone, inputs, name):
    outputs = backbone(inputs)
    if isinstance(outputs, dict):
        outputs = outputs["sequence_output"]
    if len(outputs.shape) == 4:  # a CNN map (e.g. MobileViT): global average pool, as the reference advises
        return keras.layers.GlobalAveragePooling2D(name=name)(outputs)
    return TokenAt(0, name=name)(outputs)


def fusion_classifier(
    num_classes=(6, 3),
    vision="vit",
    vision_size="base",
    vision_weights=None,
    text="bert",
    text_size="base",
    text_weights=None,
    image_size=224,
    sequence_length=256,
    vision_overrides=None,
    text_overrides=None,
    name="fusion_classifier",
    compile=True,
    **fusion_kwargs,
):
    """A teacher or student: keras-hub backbones (`hub_backbone`) + `fusion_outputs`.

    Inputs (a dict): ``images`` ``(image_size, image_size, 3)`` normalised with mean = std = 0.5,
    ``token_ids``, ``padding_mask`` and, for BERT, ``segment_ids`` (``(sequence_length,)``).

    Args:
        num_classes: classes of task 1 and task 2.
        vision, vision_size, vision_weights: `hub_backbone` architecture ("vit", "deit"), size and weights
            (None: random, offline; a preset directory or name).
        text, text_size, text_weights: the same for the text backbone ("bert", "distilbert").
        image_size: input image side.
        sequence_length: token sequence length (the original's max length 256).
        vision_overrides, text_overrides: more `hub_backbone` constructor arguments (e.g. ``num_layers``,
            ``vocabulary_size``).
        name: model name.
        compile: compile with `compile_classifier`.
        **fusion_kwargs: see `fusion_outputs`.
    """
    if text not in TEXT_INPUTS:
        raise ValueError(f"Unknown text backbone {text!r}; choose one of {sorted(TEXT_INPUTS)}.")
    vision_args = {"image_shape": (image_size, image_size, 3), **(vision_overrides or {})}
    text_args = {"max_sequence_length": max(sequence_length, 2), **(text_overrides or {})}
    if text_weights is not None:
        text_args.pop("max_sequence_length")
    vision_backbone = hub_backbone(vision, vision_size, vision_weights, **vision_args)
    text_backbone = hub_backbone(text, text_size, text_weights, **text_args)
    images = keras.Input((image_size, image_size, 3), name="images")
    text_inputs = {key: keras.Input((sequence_length,), dtype="int32", name=key) for key in TEXT_INPUTS[text]}
    img_raw = _cls_features(vision_backbone, images, "vision_cls")
    txt_raw = _cls_features(text_backbone, text_inputs, "text_cls")
    outputs = fusion_outputs(img_raw, txt_raw, num_classes, **fusion_kwargs)
    model = keras.Model({"images": images, **text_inputs}, outputs, name=name)
    return compile_classifier(model) if compile else model


@register_model("image_text_fusion/teacher")
def teacher(num_classes=(6, 3), fusion_dim=256, fusion_heads=4, fusion_layers=3, dropout=0.1, **kwargs):
    """The teacher: ViT-B/16 + BERT-base (the original's vit-base + Bio_ClinicalBERT), cross-attention fusion.

    Defaults are the original's tuned wound configuration (fusion_dim 256, 3 fusion layers, 4 heads);
    ``**kwargs`` go to `fusion_classifier`.
    """
    kwargs = {"vision": "vit", "vision_size": "base", "text": "bert", "text_size": "base", **kwargs}
    return fusion_classifier(
        num_classes,
        fusion_dim=fusion_dim,
        fusion_heads=fusion_heads,
        fusion_layers=fusion_layers,
        dropout=dropout,
        name=kwargs.pop("name", "teacher"),
        **kwargs,
    )


STUDENT_VISION_OVERRIDES = {"num_layers": 3}  # ViT-Ti/16 cut to 3 layers: ~1.5 M parameters, MobileViT-xxs has 1.3 M


@register_model("image_text_fusion/student")
def student(num_classes=(6, 3), fusion_dim=256, fusion_heads=8, fusion_layers=1, dropout=0.1, **kwargs):
    """The student: a 3-layer ViT-Ti/16 (standing in for MobileViT-xx-small) + BERT-mini, cross-attention fusion.

    Defaults are the original's tuned wound configuration (fusion_dim 256, 1 fusion layer, 8 heads).
    """
    kwargs = {"vision": "vit", "vision_size": "tiny", "text": "bert", "text_size": "mini", **kwargs}
    if kwargs["vision"] == "vit" and kwargs["vision_size"] == "tiny" and kwargs.get("vision_weights") is None:
        kwargs["vision_overrides"] = {**STUDENT_VISION_OVERRIDES, **(kwargs.get("vision_overrides") or {})}
    return fusion_classifier(
        num_classes,
        fusion_dim=fusion_dim,
        fusion_heads=fusion_heads,
        fusion_layers=fusion_layers,
        dropout=dropout,
        name=kwargs.pop("name", "student"),
        **kwargs,
    )


def _register_features_classifier(fusion_type):
    def builder(vision_dim=64, text_dim=48, num_classes=(6, 3), **kwargs):
        return fusion_features_classifier(
            vision_dim, text_dim, num_classes, fusion_type=fusion_type, name=f"features_{fusion_type}", **kwargs
        )

    builder.__doc__ = f"`fusion_features_classifier` with ``fusion_type={fusion_type!r}``."
    return register_model(f"image_text_fusion/features_{fusion_type}")(builder)


FEATURES_CLASSIFIERS = {fusion_type: _register_features_classifier(fusion_type) for fusion_type in FUSION_LAYERS}

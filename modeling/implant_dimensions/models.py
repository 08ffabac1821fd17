"""The implant-dimension models: ViT embedding models, and regressors of implant length and diameter.

* `embedding_model`: ViT class token ``f`` (F = 192/384/768/1024 for tiny/small/base/large), then
  Dense 512 + ReLU + Dropout 0.3 -> Dense E + ReLU + Dropout 0.2, the embedding. `embedding_classifier`
  adds the Linear E -> classes head used to pretrain it on the company or the model type.
* `dual_embedding_regression`: a company embedding model (features ``f``, embedding ``c``) and a
  model-type embedding model (embedding ``m``; its own features are unused, as in the original)
  fused by one of the reference's attention types, then the regression head 512 -> 256 -> 2:

  - ``dual``: ``w = softmax(MLP_128([c; m]))``, ``z = [w0 c; w1 m]`` (no visual features);
  - ``triple`` (default): ``w = softmax(MLP_256([f; c; m]))``, ``z = [w0 f; w1 c; w2 m]``;
  - ``hierarchical``: ``we = softmax(MLP_128([c; m]))``, ``e = [we0 c; we1 m]``,
    ``wf = softmax(MLP_256([f; e]))``, ``z = [wf0 f; wf1 e]``;
  - ``none``: ``z = [f; c; m]``.

* `single_embedding_regression`: ``w = softmax(MLP_256([f; c]))``, ``z = [w0 f; w1 c]``.
* `baseline_regression`: ``z = f`` (no embeddings), the reference table's baseline.

Every regressor returns a dict: ``"dimensions"`` (length and diameter in mm, or one of them for
``task="length"|"diameter"``) and the softmax weights of its attention, ``"attention_weights"``
(or ``"embed_attention_weights"`` and ``"feature_attention_weights"``), so training can log which
source the model trusts. The fusion and heads are also available on feature inputs alone
(`fusion_regressor`, `embedding_head_model`), which is what the original's weights convert into.

Example:

>>> model = dual_embedding_regression(image_size=32, model_size="tiny", company_embed_dim=8,
...     model_embed_dim=8, vit_overrides={"num_layers": 1})
>>> sorted(model.output.keys()) if isinstance(model.output, dict) else None
['attention_weights', 'dimensions']
"""

import keras

from modeling.backbones.hub import VIT_SIZES
from modeling.implant_dimensions.layers import Destandardize, WeightedConcatenation
from modeling.implant_dimensions.vit import vit_class_token
from modeling.registry import register_model

ATTENTION_TYPES = ("dual", "triple", "hierarchical", "none")
TASK_OUTPUTS = {"both": 2, "length": 1, "diameter": 1}
TARGETS = {"both": ("length", "diameter"), "length": ("length",), "diameter": ("diameter",)}
EMBEDDING_NAMES = {"company": "embedding_company", "model": "embedding_model"}
DIMENSIONS = "dimensions"


def feature_dim(model_size):
    """The ViT width F of ``model_size`` (timm's: tiny 192, small 384, base 768, large 1024)."""
    if model_size not in VIT_SIZES:
        raise ValueError(f"Unknown model size {model_size!r}; choose one of {sorted(VIT_SIZES)}.")
    return VIT_SIZES[model_size]["hidden_dim"]


def _embedding_head(features, embed_dim):
    x = keras.layers.Dense(512, activation="relu", name="head_dense_1")(features)
    x = keras.layers.Dropout(0.3, name="head_dropout_1")(x)
    x = keras.layers.Dense(embed_dim, activation="relu", name="head_dense_2")(x)
    return keras.layers.Dropout(0.2, name="embedding")(x)


def embedding_model(
    image_size=224, model_size="base", embed_dim=256, weights=None, name="embedding", vit_overrides=None
):
    """Image (ImageNet-normalised, channels last) -> ``{"embedding": (B, E), "features": (B, F)}``.

    Args:
        image_size: square input size.
        model_size: ViT size (tiny, small, base, large).
        embed_dim: E.
        weights: ``None`` (random), a keras-hub preset directory, or a preset name.
        name: the model's name; the regressors name theirs ``embedding_company`` and ``embedding_model``.
        vit_overrides: other `hub_backbone` arguments (e.g. ``{"num_layers": 2}`` for a tiny build).
    """
    image = keras.Input((image_size, image_size, 3), name="image")
    features = vit_class_token(image, model_size, weights, **(vit_overrides or {}))
    return keras.Model(image, {"embedding": _embedding_head(features, embed_dim), "features": features}, name=name)


@register_model("implant_dimensions/embedding_classifier")
def embedding_classifier(num_classes=2, embedding=None, **embedding_arguments):
    """An embedding model (nested, named ``embedding``) with the classifier Dense E -> ``num_classes``.

    Args:
        num_classes: size of the vocabulary (companies or model types).
        embedding: an existing embedding model; else one is built from ``embedding_arguments``
            (see `embedding_model`).

    Returns:
        Image -> class logits.
    """
    embedding = embedding or embedding_model(**{"name": "embedding", **embedding_arguments})
    image = keras.Input(embedding.input.shape[1:], name="image")
    logits = keras.layers.Dense(num_classes, name="classifier")(embedding(image)["embedding"])
    return keras.Model(image, logits, name="embedding_classifier")


def embedding_head_model(feature_dim, embed_dim, num_classes):
    """The embedding head and classifier on ViT features: ``f -> {"embedding", "classifier_logits"}``."""
    features = keras.Input((feature_dim,), name="features")
    embedding = _embedding_head(features, embed_dim)
    logits = keras.layers.Dense(num_classes, name="classifier")(embedding)
    return keras.Model(features, {"embedding": embedding, "classifier_logits": logits}, name="embedding_head")


def _attention(x, hidden, sources, prefix):
    """``softmax(Linear(hidden) -> ReLU -> Linear(sources))``, the original's attention MLPs."""
    x = keras.layers.Dense(hidden, activation="relu", name=f"{prefix}_hidden")(x)
    return keras.layers.Dense(sources, activation="softmax", name=f"{prefix}_weights")(x)


def _concatenate(parts, name):
    return keras.layers.Concatenate(name=name)(parts)


def fuse(features, company, model=None, attention_type="triple"):
    """The fused vector ``z`` and the attention outputs of one attention type (see the module docstring).

    ``model=None`` is the single-embedding variant (``attention_type`` "triple" means attention
    over ``[f; c]`` then, "none" plain concatenation); ``company=None`` the baseline (``z = f``).
    """
    if attention_type not in ATTENTION_TYPES:
        raise ValueError(f"Unknown attention_type {attention_type!r}; choose one of {ATTENTION_TYPES}.")
    if company is None:
        return features, {}
    if model is None:
        if attention_type == "none":
            return _concatenate([features, company], "fused"), {}
        weights = _attention(_concatenate([features, company], "attention_input"), 256, 2, "attention")
        return WeightedConcatenation(name="fused")([weights, features, company]), {"attention_weights": weights}
    if attention_type == "none":
        return _concatenate([features, company, model], "fused"), {}
    if attention_type == "dual":
        weights = _attention(_concatenate([company, model], "attention_input"), 128, 2, "attention")
        return WeightedConcatenation(name="fused")([weights, company, model]), {"attention_weights": weights}
    if attention_type == "triple":
        weights = _attention(_concatenate([features, company, model], "attention_input"), 256, 3, "attention")
        fused = WeightedConcatenation(name="fused")([weights, features, company, model])
        return fused, {"attention_weights": weights}
    embed_weights = _attention(_concatenate([company, model], "embed_attention_input"), 128, 2, "embed_attention")
    embeddings = WeightedConcatenation(name="weighted_embeddings")([embed_weights, company, model])
    feature_weights = _attention(
        _concatenate([features, embeddings], "feature_attention_input"), 256, 2, "feature_attention"
    )
    fused = WeightedConcatenation(name="fused")([feature_weights, features, embeddings])
    return fused, {"embed_attention_weights": embed_weights, "feature_attention_weights": feature_weights}


def regression_head(fused, task="both", target_statistics=None):
    """Dense 512 + ReLU + Dropout 0.3 -> Dense 256 + ReLU + Dropout 0.2 -> Dense 2 (or 1), in mm.

    With ``target_statistics = (means, stds)`` (one per output, in mm) the last Dense predicts
    standardised sizes and a `Destandardize` layer named ``dimensions`` returns them in mm.
    """
    if task not in TASK_OUTPUTS:
        raise ValueError(f"Unknown task {task!r}; choose one of {sorted(TASK_OUTPUTS)}.")
    x = keras.layers.Dense(512, activation="relu", name="regression_dense_1")(fused)
    x = keras.layers.Dropout(0.3, name="regression_dropout_1")(x)
    x = keras.layers.Dense(256, activation="relu", name="regression_dense_2")(x)
    x = keras.layers.Dropout(0.2, name="regression_dropout_2")(x)
    if target_statistics is None:
        return keras.layers.Dense(TASK_OUTPUTS[task], name=DIMENSIONS)(x)
    x = keras.layers.Dense(TASK_OUTPUTS[task], name="standardised_dimensions")(x)
    return Destandardize(*target_statistics, dtype="float32", name=DIMENSIONS)(x)  # mm in float32


def fusion_regressor(feature_dim, company_embed_dim=None, model_embed_dim=None, attention_type="triple", task="both"):
    """Attention and regression head on given features and embeddings (the original's module after its backbones).

    Inputs ``features`` (B, F), ``company_embedding`` (B, Ec) unless ``company_embed_dim`` is None,
    ``model_embed_dim`` likewise; outputs as the regressors'.
    """
    inputs = {"features": keras.Input((feature_dim,), name="features")}
    if company_embed_dim:
        inputs["company_embedding"] = keras.Input((company_embed_dim,), name="company_embedding")
    if model_embed_dim:
        inputs["model_embedding"] = keras.Input((model_embed_dim,), name="model_embedding")
    fused, attention = fuse(
        inputs["features"], inputs.get("company_embedding"), inputs.get("model_embedding"), attention_type
    )
    return keras.Model(inputs, {DIMENSIONS: regression_head(fused, task), **attention}, name="fusion_regressor")


def renamed_embedding(source, name):
    """A copy of the embedding model ``source`` named ``name``, carrying every one of its weights.

    The original renamed its pretrained keys to names that do not exist and loaded them with
    ``strict=False``, so the heads stayed random; here every weight is copied, and a weight that
    cannot be copied fails.
    """
    copy = keras.models.clone_model(source)
    copy.name = name
    copy.set_weights(source.get_weights())
    return copy


def _embeddings(sources, embed_dims, image_size, model_size, weights, vit_overrides):
    """The regressor's embedding models: given ones (copied under their standard names) or new ones."""
    built = {}
    for kind, source in sources.items():
        name = EMBEDDING_NAMES[kind]
        if source is None:
            source = embedding_model(image_size, model_size, embed_dims[kind], weights, name, vit_overrides)
            built[kind] = source
        else:
            _check_embedding(source, kind, image_size, model_size, vit_overrides)
            built[kind] = renamed_embedding(source, name)
    return built


def _check_embedding(source, kind, image_size, model_size, vit_overrides):
    width = source.output["features"].shape[-1]
    expected = (vit_overrides or {}).get("hidden_dim", feature_dim(model_size))
    if width != expected:
        raise ValueError(
            f"The {kind} embedding model has {width}-wide ViT features, but model_size={model_size!r} has "
            f"{expected}: pass the --model_size it was pretrained with."
        )
    if tuple(source.input.shape[1:3]) != (image_size, image_size):
        raise ValueError(
            f"The {kind} embedding model takes {tuple(source.input.shape[1:3])} images, not {image_size} px."
        )


@register_model("implant_dimensions/dual_embedding")
def dual_embedding_regression(
    image_size=224,
    model_size="base",
    company_embed_dim=256,
    model_embed_dim=256,
    attention_type="triple",
    task="both",
    weights=None,
    company_model=None,
    model_model=None,
    vit_overrides=None,
    named_outputs=True,
    target_statistics=None,
):
    """Image -> implant dimensions from a company and a model-type embedding model (see the module docstring).

    Args:
        image_size, model_size, weights, vit_overrides: of the ViTs built when no embedding model is given.
        company_embed_dim, model_embed_dim: Ec and Em of embedding models built here.
        attention_type: "dual", "triple", "hierarchical" or "none".
        task: "both", "length" or "diameter".
        company_model, model_model: pretrained `embedding_model` s to start from (copied, all weights).
        named_outputs: return ``{"dimensions", <attention weights>}``; ``False``: the dimensions alone
            (the attention layers keep their names, e.g. ``attention_weights``).
        target_statistics: ``(means, stds)`` of the targets in mm, or None (see `regression_head`).
    """
    embeddings = _embeddings(
        {"company": company_model, "model": model_model},
        {"company": company_embed_dim, "model": model_embed_dim},
        image_size,
        model_size,
        weights,
        vit_overrides,
    )
    image = keras.Input((image_size, image_size, 3), name="image")
    company = embeddings["company"](image)
    model = embeddings["model"](image)
    fused, attention = fuse(company["features"], company["embedding"], model["embedding"], attention_type)
    head = regression_head(fused, task, target_statistics)
    return keras.Model(image, _outputs(head, attention, named_outputs), name="dual_embedding")


@register_model("implant_dimensions/single_embedding")
def single_embedding_regression(
    image_size=224,
    model_size="base",
    embed_dim=256,
    use_attention=True,
    task="both",
    weights=None,
    company_model=None,
    vit_overrides=None,
    named_outputs=True,
    target_statistics=None,
):
    """Image -> implant dimensions from one (company) embedding model; attention over ``[f; c]``.

    Arguments as `dual_embedding_regression`'s; ``use_attention=False`` concatenates ``[f; c]``.
    """
    embeddings = _embeddings(
        {"company": company_model}, {"company": embed_dim}, image_size, model_size, weights, vit_overrides
    )
    image = keras.Input((image_size, image_size, 3), name="image")
    company = embeddings["company"](image)
    fused, attention = fuse(company["features"], company["embedding"], None, "triple" if use_attention else "none")
    head = regression_head(fused, task, target_statistics)
    return keras.Model(image, _outputs(head, attention, named_outputs), name="single_embedding")


@register_model("implant_dimensions/baseline")
def baseline_regression(
    image_size=224,
    model_size="base",
    task="both",
    weights=None,
    vit_overrides=None,
    named_outputs=True,
    target_statistics=None,
):
    """Image -> implant dimensions from the ViT features alone (no embeddings): the baseline.

    Arguments as `dual_embedding_regression`'s.
    """
    image = keras.Input((image_size, image_size, 3), name="image")
    features = vit_class_token(image, model_size, weights, **(vit_overrides or {}))
    head = regression_head(features, task, target_statistics)
    return keras.Model(image, _outputs(head, {}, named_outputs), name="baseline")


def _outputs(dimensions, attention, named_outputs):
    """``{"dimensions": ..., <attention weights>...}``, or the dimensions tensor alone."""
    return {DIMENSIONS: dimensions, **attention} if named_outputs else dimensions

"""The original's attention builders, rebuilt in Keras 2 (tf_keras), for benchmarks ONLY.

A reconstruction of ``attn_sex_model`` and ``attn_sex_model_improved`` from the original
``modeling_advanced.py`` (not in this repository), layer by layer from the facts in
``shared/reference/original_boneage.md``: Keras 2 API, ``Lambda`` division, ``LocallyConnected2D``,
the frozen all-ones 1x1 convolution set with ``weights=[ones]``, ``tf.math.multiply``/``tf.concat``
on Keras tensors, and the gated fusion written as tensor arithmetic. It exists so that
`benchmarks/train_throughput.py` can time the original's models in their own framework; the
project's models are `modeling.boneage` (Keras 3). Needs ``tf_keras`` (``pip install -e
".[benchmarks]"``).

``python benchmarks/original_tf_keras.py --verify`` proves the reconstruction is the original: it
loads the original's own Keras 2 weight files (``tests/fixtures/boneage/original_keras2``, legacy HDF5,
matched by layer order) into both builders at 128 px with MobileNetV2 and compares ``predict`` with
the original's recorded outputs and the parameter counts with the original's summary.
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from tf_keras import layers  # noqa: E402

from modeling.backbones.applications import BACKBONE_MAP as PORT_BACKBONE_MAP  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "boneage" / "original_keras2"
# The original's 15 backbone names, each to the tf_keras application of the same class name.
BACKBONE_MAP = {name: getattr(keras.applications, build.__name__) for name, build in PORT_BACKBONE_MAP.items()}


def get_backbone(backbone, img_dims, weights):
    """A headless backbone by name (a key of `BACKBONE_MAP`) or from a constructor callable."""
    if isinstance(backbone, str):
        if backbone not in BACKBONE_MAP:
            raise ValueError(f"Unknown backbone '{backbone}'. Choose one of: {', '.join(BACKBONE_MAP)}.")
        backbone = BACKBONE_MAP[backbone]
    elif not callable(backbone):
        raise ValueError(f"`backbone` must be a name or a callable; got {backbone!r}.")
    return backbone(include_top=False, weights=weights, input_shape=img_dims)


def attn_sex_model(
    img_dims, optim, metric, backbone="xception", weights="imagenet", dropout_rate=0.5, dense_units=512, gender_units=16
):
    """The original ``attn_sex_model``: spatial attention on the image, sex by concatenation.

    Args:
        img_dims: image shape ``(H, W, 3)``.
        optim: a tf_keras optimizer.
        metric: list of metrics.
        backbone: a `BACKBONE_MAP` name or a constructor callable.
        weights: ``None`` or ``"imagenet"`` for the backbone.
        dropout_rate: ``dr``.
        dense_units: D.
        gender_units: G.
    """
    conv_base = get_backbone(backbone, img_dims, weights)
    conv_base.trainable = False
    channels = conv_base.layers[-1].get_output_shape_at(0)[-1]
    input_img = layers.Input(shape=img_dims)
    bn = layers.BatchNormalization()(conv_base(input_img))
    attention = _attention_map(bn, ((128, 1), (64, 1), (16, 1)))
    image = _attention_image_vector(bn, attention, channels, dense_units, dropout_rate)
    input_gender = layers.Input(shape=(1,))
    gender = layers.Dense(gender_units, activation="relu", kernel_initializer="he_normal")(input_gender)
    x = tf.concat([image, gender], axis=1)
    x = layers.Dense(dense_units, activation="relu", kernel_initializer="he_normal")(x)
    x = layers.Dense(dense_units, activation="relu", kernel_initializer="he_normal")(x)
    x = layers.Dropout(0.4 * dropout_rate)(x)
    output = layers.Dense(1, activation="linear", kernel_initializer="glorot_uniform")(x)
    model = keras.Model([input_img, input_gender], output)
    model.compile(optimizer=optim, loss="mean_absolute_error", metrics=metric)
    return model


def attn_sex_model_improved(
    img_dims, optim, metric, backbone="xception", weights="imagenet", dropout_rate=0.5, dense_units=512, gender_units=16
):
    """The original ``attn_sex_model_improved``: spatial attention, cross-attention, gated fusion.

    Args are those of `attn_sex_model`.
    """
    conv_base = get_backbone(backbone, img_dims, weights)
    conv_base.trainable = False
    input_img = layers.Input(shape=img_dims)
    bn = layers.BatchNormalization()(conv_base(input_img))
    channels = bn.shape[-1]
    attention = _attention_map(bn, ((256, 1), (128, 3), (64, 1), (16, 1)))
    image = _attention_image_vector(bn, attention, channels, dense_units, dropout_rate)
    input_gender = layers.Input(shape=(1,))
    gender = layers.Dense(2 * gender_units, activation="relu", kernel_initializer="he_normal")(input_gender)
    gender = layers.Dense(gender_units, activation="relu", kernel_initializer="he_normal")(gender)
    gender = layers.Dropout(0.3 * dropout_rate)(gender)
    # "Cross-attention": the image token attends to the (projected) sex token.
    image_token = layers.Reshape((1, dense_units))(image)
    gender_token = layers.Reshape((1, gender_units))(gender)
    gender_token = layers.Dense(dense_units, activation="relu")(gender_token)
    attended = layers.MultiHeadAttention(num_heads=4, key_dim=dense_units // 4)(
        query=image_token, value=gender_token, key=gender_token
    )
    x = layers.Add()([image_token, attended])
    x = layers.LayerNormalization()(x)
    x = layers.Flatten()(x)
    # "Gated fusion" on Keras tensors.
    image_projected = layers.Dense(gender_units)(x)
    gate = layers.Dense(gender_units, activation="sigmoid")(tf.concat([image_projected, gender], axis=1))
    x = gate * image_projected + (1 - gate) * gender
    x = layers.Dense(dense_units, activation="relu", kernel_initializer="he_normal")(x)
    x = layers.Dense(dense_units // 2, activation="relu", kernel_initializer="he_normal")(x)
    x = layers.Dropout(0.4 * dropout_rate)(x)
    output = layers.Dense(1, activation="linear", kernel_initializer="glorot_uniform")(x)
    model = keras.Model([input_img, input_gender], output)
    model.compile(optimizer=optim, loss="mean_absolute_error", metrics=metric)
    return model


def _attention_map(features, conv_specs):
    """ReLU convolutions, then a locally connected 1x1 tanh map ``(H, W, 1)``."""
    x = features
    for filters, kernel_size in conv_specs:
        x = layers.Conv2D(
            filters, (kernel_size, kernel_size), padding="same", activation="relu", kernel_initializer="he_normal"
        )(x)
    return layers.LocallyConnected2D(1, (1, 1), padding="valid", activation="tanh")(x)


def _attention_image_vector(bn, attention, channels, dense_units, dropout_rate):
    """Broadcast the map with the frozen ones-conv, rescaled pooling, Dropout -> Dense(swish) -> Dropout."""
    up = layers.Conv2D(
        channels,
        (1, 1),
        padding="same",
        activation="linear",
        use_bias=False,
        weights=[np.ones((1, 1, 1, channels))],
    )
    up.trainable = False
    attention = up(attention)
    masked = tf.math.multiply(attention, bn)
    gap_features = layers.GlobalAveragePooling2D()(masked)
    gap_mask = layers.GlobalAveragePooling2D()(attention)
    gap = layers.Lambda(lambda x: x[0] / x[1])([gap_features, gap_mask])
    x = layers.Dropout(dropout_rate)(gap)
    x = layers.Dense(dense_units, activation="swish", kernel_initializer="he_normal")(x)
    return layers.Dropout(0.4 * dropout_rate)(x)


BUILDERS = {"attn_sex_model": attn_sex_model, "attn_sex_model_improved": attn_sex_model_improved}


def verify(fixtures=FIXTURES):
    """Load the original's weight files into the reconstruction; compare outputs and parameter counts.

    Returns:
        ``{stem: {"max_abs_diff", "params_total", "params_trainable", "n_weight_arrays", "ok"}}``.
    """
    summary = json.loads((fixtures / "summary.json").read_text())
    report = {}
    for name, builder in BUILDERS.items():
        stem = f"{name}__mobilenet_v2__128"
        model = builder((128, 128, 3), keras.optimizers.Adam(), ["mae"], backbone="mobilenet_v2", weights=None)
        model.load_weights(str(fixtures / f"{stem}.h5"))
        data = np.load(fixtures / f"{stem}_io.npz")
        predicted = model.predict([data["image"], data["male"]], verbose=0)
        trainable = int(sum(np.prod(weight.shape) for weight in model.trainable_weights))
        found = {
            "max_abs_diff": float(np.abs(predicted - data["expected"]).max()),
            "params_total": int(model.count_params()),
            "params_trainable": trainable,
            "n_weight_arrays": len(model.weights),
        }
        expected = summary[stem]
        found["ok"] = found["max_abs_diff"] <= 1e-4 and all(
            found[key] == expected[key] for key in ("params_total", "params_trainable", "n_weight_arrays")
        )
        report[stem] = found
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verify", action="store_true", help="check against the original's Keras 2 fixtures")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    args = parser.parse_args(argv)
    if not args.verify:
        parser.error("nothing to do: pass --verify (the builders are imported by benchmarks/train_throughput.py)")
    report = verify(args.fixtures)
    print(json.dumps(report, indent=1))
    return 0 if all(found["ok"] for found in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

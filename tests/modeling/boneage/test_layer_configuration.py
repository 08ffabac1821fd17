"""Every head layer's configuration against the original's, as `../shared/reference/original_boneage.md` states it.

Parameter counts and inference-mode predictions cannot see a changed dropout rate, activation or
initializer; this test does. The expected rows below are written from the reference's description
of each builder (dr = dropout rate 0.5; D, G = dense and gender units), in the model's layer order,
one row per layer that has settings: ``(class, {setting: value})``. Layers without settings
(inputs, pooling, concatenation, reshapes, the attention broadcast) are skipped.
"""

import pytest

import modeling

DR = 0.5


def dense(units, activation, initializer):
    return ("Dense", {"units": units, "activation": activation, "kernel_initializer": initializer, "use_bias": True})


def dropout(rate):
    return ("Dropout", {"rate": round(rate, 9)})


def conv(filters, size):
    return ("Conv2D", {"filters": filters, "kernel_size": (size, size), "padding": "same", "activation": "relu",
                       "kernel_initializer": "HeNormal"})  # fmt: skip


# Keras 2 BatchNormalization / LayerNormalization defaults: the original passes no arguments. The
# port's feature BN is the same layer on TensorFlow's fused kernel, like the backbone's (same config).
BATCH_NORM = ("FusedBatchNormalization", {"momentum": 0.99, "epsilon": 1e-3, "axis": -1})
# LocallyConnected2D(1, 1x1, padding 'valid', tanh, default glorot_uniform kernel)
ATTENTION_MAP = (
    "LocallyConnected2D",
    {
        "filters": 1,
        "kernel_size": (1, 1),
        "padding": "valid",
        "activation": "tanh",
        "kernel_initializer": "GlorotUniform",
    },
)
# Dropout(dr) -> Dense(D, swish, He) -> Dropout(0.4 dr) after the rescaled pooling ("silu" is Keras' name for swish)
IMAGE_HEAD = [dropout(DR), dense(512, "silu", "HeNormal"), dropout(0.4 * DR)]

EXPECTED = {
    # the older modeling.py: the attn_sex attention block "with default initializers" (Glorot), then
    # Dropout(0.5) -> Dense(512, swish) -> Dropout(0.2) -> Dense(512, relu) -> Dense(512, relu) -> Dropout(0.2) -> 1
    "boneage/attn": [
        BATCH_NORM,
        *[
            (kind, {**settings, "kernel_initializer": "GlorotUniform"})
            for kind, settings in (conv(128, 1), conv(64, 1), conv(16, 1))
        ],
        ATTENTION_MAP,
        ("AttentionWeightedPooling", {}),
        dropout(DR),
        dense(512, "silu", "GlorotUniform"),
        dropout(0.4 * DR),
        dense(512, "relu", "GlorotUniform"),
        dense(512, "relu", "GlorotUniform"),
        dropout(0.4 * DR),
        dense(1, "linear", "GlorotUniform"),
    ],
    # backbone -> GAP -> Dropout(dr) -> Dense(D=500, tanh: Glorot) -> Dropout(dr/2) -> Dense(1, linear, Glorot)
    "boneage/baseline": [
        dropout(DR),
        dense(500, "tanh", "GlorotUniform"),
        dropout(DR / 2),
        dense(1, "linear", "GlorotUniform"),
    ],
    # image: Dropout(dr) -> Dense(1024, tanh, Glorot) -> Dropout(0.4 dr) -> Dense(512, relu, He);
    # sex: Dense(32, relu, He); head: 512 relu He, 512 relu He, Dropout(0.4 dr), Dense(1, Glorot)
    "boneage/sex": [
        dropout(DR),
        dense(1024, "tanh", "GlorotUniform"),
        dropout(0.4 * DR),
        dense(512, "relu", "HeNormal"),
        dense(32, "relu", "HeNormal"),
        dense(512, "relu", "HeNormal"),
        dense(512, "relu", "HeNormal"),
        dropout(0.4 * DR),
        dense(1, "linear", "GlorotUniform"),
    ],
    # BN -> 128/64/16 1x1 relu He -> LocallyConnected tanh -> ... ; sex Dense(16, relu, He);
    # head D relu He, D relu He, Dropout(0.4 dr), Dense(1, Glorot)
    "boneage/attn_sex": [
        BATCH_NORM,
        conv(128, 1),
        conv(64, 1),
        conv(16, 1),
        ATTENTION_MAP,
        ("AttentionWeightedPooling", {}),
        IMAGE_HEAD[0],
        IMAGE_HEAD[1],
        IMAGE_HEAD[2],
        dense(16, "relu", "HeNormal"),
        dense(512, "relu", "HeNormal"),
        dense(512, "relu", "HeNormal"),
        dropout(0.4 * DR),
        dense(1, "linear", "GlorotUniform"),
    ],
    # convs 256 (1x1), 128 (3x3), 64, 16; sex Dense(2G, relu, He) -> Dense(G, relu, He) -> Dropout(0.3 dr);
    # cross-attention: Dense(D, relu, default init) projection of sex, MHA(4 heads, key_dim D//4), LayerNorm;
    # gated fusion: Dense(G) linear, gate Dense(G, sigmoid); head D relu He, D//2 relu He, Dropout(0.4 dr), 1
    "boneage/attn_sex_improved": [
        BATCH_NORM,
        conv(256, 1),
        conv(128, 3),
        conv(64, 1),
        conv(16, 1),
        ATTENTION_MAP,
        ("AttentionWeightedPooling", {}),
        dense(32, "relu", "HeNormal"),
        IMAGE_HEAD[0],
        dense(16, "relu", "HeNormal"),
        IMAGE_HEAD[1],
        dropout(0.3 * DR),
        IMAGE_HEAD[2],
        dense(512, "relu", "GlorotUniform"),
        ("MultiHeadAttention", {"num_heads": 4, "key_dim": 128, "kernel_initializer": "GlorotUniform"}),
        ("LayerNormalization", {"epsilon": 1e-3, "axis": [-1]}),
        dense(16, "linear", "GlorotUniform"),
        dense(16, "sigmoid", "GlorotUniform"),
        dense(512, "relu", "HeNormal"),
        dense(256, "relu", "HeNormal"),
        dropout(0.4 * DR),
        dense(1, "linear", "GlorotUniform"),
    ],
}
WITHOUT_SETTINGS = {"InputLayer", "Functional", "GlobalAveragePooling2D", "Flatten", "Concatenate", "Reshape", "Add",
                    "AttentionBroadcast", "GatedSum"}  # fmt: skip


def _settings(layer, wanted):
    config = layer.get_config()
    found = {}
    for key in wanted:
        value = config[key]
        if key == "kernel_initializer":
            value = value["class_name"]
        found[key] = round(value, 9) if isinstance(value, float) else value  # rates such as 0.4 * 0.5
    return found


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_head_layer_has_the_originals_settings(name):
    model = modeling.create_model(name, img_dims=(32, 32, 3), backbone="mobilenet_v2", weights=None)
    layers = [layer for layer in model.layers if type(layer).__name__ not in WITHOUT_SETTINGS]
    assert [type(layer).__name__ for layer in layers] == [kind for kind, _ in EXPECTED[name]]
    for layer, (_, expected) in zip(layers, EXPECTED[name], strict=True):
        assert _settings(layer, expected) == expected, layer.name

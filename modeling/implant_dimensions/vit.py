"""A ViT built block by block from registered layers that compute exactly what keras-hub's `ViTBackbone` does.

Progressive unfreezing ("top blocks first", as the original's ``unfreeze(ratio)``) needs every
transformer block to be a layer of the embedding model. keras-hub 0.32's own ViT layers cannot be
used that way: outside their backbone they do not survive a `.keras` round trip (their
``get_config`` returns arguments their constructors refuse). These layers hold the same weights
in the same order, so a keras-hub preset (local directory or name, through the shared
`modeling.backbones.hub_backbone`) is copied into them weight for weight.

Example:

>>> import keras
>>> image = keras.Input((32, 32, 3))
>>> vit_class_token(image, "tiny", num_layers=1).shape
(None, 192)
"""

import keras
from keras import ops

from modeling.backbones.hub import VIT_SIZES, hub_backbone
from modeling.implant_dimensions.layers import ClassToken

LAYER_NORM_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="medfusion")
class ViTPatchEmbedding(keras.layers.Layer):
    """Patches -> linear embedding, with a class token first and learned position embeddings added.

    Args:
        hidden_dim: width of the embedding.
        patch_size: side of the square patches (and the stride).
    """

    def __init__(self, hidden_dim, patch_size=16, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim, self.patch_size = int(hidden_dim), int(patch_size)

    def build(self, input_shape):
        height, width = input_shape[1:3]
        self.num_positions = (height // self.patch_size) * (width // self.patch_size) + 1
        self.class_token = self.add_weight((1, 1, self.hidden_dim), initializer="random_normal", name="class_token")
        self.patch_embedding = keras.layers.Conv2D(
            self.hidden_dim, self.patch_size, strides=self.patch_size, dtype=self.dtype_policy, name="patch_embedding"
        )
        self.patch_embedding.build(input_shape)
        self.position_embedding = keras.layers.Embedding(
            self.num_positions,
            self.hidden_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
            dtype=self.dtype_policy,
            name="position_embedding",
        )
        self.position_embedding.build((1, self.num_positions))

    def call(self, images):
        patches = self.patch_embedding(images)
        batch = ops.shape(patches)[0]
        patches = ops.reshape(patches, (batch, -1, self.hidden_dim))
        tokens = ops.concatenate([ops.tile(ops.cast(self.class_token, patches.dtype), (batch, 1, 1)), patches], 1)
        return tokens + self.position_embedding(ops.expand_dims(ops.arange(self.num_positions), 0))

    def compute_output_shape(self, input_shape):
        tokens = (input_shape[1] // self.patch_size) * (input_shape[2] // self.patch_size) + 1
        return (input_shape[0], tokens, self.hidden_dim)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "patch_size": self.patch_size}


@keras.saving.register_keras_serializable(package="medfusion")
class ViTBlock(keras.layers.Layer):
    """Pre-norm transformer block: ``x + MHA(LN(x))``, then ``+ MLP(LN(.))`` with exact GELU.

    Args:
        num_heads: attention heads (key width ``hidden_dim // num_heads``).
        mlp_dim: width of the MLP's hidden layer.
        dropout_rate: dropout after attention and in the MLP.
        attention_dropout: dropout of the attention weights.
    """

    def __init__(self, num_heads, mlp_dim, dropout_rate=0.0, attention_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.mlp_dim = int(num_heads), int(mlp_dim)
        self.dropout_rate, self.attention_dropout = float(dropout_rate), float(attention_dropout)

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        policy = self.dtype_policy
        self.layer_norm_1 = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, dtype=policy, name="ln_1")
        self.layer_norm_1.build(input_shape)
        self.mha = keras.layers.MultiHeadAttention(
            self.num_heads, hidden_dim // self.num_heads, dropout=self.attention_dropout, dtype=policy, name="mha"
        )
        self.mha.build(input_shape, input_shape)
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=policy)
        self.layer_norm_2 = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, dtype=policy, name="ln_2")
        self.layer_norm_2.build(input_shape)
        self.dense_1 = keras.layers.Dense(self.mlp_dim, activation="gelu", dtype=policy, name="dense_1")
        self.dense_1.build(input_shape)
        self.dense_2 = keras.layers.Dense(hidden_dim, dtype=policy, name="dense_2")
        self.dense_2.build((None, None, self.mlp_dim))

    def call(self, inputs, training=None):
        x = self.layer_norm_1(inputs)
        x = self.dropout(self.mha(x, x, training=training), training=training) + inputs
        y = self.dropout(self.dense_1(self.layer_norm_2(x)), training=training)
        return x + self.dropout(self.dense_2(y), training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "mlp_dim": self.mlp_dim,
            "dropout_rate": self.dropout_rate,
            "attention_dropout": self.attention_dropout,
        }


def vit_class_token(image, model_size="base", weights=None, **overrides):
    """The final-LayerNorm class token of a ViT on ``image``; each block is its own layer (``block_<i>``).

    Args:
        image: a Keras tensor ``(batch, H, W, 3)``.
        model_size: tiny, small, base or large (timm's dimensions, `VIT_SIZES`).
        weights: ``None`` (random), or a keras-hub ViT preset (directory or name) whose weights
            are copied in; the preset then sets the dimensions.
        **overrides: ``num_layers``, ``num_heads``, ``hidden_dim``, ``mlp_dim``, ``patch_size``,
            ``dropout_rate``, ``attention_dropout`` instead of the size table's.
    """
    source = None
    if weights is not None:
        source = hub_backbone("vit", model_size, weights=weights, image_shape=tuple(image.shape[1:]))
        config = source.get_config()
        dims = {key: config[key] for key in ("hidden_dim", "num_layers", "num_heads", "mlp_dim")}
        dims["patch_size"] = config["patch_size"][0]
    else:
        if model_size not in VIT_SIZES:
            raise ValueError(f"Unknown model size {model_size!r}; choose one of {sorted(VIT_SIZES)}.")
        dims = dict(VIT_SIZES[model_size], patch_size=16)
    dims.update(overrides)
    patching = ViTPatchEmbedding(dims["hidden_dim"], dims["patch_size"], name="patch_embedding")
    x = patching(image)
    blocks = [
        ViTBlock(
            dims["num_heads"],
            dims["mlp_dim"],
            dims.get("dropout_rate", 0.0),
            dims.get("attention_dropout", 0.0),
            name=f"block_{i}",
        )
        for i in range(dims["num_layers"])
    ]
    for block in blocks:
        x = block(x)
    norm = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="final_norm")
    x = norm(x)
    if source is not None:
        encoder = source.get_layer("vit_encoder")
        patching.set_weights(source.get_layer("vit_patching_and_embedding").get_weights())
        for block, hub_block in zip(blocks, encoder.encoder_layers, strict=True):
            block.set_weights(hub_block.get_weights())
        norm.set_weights(encoder.layer_norm.get_weights())
    return ClassToken(name="class_token")(x)

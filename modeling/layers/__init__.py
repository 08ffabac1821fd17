"""Custom layers, one registered class per operation; `keras.ops` only."""

from modeling.layers.attention_broadcast import AttentionBroadcast
from modeling.layers.attention_pooling import AttentionWeightedPooling
from modeling.layers.denormalization import Denormalization
from modeling.layers.fused_batch_norm import FusedBatchNormalization, fuse_batch_normalization
from modeling.layers.gated_sum import GatedSum
from modeling.layers.image_preprocessing import ImagePreprocessing
from modeling.layers.locally_connected import LocallyConnected2D

__all__ = [
    "AttentionBroadcast",
    "AttentionWeightedPooling",
    "Denormalization",
    "FusedBatchNormalization",
    "GatedSum",
    "ImagePreprocessing",
    "LocallyConnected2D",
    "fuse_batch_normalization",
]

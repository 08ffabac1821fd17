"""AdamW with learning-rate groups, as the original's three parameter groups (PyTorch ``AdamW``)."""

import re

import keras
from keras import ops

# The original's groups, by name: backbone ("feature_extractor") 0.1x, attention 2x, the rest 1x.
# Keras ResNet-50 layers are named conv1_... conv5_...; the attention layers carry "attention".
ORIGINAL_LR_MULTIPLIERS = {r"^conv[1-5]_": 0.1, "attention": 2.0}


@keras.saving.register_keras_serializable(package="medfusion")
class GroupedAdamW(keras.optimizers.Adam):
    """Adam with PyTorch-style decoupled weight decay and a learning-rate factor per variable group.

    A variable takes the factor of the first pattern of ``lr_multipliers`` found (`re.search`) in
    its path, else 1. Its step and its weight decay use ``learning_rate * factor``, as a PyTorch
    parameter group with that learning rate does. ``learning_rate`` stays one value, so
    `keras.callbacks.ReduceLROnPlateau` scales every group together.

    Args:
        learning_rate: base learning rate (original: 5e-5).
        weight_decay: decoupled weight decay of every variable (original: 1e-4).
        lr_multipliers: ``{regex: factor}``.
        **kwargs: `keras.optimizers.Adam` arguments (e.g. ``global_clipnorm=1.0``, PyTorch's
            ``clip_grad_norm_`` over all parameters).

    Example:

    >>> optimizer = GroupedAdamW(1e-3, lr_multipliers={"attention": 2.0})
    >>> optimizer.factor_of("spatial_attention_attention_net_0/kernel"), optimizer.factor_of("fusion/kernel")
    (2.0, 1.0)
    """

    def __init__(self, learning_rate=5e-5, weight_decay=1e-4, lr_multipliers=None, name="grouped_adamw", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.group_weight_decay = float(weight_decay or 0.0)
        self.lr_multipliers = {str(k): float(v) for k, v in (lr_multipliers or {}).items()}

    def factor_of(self, path):
        """The learning-rate factor of a variable path."""
        for pattern, factor in self.lr_multipliers.items():
            if re.search(pattern, path):
                return factor
        return 1.0

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._factors = [self.factor_of(variable.path) for variable in var_list]

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype) * self._factors[self._get_variable_index(variable)]
        if self.group_weight_decay:
            variable.assign(variable - variable * (self.group_weight_decay * lr))
        super().update_step(gradient, variable, lr)

    def get_config(self):
        return {
            **super().get_config(),
            "weight_decay": self.group_weight_decay,
            "lr_multipliers": dict(self.lr_multipliers),
        }

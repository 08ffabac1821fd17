"""Fusion layers that route each sample to a modality path: `SHoMRFusion` and `EnergyAwareAdaptiveFusion`.

Routes are drawn with `keras.random.categorical` in training. At inference the original SHoMR takes the
argmax and the original EAAF *samples* (its output is random); here both take the argmax by default and
``inference_routing="sample"`` restores the original EAAF. A test (or a user) can force the routes by
passing ``route`` (int, ``(batch,)``: 0 vision, 1 text, 2 both).
"""

import keras
from keras import ops

from modeling.fusion.vector_fusion_parts import VectorFusion, attention, layer_norm, mlp, self_attention_summary

ROUTINGS = ("argmax", "sample")


def _pick(route, branches, num_routes):
    """Per sample, the branch of its route: ``sum_k onehot(route)_k * branch_k``."""
    one_hot = ops.one_hot(ops.cast(route, "int32"), num_routes, dtype=branches[0].dtype)
    return sum(one_hot[:, index, None] * branch for index, branch in enumerate(branches))


class _RoutedFusion(VectorFusion):
    """Shared parts: router, gate, self-attention over [v; t], the route draw."""

    router_dropout = True  # SHoMR's router has a Dropout after its GELU, EAAF's does not

    def __init__(self, dim, heads=4, dropout=0.1, inference_routing="argmax", seed=None, **kwargs):
        super().__init__(dim, dropout, **kwargs)
        if inference_routing not in ROUTINGS:
            raise ValueError(f"inference_routing must be one of {ROUTINGS}; got {inference_routing!r}.")
        self.heads, self.inference_routing, self.seed = heads, inference_routing, seed
        self.router = mlp([dim, 3], dropout if self.router_dropout else 0.0, "router")
        self.gate = keras.layers.Dense(dim, activation="sigmoid", name="gate")
        self.cross_attn = attention(dim, heads, dropout, "cross_attn")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def routed_sublayers(self, dim):
        return [(self.router, (None, 2 * dim)), (self.gate, (None, 2 * dim)), (self.cross_attn, ((None, 2, dim),) * 2)]

    def call(self, vision, text, training=None, route=None):
        return self.fuse(vision, text, training, route)

    def draw_route(self, logits, training):
        if training or self.inference_routing == "sample":
            return keras.random.categorical(logits, 1, seed=self.seed_generator)[:, 0]
        return ops.argmax(logits, axis=-1)

    def blend(self, vision, text, joint, training):
        """``g v + (1 - g) t + mean_tokens MHA(X, X, X)`` with ``g = sigmoid(gate([v; t]))``."""
        gate = self.gate(joint)
        attended = self_attention_summary(self.cross_attn, vision, text, training)
        return gate * vision + (1.0 - gate) * text + attended

    def get_config(self):
        return {
            **super().get_config(),
            "heads": self.heads,
            "inference_routing": self.inference_routing,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="medfusion")
class SHoMRFusion(_RoutedFusion):
    """Soft-Hard Modality Routing.

    ``c = softmax(conf_net([v; t]))``; a sample whose ``max(c) > threshold`` takes a hard route
    ``argmax(softmax(router([v; t]) / temperature))`` (sampled in training): 0 ``P(v)``, 1 ``P(t)``,
    2 ``b + FFN(b)`` with ``b = LN2(g v + (1 - g) t + a)``; the others take the soft path
    ``s + FFN(s)`` with ``s = LN1(c_v v + c_t t + a)``; ``a = mean_tokens MHA([v; t])``. The original's
    fallback for ``max(c) < 0.3`` cannot fire (a 2-way softmax has max >= 0.5) and is left out.

    Example:

    >>> import numpy as np
    >>> v = t = np.ones((3, 8), "float32")
    >>> tuple(SHoMRFusion(dim=8, heads=2)(v, t).shape)
    (3, 8)
    """

    def __init__(
        self, dim, heads=4, dropout=0.1, threshold=0.6, temperature=1.0, inference_routing="argmax", seed=None, **kwargs
    ):
        super().__init__(dim, heads, dropout, inference_routing, seed, **kwargs)
        self.threshold, self.temperature = threshold, temperature
        self.conf_net = mlp([dim, 2], dropout, "conf_net")
        self.proj_single = mlp([dim], dropout, "proj_single", activate_last=True, dropout_after_last=True)
        self.norm1, self.norm2 = layer_norm("norm1"), layer_norm("norm2")
        self.ffn = mlp([4 * dim, dim], dropout, "ffn", dropout_after_last=True)

    def sublayers_and_shapes(self, dim):
        vector = (None, dim)
        return self.routed_sublayers(dim) + [
            (self.conf_net, (None, 2 * dim)),
            (self.proj_single, vector),
            (self.norm1, vector),
            (self.norm2, vector),
            (self.ffn, vector),
        ]

    def confidences(self, joint, training):
        return ops.softmax(self.conf_net(joint, training=training), axis=-1)

    def router_logits(self, joint, training):
        return self.router(joint, training=training) / self.temperature

    def fuse(self, vision, text, training, route=None):
        joint = ops.concatenate([vision, text], axis=-1)
        confidence = self.confidences(joint, training)
        if route is None:
            route = self.draw_route(self.router_logits(joint, training), training)
        attended = self_attention_summary(self.cross_attn, vision, text, training)
        soft = self.norm1(confidence[:, :1] * vision + confidence[:, 1:] * text + attended)
        soft = soft + self.ffn(soft, training=training)
        both = self.norm2(self.blend(vision, text, joint, training))
        both = both + self.ffn(both, training=training)
        single = [self.proj_single(vision, training=training), self.proj_single(text, training=training)]
        hard = _pick(route, [*single, both], 3)
        is_hard = ops.cast(ops.max(confidence, axis=-1, keepdims=True) > self.threshold, vision.dtype)
        return is_hard * hard + (1.0 - is_hard) * soft

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "temperature": self.temperature}


ENERGY_COSTS = (3.2, 4.1, 9.8)  # mJ of the vision-only, text-only and full routes (the original's constants)


@keras.saving.register_keras_serializable(package="medfusion")
class EnergyAwareAdaptiveFusion(_RoutedFusion):
    """Energy-aware adaptive fusion (EAAF).

    ``p = softmax(router([v; t]))``; route 0 returns v, route 1 returns t, route 2 returns
    ``FFN(LN(g v + (1 - g) t + mean_tokens MHA([v; t])))`` (no residual). With ``energy_loss=True``
    (default) the layer adds ``lambda * relu(mean_batch(p . costs) - budget)`` to the model's losses in
    training (the original computes it and never uses it); ``lambda`` is learned, initialised at 0.01.

    Args:
        dim, heads, dropout: as the other fusion layers.
        energy_costs: per-route costs (vision, text, full).
        energy_budget: the budget the expected cost is compared with.
        energy_loss: add the energy term in training.
        inference_routing: "argmax" (deterministic, default) or "sample" (the original).

    Example:

    >>> import numpy as np
    >>> v, t = np.zeros((2, 8), "float32"), np.ones((2, 8), "float32")
    >>> fusion = EnergyAwareAdaptiveFusion(dim=8, heads=2)
    >>> keras.ops.convert_to_numpy(fusion(v, t, route=np.array([1, 0]))).sum(axis=1).tolist()
    [8.0, 0.0]
    """

    router_dropout = False

    def __init__(
        self,
        dim,
        heads=4,
        dropout=0.1,
        energy_costs=ENERGY_COSTS,
        energy_budget=8.0,
        energy_loss=True,
        inference_routing="argmax",
        seed=None,
        **kwargs,
    ):
        super().__init__(dim, heads, dropout, inference_routing, seed, **kwargs)
        self.energy_costs, self.energy_budget, self.energy_loss = tuple(energy_costs), energy_budget, energy_loss
        self.norm = layer_norm("norm")
        self.ffn = mlp([4 * dim, dim], dropout, "ffn", dropout_between=False, dropout_after_last=True)

    def build(self, vision_shape, text_shape=None):
        self.lambda_energy = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(0.01), name="lambda_energy"
        )
        super().build(vision_shape, text_shape)

    def sublayers_and_shapes(self, dim):
        return self.routed_sublayers(dim) + [(self.norm, (None, dim)), (self.ffn, (None, dim))]

    def route_probabilities(self, vision, text, training=None):
        return ops.softmax(self.router(ops.concatenate([vision, text], axis=-1), training=training), axis=-1)

    def fuse(self, vision, text, training, route=None):
        joint = ops.concatenate([vision, text], axis=-1)
        logits = self.router(joint, training=training)
        if training and self.energy_loss:
            expected = ops.mean(
                ops.sum(ops.softmax(logits, axis=-1) * ops.convert_to_tensor(self.energy_costs), axis=-1)
            )
            self.add_loss(self.lambda_energy * ops.relu(expected - self.energy_budget))
        if route is None:
            route = self.draw_route(logits, training)
        full = self.ffn(self.norm(self.blend(vision, text, joint, training)), training=training)
        return _pick(route, [vision, text, full], 3)

    def get_config(self):
        return {
            **super().get_config(),
            "energy_costs": list(self.energy_costs),
            "energy_budget": self.energy_budget,
            "energy_loss": self.energy_loss,
        }

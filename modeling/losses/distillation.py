"""Knowledge-distillation terms of the image + text fusion system (seed 002), in `keras.ops`.

Terms (student ``s``, teacher ``t``; teacher features are first mapped to the student width by
trainable projections ``P``, see `DistillationTerms`):

* `kl_distillation`: ``T^2 * KL(softmax(t / T) || softmax(s / T))``, batch mean (PyTorch's ``batchmean``).
* `feature_mse`: mean squared error of two feature tensors.
* `crd_term`: contrastive: cross-entropy of ``normalize(s) normalize(t)^T / 0.1`` with diagonal targets.
* `rkd_term`: 25 * smooth-L1 of pairwise distance matrices + 50 * smooth-L1 of cosine matrices.
* `mmd_term`: Gaussian-kernel MMD with bandwidths (0.2, 0.5, 1, 2, 5).

`LOSS_DEFAULTS` gives each loss type's terms and weights (the original's defaults); the classification
cross-entropies of both tasks are the compiled losses of the distillation model.

Example:

>>> import numpy as np
>>> round(float(kl_distillation(np.zeros((1, 2)), np.log([[3.0, 1.0]]), temperature=1.0)), 6)
0.130812
"""

import keras
from keras import ops

_LOGITS = ("logits_modality", "logits_location")
MMD_BANDWIDTHS = (0.2, 0.5, 1.0, 2.0, 5.0)
LOSS_DEFAULTS = {  # type -> default weights (alpha: KL, beta: feature MSE, gamma: CRD; T: temperature)
    "vanilla": dict(alpha=1.0, beta=100.0, T=2.0),
    "combined": dict(alpha=1.0, beta=100.0, gamma=10.0, T=4.0),
    "crd": dict(),
    "rkd": dict(w_dist=25.0, w_angle=50.0),
    "mmd": dict(),
}


def kl_distillation(student_logits, teacher_logits, temperature):
    """``T^2 * mean_batch sum_c p_t (log p_t - log p_s)`` with ``p = softmax(logits / T)``."""
    log_student = ops.log_softmax(ops.convert_to_tensor(student_logits, "float32") / temperature, axis=-1)
    log_teacher = ops.log_softmax(ops.convert_to_tensor(teacher_logits, "float32") / temperature, axis=-1)
    kl = ops.sum(ops.exp(log_teacher) * (log_teacher - log_student), axis=-1)
    return ops.mean(kl) * temperature**2


def feature_mse(student, teacher):
    return ops.mean(ops.square(ops.convert_to_tensor(student, "float32") - ops.convert_to_tensor(teacher, "float32")))


def _normalize(x):
    """``F.normalize``: x / max(||x||, 1e-12)."""
    x = ops.convert_to_tensor(x, "float32")
    return x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-12)


def crd_term(student, teacher, temperature=0.1):
    """Cross-entropy of ``normalize(s) normalize(t)^T / temperature`` against the diagonal."""
    logits = ops.matmul(_normalize(student), ops.transpose(_normalize(teacher))) / temperature
    return ops.mean(-ops.diagonal(ops.log_softmax(logits, axis=-1)))


def _smooth_l1(a, b):
    difference = ops.abs(a - b)
    return ops.mean(ops.where(difference < 1.0, 0.5 * difference**2, difference - 0.5))


def _pairwise_distances(x):
    squared = ops.sum(x * x, axis=-1, keepdims=True)
    return ops.sqrt(ops.maximum(squared + ops.transpose(squared) - 2 * ops.matmul(x, ops.transpose(x)), 0.0) + 1e-8)


def rkd_term(student, teacher, w_dist=25.0, w_angle=50.0):
    """Relational KD on L2-normalised features: distance and angle (cosine) structure of the batch."""
    student, teacher = _normalize(student), _normalize(teacher)
    distance = _smooth_l1(_pairwise_distances(student), _pairwise_distances(teacher))
    cosine = lambda x: ops.matmul(_normalize(x), ops.transpose(_normalize(x)))  # noqa: E731
    return w_dist * distance + w_angle * _smooth_l1(cosine(student), cosine(teacher))


def _gaussian_kernel(x, y, bandwidths):
    squared = ops.sum(ops.square(x[:, None, :] - y[None, :, :]), axis=-1)
    return sum(ops.exp(-squared / (2 * bandwidth**2)) for bandwidth in bandwidths) / len(bandwidths)


def mmd_term(student, teacher, bandwidths=MMD_BANDWIDTHS):
    """``mean K(s, s) + mean K(t, t) - 2 mean K(s, t)``, K the average of Gaussian kernels."""
    student, teacher = ops.convert_to_tensor(student, "float32"), ops.convert_to_tensor(teacher, "float32")
    k_ss, k_tt = _gaussian_kernel(student, student, bandwidths), _gaussian_kernel(teacher, teacher, bandwidths)
    return ops.mean(k_ss) + ops.mean(k_tt) - 2 * ops.mean(_gaussian_kernel(student, teacher, bandwidths))


@keras.saving.register_keras_serializable(package="medfusion")
class DistillationTerms(keras.layers.Layer):
    """Adds the distillation terms of ``loss_type`` to the model's losses; returns the student logits.

    Called on ``(student_outputs, teacher_outputs)``, the output dicts of a student and a (frozen)
    teacher `fusion_classifier`. Teacher raw features are mapped to the student width by ``proj_t_img``
    and ``proj_t_txt``; these are trained by default (``train_teacher_projections``); the original
    keeps them outside the optimizer (fixed random maps): ``train_teacher_projections=False``.

    Terms: vanilla ``alpha (KL1 + KL2) + beta (MSE_img + MSE_txt)``; combined adds ``gamma * CRD``;
    crd / rkd / mmd: the relational term averaged over image and text. The task cross-entropies are the
    compiled losses.

    Args:
        loss_type: a key of `LOSS_DEFAULTS`.
        **weights: ``alpha``, ``beta``, ``gamma``, ``T``, ``w_dist``, ``w_angle`` (defaults per type).

    Example:

    >>> import numpy as np
    >>> terms = DistillationTerms("vanilla", alpha=1.0, beta=0.0, T=1.0)
    >>> s = {"logits_modality": np.zeros((1, 2)), "logits_location": np.zeros((1, 2)),
    ...      "img_proj": np.zeros((1, 3)), "txt_proj": np.zeros((1, 3))}
    >>> t = {"logits_modality": np.log([[3.0, 1.0]]), "logits_location": np.zeros((1, 2)),
    ...      "img_raw": np.zeros((1, 4)), "txt_raw": np.zeros((1, 4))}
    >>> _ = terms(s, t)
    >>> round(float(terms.losses[0]), 6)
    0.130812
    """

    def __init__(
        self,
        loss_type="combined",
        train_teacher_projections=True,
        alpha=None,
        beta=None,
        gamma=None,
        T=None,
        w_dist=None,
        w_angle=None,
        **kwargs,
    ):  # noqa: N803 (the original's key name)
        kwargs.setdefault("name", "distillation")
        super().__init__(**kwargs)
        if loss_type not in LOSS_DEFAULTS:
            raise ValueError(f"Unknown distillation loss {loss_type!r}; choose one of {sorted(LOSS_DEFAULTS)}.")
        given = dict(alpha=alpha, beta=beta, gamma=gamma, T=T, w_dist=w_dist, w_angle=w_angle)
        self.loss_type, self.train_teacher_projections = loss_type, train_teacher_projections
        self.weights_by_name = {**LOSS_DEFAULTS[loss_type], **{k: float(v) for k, v in given.items() if v is not None}}

    def build(self, student_shape, teacher_shape):
        width = student_shape["img_proj"][-1]
        trainable = self.train_teacher_projections
        self.proj_t_img = keras.layers.Dense(width, name="proj_t_img", trainable=trainable)
        self.proj_t_txt = keras.layers.Dense(width, name="proj_t_txt", trainable=trainable)
        self.proj_t_img.build(teacher_shape["img_raw"])
        self.proj_t_txt.build(teacher_shape["txt_raw"])

    def terms(self, student, teacher):
        w = self.weights_by_name
        pairs = [
            (student["img_proj"], self.proj_t_img(teacher["img_raw"])),
            (student["txt_proj"], self.proj_t_txt(teacher["txt_raw"])),
        ]
        if self.loss_type in ("crd", "rkd", "mmd"):
            term = {"crd": crd_term, "rkd": lambda s, t: rkd_term(s, t, w["w_dist"], w["w_angle"]), "mmd": mmd_term}
            return sum(term[self.loss_type](s, t) for s, t in pairs) / 2.0
        total = w["alpha"] * sum(
            kl_distillation(student[name], ops.stop_gradient(teacher[name]), w["T"]) for name in _LOGITS
        )
        total = total + w["beta"] * sum(feature_mse(s, t) for s, t in pairs)
        if self.loss_type == "combined":
            total = total + w["gamma"] * sum(crd_term(s, t) for s, t in pairs) / 2.0
        return total

    def call(self, student, teacher):
        self.add_loss(self.terms(student, teacher))
        return {name: student[name] for name in _LOGITS}

    def compute_output_spec(self, student, teacher):
        return {name: keras.KerasTensor(student[name].shape, student[name].dtype) for name in _LOGITS}

    def get_config(self):
        return {
            **super().get_config(),
            "loss_type": self.loss_type,
            "train_teacher_projections": self.train_teacher_projections,
            **self.weights_by_name,
        }

"""Segmentation losses against hand-computed values, NumPy formulas and core Keras losses."""

import keras
import numpy as np
import pytest

from modeling.losses.segmentation import (
    AttentionSupervisionLoss,
    CombinedMedicalLoss,
    DiceFocalLoss,
    FocalLossOnLogits,
    FocalTverskyLoss,
    ImprovedCombinedLoss,
    SoftDiceLoss,
    TverskyLoss,
    WeightedBCELoss,
    attention_supervision,
    dynamic_attention_weight,
    segmentation_loss,
)
from modeling.metrics.segmentation import SoftDiceScore
from tests.checkers import gradient_of, run_serialization_test
from training.nodule_segmentation.evaluation import pearson

pytestmark = pytest.mark.multibackend

RNG = np.random.default_rng(0)
MASK = (RNG.uniform(size=(3, 8, 8, 1)) > 0.7).astype("float32")
LOGITS = RNG.normal(scale=2.0, size=(3, 8, 8, 1)).astype("float32")
PROB = 1 / (1 + np.exp(-LOGITS))


def value(loss, y_true=MASK, y_pred=LOGITS):
    return float(keras.ops.convert_to_numpy(loss(y_true, y_pred)))


def numpy_bce(y, p):
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_focal_on_logits_is_a_quarter_of_keras_binary_focal_crossentropy():
    expected = np.mean(0.25 * (1 - np.exp(-numpy_bce(MASK, PROB))) ** 2 * numpy_bce(MASK, PROB))
    assert value(FocalLossOnLogits()) == pytest.approx(expected, rel=1e-5)
    keras_focal = keras.losses.BinaryFocalCrossentropy(gamma=2.0, from_logits=True)
    assert value(FocalLossOnLogits()) == pytest.approx(
        0.25 * value(keras_focal, MASK[..., 0], LOGITS[..., 0]), rel=1e-4
    )


def test_soft_dice_by_hand_and_against_keras_dice():
    y = np.zeros((1, 2, 2, 1), "float32")
    y[0, 0, 0] = 1.0
    p = np.full((1, 2, 2, 1), 0.5, "float32")
    # 2 * 0.5 / (2 + 1) = 1/3 (smoothing 1e-6 aside)
    assert value(SoftDiceLoss(from_logits=False), y, p) == pytest.approx(2 / 3, rel=1e-5)
    keras_dice = keras.losses.Dice(axis=(1, 2, 3))
    assert value(SoftDiceLoss(), MASK, LOGITS) == pytest.approx(value(keras_dice, MASK, PROB), abs=1e-5)


def test_attention_supervision_by_hand_with_torchs_log_clamp():
    y = np.array([1.0, 0.0, 1.0, 0.0], "float32").reshape(1, 2, 2, 1)
    a = np.array([0.9, 0.2, 0.0, 0.5], "float32").reshape(1, 2, 2, 1)
    bce = np.array([-np.log(0.9), -np.log(0.8), 100.0, -np.log(0.5)])  # log(0) clamps at -100
    p_t = np.array([0.9, 0.8, 0.0, 0.5])
    expected = bce.mean() + 0.5 * np.mean(0.25 * (1 - p_t) ** 2 * bce)
    assert value(AttentionSupervisionLoss(), y, a) == pytest.approx(expected, rel=1e-5)


def test_attention_supervision_gradient_is_torchs_inside_and_finite_where_attention_saturates():
    """d BCE / dA = (A - G) / (A (1 - A)) inside (0, 1), as torch's; finite where A is exactly 0 or 1."""
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0], "float32").reshape(1, 2, 3, 1)
    a = np.array([0.9, 0.2, 1.0, 0.0, 0.0, 1.0], "float32").reshape(1, 2, 3, 1)
    gradient = gradient_of(lambda x: keras.ops.sum(attention_supervision(y, x, focal_weight=0.0)), a).ravel()
    inside = np.array([(0.9 - 1) / (0.9 * 0.1), 0.2 / (0.2 * 0.8)]) / 6  # the mean over 6 pixels
    np.testing.assert_allclose(gradient[:2], inside, rtol=1e-5)
    # saturated: -G / A and (1 - G) / (1 - A) where the logarithm's argument is 1; 0 where it is 0
    np.testing.assert_allclose(gradient[2:], np.array([-1.0, 1.0, 0.0, 0.0]) / 6, rtol=1e-5)


def test_tversky_family_by_hand_and_against_keras_tversky():
    y = np.array([[1.0, 1.0, 0.0, 0.0]], "float32")
    p = np.array([[1.0, 0.5, 0.5, 0.0]], "float32")
    tp, fp, fn = 1.5, 0.5, 0.5
    index = tp / (tp + 0.3 * fp + 0.7 * fn)
    assert value(TverskyLoss(from_logits=False, smooth=0.0), y, p) == pytest.approx(1 - index, rel=1e-6)
    assert value(FocalTverskyLoss(from_logits=False, smooth=0.0), y, p) == pytest.approx((1 - index) ** 2, rel=1e-6)
    # Keras' alpha weighs the false negatives: our (0.3 FP, 0.7 FN) is its (alpha 0.7, beta 0.3).
    keras_tversky = keras.losses.Tversky(alpha=0.7, beta=0.3)
    assert value(TverskyLoss(smooth=0.0), MASK, LOGITS) == pytest.approx(value(keras_tversky, MASK, PROB), abs=1e-5)


def test_weighted_bce_caps_its_pos_weight():
    y = np.zeros((1, 2, 2, 1), "float32")
    y[0, 0, 0] = 1.0
    z = np.zeros_like(y)
    # pos_weight = min(3 / 1 * 100, 1000) = 300; every element costs log 2, the positive 300 times
    assert value(WeightedBCELoss(), y, z) == pytest.approx((300 + 3) * np.log(2) / 4, rel=1e-5)
    y_sparse = np.zeros((1, 4, 4, 1), "float32")
    y_sparse[0, 0, 0] = 1.0  # 15 / 1 * 100 = 1500 -> capped at 1000
    assert value(WeightedBCELoss(), y_sparse, np.zeros_like(y_sparse)) == pytest.approx(
        (1000 + 15) * np.log(2) / 16, rel=1e-5
    )


def test_dice_focal_and_combined_medical_are_their_weighted_parts():
    dice_focal = 0.4 * value(SoftDiceLoss()) + 0.6 * value(FocalLossOnLogits())
    assert value(DiceFocalLoss()) == pytest.approx(dice_focal, rel=1e-5)
    combined = 0.4 * value(TverskyLoss()) + 0.3 * value(FocalTverskyLoss()) + 0.3 * value(WeightedBCELoss())
    assert value(CombinedMedicalLoss()) == pytest.approx(combined, rel=1e-5)


def test_improved_combined_loss_is_the_weighted_sum_of_its_terms():
    attention = RNG.uniform(0.01, 0.99, size=MASK.shape).astype("float32")
    outputs = {"segmentation": LOGITS, "attention": attention, "nodule_features": np.zeros((3, 1, 1, 64))}
    loss = ImprovedCombinedLoss(total_epochs=10)
    focal, dice = value(FocalLossOnLogits()), value(SoftDiceLoss())
    attention_term = value(AttentionSupervisionLoss(), MASK, attention)
    alignment = np.mean((attention - PROB) ** 2)
    expected = 0.7 * focal + 0.3 * dice + 0.5 * attention_term + 0.1 * alignment
    assert value(loss, MASK, outputs) == pytest.approx(expected, rel=1e-5)
    loss.current_attention_weight.assign(loss.weight_at(5))  # the floor from E / 2 on: 0.5 * 0.1
    assert value(loss, MASK, outputs) == pytest.approx(expected - 0.45 * attention_term, rel=1e-5)
    unsupervised = ImprovedCombinedLoss(supervise_attention=False, use_focal_loss=False)
    bce = np.mean(numpy_bce(MASK, PROB))
    assert value(unsupervised, MASK, outputs) == pytest.approx(0.7 * bce + 0.3 * dice + 0.1 * alignment, rel=1e-5)


def test_dynamic_weight_schedule():
    assert [dynamic_attention_weight(e, 150) for e in (0, 15, 75)] == pytest.approx([0.5, 0.4, 0.05])


def test_soft_dice_score_pools_each_batch():
    metric = SoftDiceScore()
    metric.update_state(MASK, LOGITS)
    expected = (2 * np.sum(PROB * MASK) + 1e-7) / (PROB.sum() + MASK.sum() + 1e-7)
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "name", ["improved", "tversky", "focal_tversky", "dice_focal", "weighted_bce", "combined_medical"]
)
def test_losses_serialize(name):
    revived = run_serialization_test(segmentation_loss(name))
    assert type(revived) is type(segmentation_loss(name))


def gradient_wrt_attention(loss, attention):
    """d loss(MASK, {segmentation: LOGITS, attention}) / d attention, on the backend."""
    return gradient_of(
        lambda a: loss(MASK, {"segmentation": keras.ops.convert_to_tensor(LOGITS), "attention": a}), attention
    )


def test_correlation_alignment_is_one_minus_the_analysers_pearson():
    attention = RNG.uniform(0.01, 0.99, size=MASK.shape).astype("float32")
    outputs = {"segmentation": LOGITS, "attention": attention}
    terms = ImprovedCombinedLoss(alignment="correlation").terms(MASK, outputs)
    expected = [1.0 - pearson(a, p) for a, p in zip(attention, PROB, strict=True)]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(terms["alignment"]), expected, rtol=1e-5)
    mse = ImprovedCombinedLoss().terms(MASK, outputs)["alignment"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(mse), ((attention - PROB) ** 2).mean(axis=(1, 2, 3)), rtol=1e-5
    )
    with pytest.raises(ValueError, match="alignment"):
        ImprovedCombinedLoss(alignment="l1")


def test_a_supervised_attention_can_be_left_out_of_the_alignment_gradient():
    attention = RNG.uniform(0.01, 0.99, size=MASK.shape).astype("float32")
    outputs = {"segmentation": LOGITS, "attention": attention}
    aligned, fixed = ImprovedCombinedLoss(), ImprovedCombinedLoss(align_supervised_attention=False)
    assert value(fixed, MASK, outputs) == pytest.approx(value(aligned, MASK, outputs), rel=1e-6)  # same value
    # the map's gradient is then its supervision's alone: that of the loss without the alignment term
    without_alignment = gradient_wrt_attention(ImprovedCombinedLoss(alignment_weight=0.0), attention)
    np.testing.assert_allclose(gradient_wrt_attention(fixed, attention), without_alignment, rtol=1e-5, atol=1e-9)
    # the original's: plus 0.1 * d mean((A - P)^2) / dA = 0.2 (A - P) / (H W), per sample (mean over the batch)
    extra = 0.1 * 2 * (attention - PROB) / np.prod(MASK.shape[1:]) / MASK.shape[0]
    np.testing.assert_allclose(
        gradient_wrt_attention(aligned, attention), without_alignment + extra, rtol=1e-4, atol=1e-8
    )
    unsupervised = dict(supervise_attention=False, align_supervised_attention=False)
    assert np.abs(gradient_wrt_attention(ImprovedCombinedLoss(**unsupervised), attention)).max() > 0

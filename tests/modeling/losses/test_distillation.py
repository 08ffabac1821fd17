"""Distillation terms against values computed by hand (closed forms written out below)."""

import math

import keras
import numpy as np
import pytest

from modeling.losses.distillation import (
    MMD_BANDWIDTHS,
    DistillationTerms,
    crd_term,
    feature_mse,
    kl_distillation,
    mmd_term,
    rkd_term,
)

pytestmark = pytest.mark.multibackend


def value(x):
    return float(keras.ops.convert_to_numpy(x))


def test_kl_is_pytorch_batchmean_times_t_squared():
    # teacher logits [ln 3, 0] at T = 2: p_t = [sqrt3, 1] / (sqrt3 + 1); the student is uniform
    p = np.array([math.sqrt(3), 1.0]) / (math.sqrt(3) + 1)
    expected = 4 * sum(p * np.log(p / 0.5))
    student = np.zeros((2, 2))
    teacher = np.array([[math.log(3), 0.0], [math.log(3), 0.0]])
    assert value(kl_distillation(student, teacher, 2.0)) == pytest.approx(expected, rel=1e-5)
    assert value(kl_distillation(student, teacher, 1.0)) == pytest.approx(
        0.75 * math.log(1.5) + 0.25 * math.log(0.5), rel=1e-5
    )


def test_keras_kl_divergence_instance_gives_the_same_value_without_t_squared():
    teacher, student = np.array([[2.0, 0.5, -1.0]]), np.array([[0.1, 0.3, 0.2]])
    softmax = lambda x: keras.ops.softmax(keras.ops.convert_to_tensor(x / 2.0, "float32"))  # noqa: E731
    keras_kl = value(keras.losses.KLDivergence()(softmax(teacher), softmax(student)))
    assert value(kl_distillation(student, teacher, 2.0)) == pytest.approx(4 * keras_kl, rel=1e-4)


def test_feature_mse():
    assert value(feature_mse(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))) == pytest.approx(2.5)


def test_crd_with_aligned_pairs():
    # unit features with cosine 0.6: logits [[10, 6], [6, 10]], CE of each row = log(1 + e^-4)
    features = np.array([[1.0, 0.0], [0.6, 0.8]])
    assert value(crd_term(features, 3 * features)) == pytest.approx(math.log(1 + math.exp(-4)), rel=1e-5)


def test_rkd_distance_and_angle_terms():
    student, teacher = np.eye(2), np.array([[1.0, 0.0], [2.0, 0.0]])
    # teacher distances ~1e-4 everywhere; student off-diagonal sqrt(2): smooth-L1 = sqrt(2) - 0.5, mean over 4
    distance = 2 * (math.sqrt(2 + 1e-8) - 1e-4 - 0.5) / 4
    angle = 2 * 0.5 / 4  # cosine matrices I vs all ones: off-diagonal difference 1 -> 0.5
    assert value(rkd_term(student, teacher)) == pytest.approx(25 * distance + 50 * angle, rel=1e-4)
    assert value(rkd_term(student, student)) == pytest.approx(0.0, abs=1e-5)


def test_mmd_of_two_points():
    kernel = np.mean([math.exp(-1 / (2 * bandwidth**2)) for bandwidth in MMD_BANDWIDTHS])
    assert value(mmd_term(np.array([[0.0]]), np.array([[1.0]]))) == pytest.approx(2 - 2 * kernel, rel=1e-5)


def outputs(rng):
    student = {name: rng.normal(size=(4, 3)).astype("float32") for name in ("logits_modality", "logits_location")}
    teacher = {name: rng.normal(size=(4, 3)).astype("float32") for name in ("logits_modality", "logits_location")}
    student.update(
        img_proj=rng.normal(size=(4, 5)).astype("float32"), txt_proj=rng.normal(size=(4, 5)).astype("float32")
    )
    teacher.update(img_raw=rng.normal(size=(4, 7)).astype("float32"), txt_raw=rng.normal(size=(4, 6)).astype("float32"))
    return student, teacher


@pytest.mark.parametrize("loss_type", ["vanilla", "combined", "crd", "rkd", "mmd"])
def test_layer_adds_the_weighted_sum_of_its_terms(loss_type):
    student, teacher = outputs(np.random.default_rng(0))
    terms = DistillationTerms(loss_type)
    logits = terms(student, teacher)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(logits["logits_modality"]), student["logits_modality"])
    t_img = teacher["img_raw"] @ keras.ops.convert_to_numpy(terms.proj_t_img.kernel) + keras.ops.convert_to_numpy(
        terms.proj_t_img.bias
    )
    t_txt = teacher["txt_raw"] @ keras.ops.convert_to_numpy(terms.proj_t_txt.kernel) + keras.ops.convert_to_numpy(
        terms.proj_t_txt.bias
    )
    pairs = [(student["img_proj"], t_img), (student["txt_proj"], t_txt)]
    if loss_type in ("vanilla", "combined"):
        temperature = 2.0 if loss_type == "vanilla" else 4.0
        kl = sum(
            value(kl_distillation(student[n], teacher[n], temperature)) for n in ("logits_modality", "logits_location")
        )
        expected = kl + 100 * sum(np.mean((s - t) ** 2) for s, t in pairs)
        if loss_type == "combined":
            expected += 10 * sum(value(crd_term(s, t)) for s, t in pairs) / 2
    else:
        term = {"crd": crd_term, "rkd": rkd_term, "mmd": mmd_term}[loss_type]
        expected = sum(value(term(s, t)) for s, t in pairs) / 2
    assert value(terms.losses[0]) == pytest.approx(expected, rel=1e-4)


def test_teacher_projections_are_frozen_when_faithful_and_unknown_types_refused():
    student, teacher = outputs(np.random.default_rng(1))
    faithful = DistillationTerms("vanilla", train_teacher_projections=False)
    faithful(student, teacher)
    assert not faithful.trainable_weights and len(faithful.non_trainable_weights) == 4
    with pytest.raises(ValueError, match="Unknown distillation loss"):
        DistillationTerms("kd")

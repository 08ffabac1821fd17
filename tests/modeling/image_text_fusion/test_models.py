"""Teacher and student: the original's projection + fusion + heads path (fixtures B_teacher_heads,
B_student_heads), `.keras` round trip of the dict outputs, one distillation step."""

import json
import pathlib

import keras
import numpy as np
import pytest

from modeling.image_text_fusion import fusion_features_classifier
from modeling.image_text_fusion.convert import load_head_state, read_state_dict
from modeling.image_text_fusion.distillation import distillation_model
from tests.modeling.image_text_fusion import tiny

pytestmark = pytest.mark.multibackend
FIXTURES = pathlib.Path(__file__).parents[2] / "fixtures" / "image_text_fusion"


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_original_head_path_is_reproduced(role):
    path = FIXTURES / f"B_{role}_heads.npz"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    with np.load(path) as arrays:
        data = {key: arrays[key] for key in arrays.files}
    classes = (data["output__logits_modality"].shape[1], data["output__logits_location"].shape[1])
    model = fusion_features_classifier(
        data["input__img_raw"].shape[1], data["input__txt_raw"].shape[1], classes, fusion_dim=32, fusion_heads=4
    )
    load_head_state(model, read_state_dict(path))
    got = model.predict([data["input__img_raw"], data["input__txt_raw"]], verbose=0)
    tolerance = sidecar["tolerance"]
    for name in ("logits_modality", "logits_location", "img_proj", "txt_proj"):
        expected = data[f"output__{name}"]
        atol = tolerance["atol_times_max_abs_expected"] * max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(got[name], expected, rtol=tolerance["rtol"], atol=atol, err_msg=name)
    np.testing.assert_array_equal(got["img_raw"], data["input__img_raw"])


def test_student_round_trips_with_all_six_outputs(tmp_path):
    model = tiny.build("image_text_fusion/student")
    inputs, _ = tiny.batch(model, size=3)
    expected = model.predict(inputs, verbose=0)
    model.save(tmp_path / "student.keras")
    got = keras.saving.load_model(tmp_path / "student.keras", safe_mode=True).predict(inputs, verbose=0)
    assert sorted(got) == ["img_proj", "img_raw", "logits_location", "logits_modality", "txt_proj", "txt_raw"]
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])


def test_distillation_step_trains_student_and_projections_not_teacher():
    student = tiny.build("image_text_fusion/features_cross_attention")
    teacher = fusion_features_classifier(12, 10, (3, 2), fusion_dim=16, fusion_heads=2, name="teacher")
    model = distillation_model(student, teacher, "combined")
    teacher_before = [keras.ops.convert_to_numpy(w).copy() for w in teacher.weights]
    student_before = [keras.ops.convert_to_numpy(w).copy() for w in student.weights]
    rng = np.random.default_rng(0)
    x = {"img_raw_features": rng.normal(size=(6, 12)), "txt_raw_features": rng.normal(size=(6, 10))}
    x.update({"teacher_" + key: value for key, value in x.items()})
    y = {"logits_modality": rng.integers(0, 3, 6), "logits_location": rng.integers(0, 2, 6)}
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    for before, weight in zip(teacher_before, teacher.weights, strict=True):
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(weight))
    assert all(
        not np.array_equal(b, keras.ops.convert_to_numpy(w))
        for b, w in zip(student_before, student.weights, strict=True)
    )
    assert {w.path.split("/")[1] for w in model.get_layer("distillation").trainable_weights} == {
        "proj_t_img",
        "proj_t_txt",
    }

"""Reading the volume-fusion data: NIfTI volumes, workbooks and CSVs, bad input, the synthetic hips."""

import json

import nibabel
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from training.classification_metrics import SINGLE_CLASS_NOTE, binary_metrics, operating_thresholds
from training.data.augmentation import Augmentation
from training.data.tables import DataError, RowProblem
from training.data.volumes import load_volume, read_volume, resize_volume
from training.volume_fusion import phantom
from training.volume_fusion.tables import EVAL_SHEET, TRAIN_SHEET, Columns, load_table


@pytest.fixture(scope="module")
def hips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hips") / "data"
    phantom.make_dataset(folder, n_train=6, n_val=4, n_test=4, size=12)
    return folder


def save(path, array):
    nibabel.save(nibabel.Nifti1Image(np.asarray(array, "float32"), np.eye(4)), path)
    return path


def test_phantom_is_deterministic_and_in_the_original_layout(hips, tmp_path):
    manifest = json.loads((hips / phantom.MANIFEST).read_text())
    again = phantom.make_dataset(tmp_path / "again", n_train=6, n_val=4, n_test=4, size=12)
    assert again["oracle_auc"] == manifest["oracle_auc"]
    first = pd.read_excel(hips / "train.xlsx", sheet_name=TRAIN_SHEET)
    assert first.equals(pd.read_excel(tmp_path / "again" / "train.xlsx", sheet_name=TRAIN_SHEET))
    assert list(first.columns) == ["Study number", "Side", "Age", "Gender", "Treatment", "Luxation", "THP"]
    assert set(first["Gender"]) <= {"m", "f"} and set(first["THP"]) <= {0, 1}
    name = f"img{first['Study number'][0]}_annotation-{first['Side'][0]}.nii.gz"
    a, b = read_volume(hips / "images" / name), read_volume(tmp_path / "again" / "images" / name)
    assert a.shape == (12, 12, 12, 1) and np.array_equal(a, b)
    assert pd.ExcelFile(hips / "val.xlsx").sheet_names == [EVAL_SHEET]


def test_phantom_outcome_law_makes_the_image_add_information():
    cases = [phantom.sample_case(0, "train", i) for i in range(3000)]
    y = np.array([c[3] for c in cases])
    assert 0.15 < y.mean() < 0.25  # a rare positive outcome, about 20 %
    from sklearn.metrics import roc_auc_score

    meta = roc_auc_score(y, [phantom._metadata_logit(c[0]) for c in cases])
    both = roc_auc_score(y, [c[2] for c in cases])
    assert both > meta + 0.1  # the severity seen only in the image adds information


def test_workbook_rows_gender_fix_and_volume_paths(hips):
    table, report, unused = load_table(hips / "train.xlsx", hips / "images", TRAIN_SHEET)
    raw = pd.read_excel(hips / "train.xlsx", sheet_name=TRAIN_SHEET)
    assert report.rows_kept == 6 and len(unused) == 8  # the val and test volumes share the folder
    np.testing.assert_array_equal(table["Gender"], (raw["Gender"] == "f").astype(float))  # m=0, f=1
    np.testing.assert_array_equal(table["target"], raw["THP"])
    assert all(path.endswith(".nii.gz") for path in table["path"])


def test_csv_with_mapped_columns_and_a_path_column(hips, tmp_path):
    raw = pd.read_excel(hips / "test.xlsx", sheet_name=EVAL_SHEET)
    csv = raw.rename(columns={"Study number": "id", "THP": "outcome", "Gender": "sex", "Age": "age"})
    csv["file"] = [f"img{s}_annotation-{side}.nii.gz" for s, side in zip(raw["Study number"], raw["Side"], strict=True)]
    csv.to_csv(tmp_path / "cases.csv", index=False)
    columns = Columns(study="id", target="outcome", metadata=("age", "sex"), gender="sex", path="file")
    table, _, _ = load_table(tmp_path / "cases.csv", hips / "images", columns=columns)
    assert list(table["sex"]) == list((raw["Gender"] == "f").astype(float)) and len(table) == 4


def write_sheet(path, rows, sheet=TRAIN_SHEET):
    pd.DataFrame(rows).to_excel(path, sheet_name=sheet, index=False)
    return path


AXIS_SETS = [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
ROW = {"Study number": 1, "Side": "l", "Age": 3, "Gender": "f", "Treatment": 0, "Luxation": 2, "THP": 1}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"Age": "three"}, "line 2: column 'Age' holds 'three', not a number"),
        ({"THP": 2}, "line 2: target column 'THP' holds '2'; expected 0 or 1"),
        ({"Gender": "x"}, "column 'Gender' holds 'x'; expected m/f"),
        ({"Study number": 9}, "no volume for study '9'"),
        ({"Side": "c"}, "expected l or r"),
    ],
)
def test_bad_rows_name_file_sheet_and_line(tmp_path, change, message):
    (tmp_path / "images").mkdir()
    save(tmp_path / "images" / "img1_annotation-l.nii.gz", np.zeros((4, 4, 4)))
    path = write_sheet(tmp_path / "labels.xlsx", [ROW | change])
    with pytest.raises(
        DataError, match=f"labels.xlsx, sheet '2year model', {message}" if "line" in message else message
    ):
        load_table(path, tmp_path / "images", TRAIN_SHEET)
    good = write_sheet(tmp_path / "two.xlsx", [ROW, ROW | change])
    table, report, _ = load_table(good, tmp_path / "images", TRAIN_SHEET, on_error="skip")
    assert len(table) == 1 and report.rows_kept == 1 and sum(len(v) for v in report.skipped.values()) == 1


def test_missing_sheet_column_and_file(tmp_path):
    path = write_sheet(tmp_path / "labels.xlsx", [ROW])
    with pytest.raises(DataError, match=r"has no sheet '2 year FU model'; its sheets are \['2year model'\]"):
        load_table(path, tmp_path, EVAL_SHEET)
    with pytest.raises(DataError, match=r"lacks the column\(s\) \['Outcome'\]"):
        load_table(path, tmp_path, TRAIN_SHEET, Columns(target="Outcome"))
    with pytest.raises(DataError, match="Workbook not found"):
        load_table(tmp_path / "nope.xlsx", tmp_path)


def test_volumes_channels_resize_and_bad_files(tmp_path):
    volume = np.random.default_rng(0).uniform(3, 9, (6, 8, 10))
    assert read_volume(save(tmp_path / "c_last.nii", volume[..., None])).shape == (6, 8, 10, 1)
    assert read_volume(save(tmp_path / "c_first.nii.gz", volume[None])).shape == (6, 8, 10, 1)
    loaded = load_volume(tmp_path / "c_last.nii", 4)
    assert loaded.shape == (4, 4, 4, 1) and loaded.min() == 0.0 and loaded.max() == 1.0
    assert resize_volume(volume[..., None], (6, 8, 10)).shape == (6, 8, 10, 1)
    with pytest.raises(RowProblem, match="has shape \\(6, 8, 10, 2\\); expected a 3D volume"):
        read_volume(save(tmp_path / "two.nii", np.stack([volume, volume], -1)))
    with pytest.raises(RowProblem, match="has shape \\(6, 8\\)"):
        read_volume(save(tmp_path / "flat.nii", volume[:, :, 0]))
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(RowProblem, match="unreadable NIfTI file .*broken.nii.gz"):
        read_volume(tmp_path / "broken.nii.gz")
    with pytest.raises(RowProblem, match="volume not found"):
        read_volume(tmp_path / "missing.nii")


def test_flips_on_all_axes_and_rotations_about_each_axis():
    volume = tf.reshape(tf.range(4 * 5 * 6, dtype=tf.float32), (1, 4, 5, 6, 1))
    flip_all = Augmentation(
        flip=True, flip_all_axes=True, rotation_degrees=0, shift=0, zoom=0, brightness=0, contrast=0
    )
    original, seen = volume.numpy()[0, ..., 0], set()
    for seed in range(12):
        out = flip_all(volume, tf.constant([seed, 0])).numpy()[0, ..., 0]
        flipped = [axes for axes in AXIS_SETS if np.array_equal(out, np.flip(original, axes))]
        assert len(flipped) == 1  # exactly a mirror along some axes, nothing else
        seen.add(flipped[0])
    assert len(seen) > 3  # each axis is mirrored independently
    rotate = Augmentation(flip=False, rotation_degrees=90, rotation_all_axes=True, shift=0, zoom=0, brightness=0,
                          contrast=0)  # fmt: skip
    out = rotate(tf.ones((2, 6, 6, 6, 1)), tf.constant([1, 2]))
    assert out.shape == (2, 6, 6, 6, 1)
    np.testing.assert_allclose(out.numpy(), 1.0, atol=1e-5)  # edges filled with the nearest value


def test_single_class_split_reports_undefined_auc_and_thresholds():
    result = binary_metrics([0, 0, 0], [0.2, 0.6, 0.1])
    assert result["roc_auc"] is None and result["note"] == SINGLE_CLASS_NOTE
    assert result["specificity"] == 2 / 3 and result["precision"] == 0.0 and result["recall"] is None
    assert operating_thresholds([1, 1], [0.3, 0.9]) == {"youden": None, "f1": None}


def test_metrics_against_hand_computed_numbers():
    y, p = [0, 0, 0, 1, 1, 1, 0, 1], [0.1, 0.4, 0.6, 0.7, 0.3, 0.9, 0.2, 0.8]
    result = binary_metrics(y, p)
    # predictions at 0.5: [0,0,1,1,0,1,0,1] -> TP 3, FP 1, FN 1, TN 3
    assert result["confusion_matrix"] == [[3, 1], [1, 3]]
    assert (result["accuracy"], result["precision"], result["recall"], result["specificity"]) == (
        0.75,
        0.75,
        0.75,
        0.75,
    )
    assert result["f1"] == 0.75 and result["roc_auc"] == 14 / 16  # 14 of the 16 positive-negative pairs in order
    thresholds = operating_thresholds(y, p)
    assert thresholds == {"youden": 0.7, "f1": 0.7}  # TP 3, FP 0: J = 0.75, F1 = 6/7

"""Reading bone-age CSVs of every layout, and clear errors naming the file and line."""

import argparse

import pandas as pd
import pytest
from PIL import Image

from training.boneage import phantom
from training.boneage.data_sources import load_splits, use_default_phantom
from training.boneage.tables import detect_layout, parse_sex, read_table
from training.data.tables import DataError


@pytest.fixture
def folder(tmp_path):
    for name in ("1", "2", "3"):
        Image.new("L", (16, 16), color=100).save(tmp_path / f"{name}.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    Image.new("L", (16, 16)).save(tmp_path / "scan.tif")
    return tmp_path


def write(folder, text, name="table.csv"):
    path = folder / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, layout",
    [
        ("id,boneage,male\n1,30,True\n2,120.5,False\n", "rsna_train"),
        ("Image ID,male,Bone Age (months)\n1,True,30\n2,False,120.5\n", "rsna_val"),
        ("Case ID,Sex,Ground truth bone age (months)\n1,M,30\n2,F,120.5\n", "rsna_test"),
        ("filename,boneage,gender,id\n1.png,30,male,A1\n2.png,120.5,female,B2\n", "original"),
    ],
)
def test_every_layout_gives_the_same_schema(folder, text, layout):
    path = write(folder, text)
    assert detect_layout(pd.read_csv(path).columns) == layout
    table, report = read_table(path, folder)
    assert list(table.columns) == ["id", "path", "boneage", "male"]
    assert table["boneage"].tolist() == [30.0, 120.5]
    assert table["male"].tolist() == [1.0, 0.0]
    assert table["path"].tolist() == [str(folder / "1.png"), str(folder / "2.png")]
    assert (report.rows_read, report.rows_kept, report.skipped) == (2, 2, {})


def test_custom_columns(folder):
    path = write(folder, "patient,age_m,sex,file\np1,50,F,3.png\n")
    table, _ = read_table(
        path, folder, layout="custom", id_column="patient", age_column="age_m", sex_column="sex", filename_column="file"
    )
    assert table.iloc[0].tolist() == ["p1", str(folder / "3.png"), 50.0, 0.0]


@pytest.mark.parametrize(
    "row, message",
    [
        ("1,,True", "line 3: empty bone age"),
        ("1,-4,True", "line 3: bone age -4.0 months is outside"),
        ("1,abc,True", "line 3: bone age 'abc' is not a number"),
        ("1,30,X", "line 3: unknown sex code 'X'"),
        ("9,30,True", "line 3: image not found: .*9.png"),
        ("broken,30,True", "line 3: unreadable image .*broken.png"),
    ],
)
def test_bad_rows_name_the_file_and_line(folder, row, message):
    path = write(folder, f"id,boneage,male\n2,100,False\n{row}\n")
    with pytest.raises(DataError, match=f"table.csv, {message}"):
        read_table(path, folder)


def test_formats_the_pipeline_cannot_decode_are_rejected_up_front(folder):
    path = write(folder, "id,boneage,male\nscan,30,True\n")
    with pytest.raises(DataError, match="line 2: image .*scan.tif is TIFF; the pipeline reads PNG, JPEG"):
        read_table(path, folder, image_extension=".tif")


def test_skipping_counts_every_problem(folder):
    path = write(folder, "id,boneage,male\n1,30,True\n2,,True\n3,40,Q\n9,50,F\nbroken,60,M\n")
    table, report = read_table(path, folder, on_error="skip")
    assert table["id"].tolist() == ["1"]
    assert report.skipped == {"missing age": [3], "unknown sex": [4], "missing image": [5], "unreadable image": [6]}
    assert report.as_dict()["skipped"] == {
        "missing age": 1,
        "unknown sex": 1,
        "missing image": 1,
        "unreadable image": 1,
    }


def test_missing_columns_and_unknown_layout(folder):
    with pytest.raises(DataError, match=r"missing column\(s\) \['male'\]"):
        read_table(write(folder, "id,boneage\n1,3\n"), folder, layout="rsna_train")
    with pytest.raises(DataError, match="unknown CSV layout"):
        read_table(write(folder, "a,b\n1,2\n"), folder)
    with pytest.raises(DataError, match="CSV file not found"):
        read_table(folder / "nope.csv", folder)
    with pytest.raises(DataError, match="no usable rows"):
        read_table(write(folder, "id,boneage,male\n9,3,M\n"), folder, on_error="skip")


def test_unlabelled_sets_and_default_sex(folder):
    path = write(folder, "Case ID\n1\n2\n")
    table, _ = read_table(path, folder, id_column="Case ID", require_age=False, default_sex="F")
    assert table["male"].tolist() == [0.0, 0.0]
    assert table["boneage"].isna().all()


def test_parse_sex_codes():
    assert [parse_sex(code) for code in ("M", "male", "True", "1", True, "F", "Female", "false", "0", 0)] == [
        1.0
    ] * 5 + [0.0] * 5
    with pytest.raises(DataError, match="unknown sex code 'unknown'"):
        parse_sex("unknown")


def _split_args(folder, **csvs):
    names = ("train", "val", "test")
    return argparse.Namespace(
        data_dir=None,
        **{f"{name}_csv": str(csvs[name]) for name in names},
        **{f"{name}_images": str(folder) for name in names},
        layout="auto",
        id_column=None,
        age_column=None,
        sex_column=None,
        filename_column=None,
        image_extension=".png",
        on_bad_rows="raise",
        allow_shared_images=False,
    )


def test_repeated_ids_are_counted_and_images_shared_by_splits_refused(folder, capsys):
    train = write(folder, "id,boneage,male\n1,30,True\n1,30,True\n1,30,True\n2,40,False\n", "train.csv")
    val = write(folder, "id,boneage,male\n3,50,True\n", "val.csv")
    test = write(folder, "id,boneage,male\n2,40,False\n", "test.csv")
    args = _split_args(folder, train=train, val=val, test=test)
    with pytest.raises(DataError, match=r"1 images are listed in both the train split \(.*train.csv\) and the test"):
        load_splits(args)
    assert "train.csv: 2 rows repeat an image id already in this split (ids 1)" in capsys.readouterr().out
    args.allow_shared_images = True
    splits = load_splits(args)
    assert list(splits["train"].table["id"]) == ["1", "1", "1", "2"] and len(splits["test"].table) == 1


def test_the_cpu_preset_on_other_data_warns(folder, capsys):
    settings = dict(preset="cpu", backbone="mobilenet_v2", weights=None, img_size=96, train_csv="t.csv")
    use_default_phantom(argparse.Namespace(data_dir=str(folder), **settings))
    assert "Warning: --preset cpu trains mobilenet_v2 from random weights at 96 px" in capsys.readouterr().out
    (folder / phantom.MANIFEST).write_text("{}")  # a phantom folder, or real settings: no warning
    use_default_phantom(argparse.Namespace(data_dir=str(folder), **settings))
    use_default_phantom(argparse.Namespace(data_dir=None, **{**settings, "weights": "imagenet"}))
    assert capsys.readouterr().out == ""

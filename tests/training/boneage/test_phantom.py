"""Tests of the synthetic bone-age radiograph generator (training.boneage.phantom)."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict

from training.boneage import phantom
from training.boneage.make_phantom import main

SMALL = dict(n_train=12, n_val=6, n_test=6, img_size=64)
SPLIT_DIRS = {"train": "boneage-training-dataset", "val": "Bone Age Validation Set", "test": "Bone Age Test Set"}


def _tree(root):
    """Relative path -> bytes of every file under root."""
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root)] = f.read()
    return files


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom") / "data"
    manifest = phantom.make_dataset(out, seed=3, **SMALL)
    return out, manifest


def _clean(age, male, offset=0.0, size=128):
    return phantom.render_hand(age, male, offset, None, size, nuisance=False)


def _bone_in_mask(age, male, offset=0.0):
    """Maturity measure: share of the age-informative mask covered by bone."""
    image, mask = _clean(age, male, offset)
    inside = mask > 0
    return float(((image > 110) & inside).sum() / inside.sum())


def _radius_plate_depth(age, male):
    """Depth (grey levels) of the darkest gap between bone along the radius.

    In the upright canonical render the radius is the widest bright run on
    the bottom row. Along its axis, inside the lowest mask site (distal
    radius: metaphysis, growth plate, epiphysis), an open growth plate is a
    dark band with bone on both sides.
    """
    image, mask = _clean(age, male, size=256)
    bottom = image[-1] > 0.8 * image[-1].max()
    edges = np.flatnonzero(np.diff(np.r_[0, bottom.astype(int), 0]))
    starts, ends = edges[::2], edges[1::2]
    widest = np.argmax(ends - starts)
    column = (starts[widest] + ends[widest]) // 2
    profile = image[::-1, column - 1 : column + 2].mean(axis=1)
    site = np.flatnonzero(mask[::-1, column] > 0)
    run = site[: np.argmax(np.diff(np.r_[site, site[-1] + 2]) > 1) + 1]
    p = profile[run]
    return max(min(p[:i].max(), p[i + 1 :].max()) - p[i] for i in range(1, len(p) - 1))


def test_same_arguments_give_identical_bytes_and_seed_matters(tmp_path, dataset):
    out, _ = dataset
    again = tmp_path / "again"
    phantom.make_dataset(again, seed=3, **SMALL)
    first, second = _tree(out), _tree(again)
    assert len(first) == 2 * 24 + 5  # images + masks, 3 split CSVs, truth CSV, manifest
    assert first == second

    other = tmp_path / "other"
    phantom.make_dataset(other, seed=4, **SMALL)
    third = _tree(other)
    assert third.keys() == first.keys()
    changed = [k for k in first if k.endswith(".png") and first[k] != third[k]]
    assert len(changed) == 48


def test_parallel_rendering_matches_serial(tmp_path):
    sizes = dict(n_train=50, n_val=10, n_test=10, img_size=64, seed=9)
    phantom.make_dataset(tmp_path / "serial", workers=1, **sizes)
    phantom.make_dataset(tmp_path / "parallel", workers=2, **sizes)
    assert _tree(tmp_path / "serial") == _tree(tmp_path / "parallel")


def test_split_csvs_follow_the_rsna_layout(dataset):
    out, _ = dataset
    train = pd.read_csv(out / "boneage-training-dataset.csv")
    val = pd.read_csv(out / "Bone Age Validation Set" / "Validation Dataset.csv")
    test = pd.read_csv(out / "Bone Age Test Set" / "Bone age ground truth.csv")
    assert list(train.columns) == ["id", "boneage", "male"]
    assert list(val.columns) == ["Image ID", "male", "Bone Age (months)"]
    assert list(test.columns) == ["Case ID", "Sex", "Ground truth bone age (months)"]
    assert train["id"].dtype == np.int64 and train["male"].dtype == bool
    assert val["Image ID"].dtype == np.int64 and val["male"].dtype == bool
    assert test["Case ID"].dtype == np.int64 and set(test["Sex"]) <= {"M", "F"}
    ids = np.r_[train["id"], val["Image ID"], test["Case ID"]]
    np.testing.assert_array_equal(ids, np.arange(1, 25))
    ages = np.r_[train["boneage"], val["Bone Age (months)"], test["Ground truth bone age (months)"]]
    assert ages.dtype == np.float64
    assert ages.min() >= 0 and ages.max() <= phantom.MAX_AGE_MONTHS
    np.testing.assert_allclose(ages * 10, np.round(ages * 10), atol=1e-6)


def test_images_and_masks_are_8bit_square_and_binary(dataset):
    out, _ = dataset
    truth = pd.read_csv(out / "phantom_truth.csv")
    for image_id, split in zip(truth["id"], truth["split"], strict=False):
        image = Image.open(out / SPLIT_DIRS[split] / f"{image_id}.png")
        mask = Image.open(out / "masks" / f"{image_id}.png")
        assert image.mode == "L" and image.size == (64, 64)
        assert mask.mode == "L" and mask.size == (64, 64)
        values = np.unique(np.asarray(mask))
        assert set(values) == {0, 255}
        assert 0.005 < (np.asarray(mask) > 0).mean() < 0.2


def test_manifest_records_arguments_counts_and_floor(dataset):
    out, manifest = dataset
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["generator"] == "training.boneage.phantom" and manifest["version"]
    assert manifest["arguments"] == {"n_train": 12, "n_val": 6, "n_test": 6, "img_size": 64, "seed": 3}
    splits = manifest["splits"]
    assert [splits[s]["count"] for s in ("train", "val", "test")] == [12, 6, 6]
    assert splits["val"]["csv"] == "Bone Age Validation Set/Validation Dataset.csv"
    assert (splits["train"]["first_id"], splits["test"]["last_id"]) == (1, 24)
    for split in splits.values():
        low, high = split["age_range_months"]
        assert 1.0 <= low <= high <= 228.0
        assert split["error_floor_mae_months"] >= 0
    weighted = sum(s["count"] * s["error_floor_mae_months"] for s in splits.values()) / 24
    assert manifest["error_floor_mae_months"] == pytest.approx(weighted, abs=1e-3)
    assert manifest["error_floor_mae_months"] > 0
    assert sorted(os.listdir(out.parent)) == ["data"]  # no temporary leftovers


def _reference_posterior_median(maturity, male):
    """Independent posterior median of the label (scipy, continuous prior)."""
    rate = np.where(male, 1.0, phantom.FEMALE_MATURITY_RATE)
    sd = phantom.MATURITY_OFFSET_SD_MONTHS
    low, high = phantom.MIN_AGE_MONTHS, phantom.MAX_AGE_MONTHS
    centre = maturity / rate
    median = stats.truncnorm.median((low - centre) / sd, (high - centre) / sd, loc=centre, scale=sd)
    grid = np.linspace(low, high, 20001)
    for i in np.flatnonzero((maturity <= 0) | (maturity >= phantom.MATURITY_MAX_MONTHS)):
        if maturity[i] <= 0:
            weight = stats.norm.cdf(-grid / sd)
        else:
            weight = stats.norm.sf((phantom.MATURITY_MAX_MONTHS / rate[i] - grid) / sd)
        cdf = np.cumsum(weight)
        median[i] = grid[np.searchsorted(cdf, cdf[-1] / 2)]
    return median


def test_error_floor_matches_an_independent_computation(dataset):
    rng = np.random.default_rng(0)
    n = 20000
    ages = rng.integers(10, 2281, n) / 10
    male = rng.random(n) < phantom.MALE_PROBABILITY
    maturity = phantom.maturity_months(ages, male, rng.normal(0, phantom.MATURITY_OFFSET_SD_MONTHS, n))
    reference = _reference_posterior_median(maturity, male)
    np.testing.assert_allclose(phantom.posterior_median_age(maturity, male), reference, atol=0.11)
    monte_carlo = np.abs(ages - reference).mean()
    expected = phantom.expected_error_floor_mae()
    assert expected == pytest.approx(monte_carlo, abs=0.15)
    # Interior posteriors are Gaussian: MAE sd*sqrt(2/pi), lowered near the ends.
    assert 0.85 < expected / (phantom.MATURITY_OFFSET_SD_MONTHS * np.sqrt(2 / np.pi)) < 1.0

    out, manifest = dataset
    truth = pd.read_csv(out / "phantom_truth.csv")
    per_image = _reference_posterior_median(truth["maturity_months"].to_numpy(), truth["male"].to_numpy())
    floor = np.abs(truth["boneage"] - per_image).mean()
    assert manifest["error_floor_mae_months"] == pytest.approx(floor, abs=0.1)


def test_maturity_measure_grows_with_age():
    measure = [_bone_in_mask(age, True) for age in (12, 60, 120, 200)]
    assert np.all(np.diff(measure) > 0.05), measure


def test_girls_and_positive_offsets_look_more_mature():
    for age in (60, 120, 170):
        assert _bone_in_mask(age, False) > _bone_in_mask(age, True) + 0.01
        assert _bone_in_mask(age, True, offset=20.0) > _bone_in_mask(age, True) + 0.01
    # Girls are drawn at FEMALE_MATURITY_RATE: a girl of 100 months looks 112.
    girl = _clean(100.0, False)[0]
    np.testing.assert_array_equal(girl, _clean(112.0, True)[0])


def test_growth_plates_open_when_young_and_fused_at_220_months():
    assert _radius_plate_depth(60, True) > 40
    assert _radius_plate_depth(24, False) > 40
    assert _radius_plate_depth(220, True) < 5
    assert _radius_plate_depth(200, False) < 5


def test_carpal_sites_are_empty_before_ossification():
    newborn, mask = _clean(1.0, True, offset=-5.0)  # maturity 0: no carpal centre yet
    adult, _ = _clean(228.0, True)
    lower_half = np.zeros_like(mask, bool)
    lower_half[64:] = True
    carpal_sites = (mask > 0) & lower_half
    assert (newborn[carpal_sites] > 110).mean() < (adult[carpal_sites] > 110).mean() / 2


def test_render_is_deterministic_given_the_generator():
    a = phantom.render_hand(90.0, True, 3.0, np.random.default_rng(5), 64)
    b = phantom.render_hand(90.0, True, 3.0, np.random.default_rng(5), 64)
    c = phantom.render_hand(90.0, True, 3.0, np.random.default_rng(6), 64)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    with pytest.raises(ValueError, match="img_size"):
        phantom.render_hand(90.0, True, 0.0, np.random.default_rng(5), 32)


def test_intensity_histogram_shortcut_is_weak():
    features, ages = [], []
    for index in range(300):
        age, male, offset, rng = phantom.sample_child(11, "train", index)
        image, _ = phantom.render_hand(age, male, offset, rng, 64)
        hist = np.histogram(image, bins=32, range=(0, 256))[0] / image.size
        features.append(np.r_[hist, float(male)])
        ages.append(age)
    x, y = np.array(features), np.array(ages)
    folds = KFold(5, shuffle=True, random_state=0)
    ridge = cross_val_predict(RidgeCV(alphas=np.logspace(-4, 3, 30)), x, y, cv=folds)
    mean_only = np.empty_like(y)
    for train, test in folds.split(x):
        mean_only[test] = y[train].mean()
    ridge_mae, mean_mae = np.abs(ridge - y).mean(), np.abs(mean_only - y).mean()
    assert ridge_mae >= 0.7 * mean_mae, (ridge_mae, mean_mae)


def test_cli_refuses_existing_dataset_without_overwrite(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--out", str(out), "--n_train", "4", "--n_val", "2", "--n_test", "2", "--img_size", "64"]
    assert main(args) == 0
    assert "wrote 8 images" in capsys.readouterr().out
    before = _tree(out)

    assert main(args + ["--seed", "7"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert _tree(out) == before

    assert main(args + ["--seed", "7", "--overwrite"]) == 0
    assert json.loads((out / "manifest.json").read_text())["arguments"]["seed"] == 7
    assert sorted(os.listdir(tmp_path)) == ["cli"]


@pytest.mark.parametrize(
    "flag, value", [("--n_train", "0"), ("--n_val", "-3"), ("--n_test", "x"), ("--img_size", "32"), ("--seed", "-1")]
)
def test_cli_rejects_bad_arguments(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "bad"), flag, value])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_refuses_to_replace_a_directory_that_is_not_a_dataset(tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not empty"):
        phantom.make_dataset(tmp_path, overwrite=True, **SMALL)
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_interrupted_run_leaves_no_dataset(tmp_path, monkeypatch):
    def fail(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(phantom, "_write_json_atomic", fail)
    with pytest.raises(KeyboardInterrupt):
        phantom.make_dataset(tmp_path / "data", **SMALL)
    assert os.listdir(tmp_path) == []


def test_make_dataset_validates_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_val"):
        phantom.make_dataset(tmp_path / "x", n_val=0)
    with pytest.raises(ValueError, match="img_size"):
        phantom.make_dataset(tmp_path / "x", img_size=48)

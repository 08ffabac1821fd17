"""The DRR pair loader (layout, bad input, splits, tf.data) and the embedded synthetic dataset."""

import numpy as np
import pytest
from PIL import Image

from training.data.augmentation import Augmentation
from training.data.tables import DataError
from training.nodule_segmentation import phantom
from training.nodule_segmentation.data import find_pairs, make_dataset, split_pairs


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("drr")
    phantom.write_phantom(root, n_cases=10, size=64, seed=0)
    return root


def test_phantom_is_deterministic_and_in_the_original_layout(data_dir, tmp_path):
    again = tmp_path / "again"
    phantom.write_phantom(again, n_cases=10, size=64, seed=0)
    for path in sorted(data_dir.rglob("*.png")):
        np.testing.assert_array_equal(
            np.asarray(Image.open(path)), np.asarray(Image.open(again / path.relative_to(data_dir)))
        )
    assert (data_dir / "1-200" / "case_0009_drr_mask.png").is_file()
    drr, mask, facts = phantom.synthetic_case(3, size=64)
    assert set(np.unique(mask)) <= {0, 255} and drr.dtype == np.uint8
    counts = [len(phantom.synthetic_case(i, size=32)[2]["nodules"]) for i in range(40)]
    assert min(counts) == 0 and max(counts) == 3  # empty cases and several nodules both occur
    faint = [n for i in range(40) for n in phantom.synthetic_case(i, size=32)[2]["nodules"] if n["contrast"] < 0.12]
    assert faint  # some nodules are faint


def test_pairs_are_found_and_split_by_a_seeded_shuffle(data_dir):
    pairs, report = find_pairs(data_dir)
    assert len(pairs) == report.rows_kept == 10 and pairs[0].xray is None
    splits = split_pairs(pairs, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert [len(splits[name]) for name in ("train", "val", "test")] == [6, 2, 2]
    assert splits == split_pairs(pairs, val_fraction=0.2, test_fraction=0.2, seed=1)
    ids = {pair.case_id for split in splits.values() for pair in split}
    assert len(ids) == 10


def test_explicit_split_lists(data_dir, tmp_path):
    pairs, _ = find_pairs(data_dir)
    (tmp_path / "val.txt").write_text("case_0001\n# a comment\ncase_0002_drr.png\n")
    splits = split_pairs(pairs, lists={"val": tmp_path / "val.txt"})
    assert [p.case_id for p in splits["val"]] == ["case_0001", "case_0002"] and len(splits["train"]) == 8
    (tmp_path / "bad.txt").write_text("nope\n")
    with pytest.raises(DataError, match="bad.txt: ids not in the data"):
        split_pairs(pairs, lists={"val": tmp_path / "bad.txt"})


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda d: (d / "x" / "a_drr_mask.png").unlink(), "a_drr.png has no mask"),
        (lambda d: (d / "x" / "a_drr.png").unlink(), "a_drr_mask.png has no DRR"),
        (lambda d: _write(d / "x" / "a_drr_mask.png", np.zeros((8, 8))), r"is \(8, 8\), its DRR .* is \(16, 16\)"),
        (lambda d: _write(d / "x" / "a_drr_mask.png", np.arange(256).reshape(16, 16)), "is not binary"),
        (lambda d: (d / "x" / "a_drr.png").write_bytes(b"not a png"), "unreadable image"),
    ],
    ids=["drr_without_mask", "mask_without_drr", "mask_size", "non_binary", "unreadable"],
)
def test_bad_pairs_are_refused_naming_the_file_or_skipped_and_counted(tmp_path, breakage, message):
    mask = np.zeros((16, 16))
    mask[4:8, 4:8] = 255
    for case in ("a", "b", "c"):
        _write(tmp_path / "x" / f"{case}_drr.png", np.full((16, 16), 100))
        _write(tmp_path / "x" / f"{case}_drr_mask.png", mask if case != "c" else np.zeros((16, 16)))
    breakage(tmp_path)
    with pytest.raises(DataError, match=message):
        find_pairs(tmp_path)
    pairs, report = find_pairs(tmp_path, on_bad_pairs="skip")
    assert [p.case_id for p in pairs] == ["b", "c"] and sum(report.as_dict()["skipped"].values()) == 1
    assert [p.empty for p in pairs] == [False, True]
    pairs, report = find_pairs(tmp_path, on_bad_pairs="skip", skip_empty_masks=True)
    assert [p.case_id for p in pairs] == ["b"] and report.as_dict()["skipped"]["empty mask"] == 1


def test_single_class_dataset_is_refused(tmp_path):
    for case in ("a", "b"):
        _write(tmp_path / f"{case}_drr.png", np.full((16, 16), 100))
        _write(tmp_path / f"{case}_drr_mask.png", np.zeros((16, 16)))
    with pytest.raises(DataError, match="Every mask under .* is empty"):
        find_pairs(tmp_path)


def test_dataset_scales_binarises_and_augments_image_and_mask_alike(data_dir):
    pairs, _ = find_pairs(data_dir)
    plain = next(iter(make_dataset(pairs[:4], 64, 4)))
    inputs, targets = plain
    drr, mask = np.asarray(inputs["drr"]), np.asarray(targets["segmentation"])
    assert drr.min() >= -1024 and drr.max() <= 1024 and set(np.unique(mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(inputs["xray"], drr)  # no X-ray: the DRR feeds both inputs
    flip_only = Augmentation(
        flip=True, rotation_degrees=0, shift=0, zoom=0, brightness=0, contrast=0, mask_interpolation="bilinear"
    )
    flipped, flipped_targets = next(iter(make_dataset(pairs[:4], 64, 4, training=True, augmentation=flip_only, seed=5)))
    order = [
        next(
            i
            for i in range(4)
            if np.allclose(np.asarray(flipped["drr"])[j], drr[i])
            or np.allclose(np.asarray(flipped["drr"])[j], drr[i][:, ::-1])
        )
        for j in range(4)
    ]
    for j, i in enumerate(order):
        is_flipped = not np.allclose(np.asarray(flipped["drr"])[j], drr[i])
        expected_mask = mask[i][:, ::-1] if is_flipped else mask[i]
        np.testing.assert_array_equal(np.asarray(flipped_targets["segmentation"])[j], expected_mask)

"""The embedded implant dataset: determinism, catalogues, the rendered size, the references."""

import json

import numpy as np
import pytest

from training.data.tables import DataError
from training.implant_dimensions import phantom
from training.implant_dimensions.data import read_split, sanitize_company


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return phantom.make_phantom(tmp_path_factory.mktemp("phantom"), n_train=24, n_val=4, n_test=4, image_size=48)


def test_the_generator_is_deterministic_and_reuses_only_its_own_folder(root, tmp_path):
    again = phantom.make_phantom(tmp_path / "again", n_train=24, n_val=4, n_test=4, image_size=48)
    for name in ("train.json", "val.json", "test.json", "phantom.json"):
        assert (again / name).read_text() == (root / name).read_text()
    first = json.loads((root / "train.json").read_text())[5]
    path = f"{sanitize_company(first['company'])}/{first['image'].rsplit('/', 1)[-1]}"
    assert (again / path).read_bytes() == (root / path).read_bytes()
    assert phantom.make_phantom(root, n_train=24, n_val=4, n_test=4, image_size=48) == root  # reused as it is
    with pytest.raises(DataError, match=f"{root} holds .* other settings.*delete it or choose another --data_dir"):
        phantom.make_phantom(root, n_train=25, n_val=4, n_test=4, image_size=48)
    assert len(read_split(root / "train.json").table) == 24  # the loader reads the real layout


def test_each_model_has_a_window_of_neighbouring_catalogue_sizes():
    models = phantom.catalogue()
    assert models == phantom.catalogue() and len({m[1] for m in models}) == 12
    for _, _, taper, depth, lengths, diameters in models:
        start = phantom.LENGTHS.index(lengths[0])
        assert lengths == phantom.LENGTHS[start : start + 3]
        start = phantom.DIAMETERS.index(diameters[0])
        assert diameters == phantom.DIAMETERS[start : start + 2]
        assert taper in phantom.TAPERS and depth in phantom.THREAD_DEPTHS
    for company in phantom.COMPANIES:  # the models of a company differ in taper and in thread depth
        designs = [(m[2], m[3]) for m in models if m[0] == company]
        assert len({t for t, _ in designs}) == 3 and len({d for _, d in designs}) == 3
    # every window start is used (12 models over 8 length and 9 diameter positions)
    assert {phantom.LENGTHS.index(m[4][0]) for m in models} == set(range(8))
    assert {phantom.DIAMETERS.index(m[5][0]) for m in models} == set(range(9))


def test_labels_are_catalogue_sizes_plus_noise_at_a_drawn_magnification(root):
    entries = json.loads((root / "train.json").read_text())
    catalogues = {m[1]: m for m in phantom.catalogue()}
    for e in entries:
        _, _, _, _, lengths, diameters = catalogues[e["model"]]
        assert e["catalogue_length"] in lengths and e["catalogue_diameter"] in diameters
        assert abs(e["length"] - e["catalogue_length"]) < 0.5 and abs(e["diameter"] - e["catalogue_diameter"]) < 0.5
        assert phantom.MAGNIFICATION[0] <= e["magnification"] <= phantom.MAGNIFICATION[1]


@pytest.mark.parametrize("magnification", [0.8, 1.25])
def test_the_implant_spans_its_length_times_the_magnification_in_pixels(magnification):
    size, length = 96, 12.0
    image = phantom.render(length, 4.0, (1.0, "flat", 0.0, 0.0, 0.1), size, magnification, np.random.default_rng(1))
    column = image[:, size // 2 - 1 : size // 2 + 2].min(axis=1)  # the implant's axis, through the centre
    expected = length * size / phantom.FIELD_OF_VIEW_MM * magnification  # 38.4 or 60.0 px
    assert abs(np.sum(column > 215) - expected) <= 0.06 * expected  # rotation by at most 8 deg: cos 8 = 0.99


def test_references_are_computed_from_what_generated_each_entry(tmp_path):
    entries = [
        {"length": 10.1, "diameter": 4.0, "catalogue_length": 10.0, "catalogue_diameter": 4.1, "magnification": 0.9},
        {"length": 8.0, "diameter": 3.3, "catalogue_length": 8.0, "catalogue_diameter": 3.5, "magnification": 1.2},
    ]
    (tmp_path / "split.json").write_text(json.dumps(entries))
    result = phantom.references(tmp_path / "split.json")
    assert result["error_floor"] == pytest.approx({"length": 0.05, "diameter": 0.15})
    # catalogue x magnification / 1.025 (the mean of 0.8 and 1.25), against the labels
    length = (abs(10.1 - 10.0 * 0.9 / 1.025) + abs(8.0 - 8.0 * 1.2 / 1.025)) / 2
    diameter = (abs(4.0 - 4.1 * 0.9 / 1.025) + abs(3.3 - 3.5 * 1.2 / 1.025)) / 2
    assert result["size_in_pixels"] == pytest.approx({"length": length, "diameter": diameter})

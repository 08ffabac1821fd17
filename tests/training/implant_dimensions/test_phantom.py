"""The embedded implant dataset: determinism, catalogues, the rendered size, the references."""

import json

import numpy as np
import pytest

from training.data.tables import DataError
from training.implant_dimensions import phantom
from training.implant_dimensions.data import read_split, sanitize_company

SIZES = dict(n_train=24, n_val=4, n_test=4, image_size=48)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return phantom.make_phantom(tmp_path_factory.mktemp("phantom"), **SIZES)


def test_the_generator_is_deterministic_and_reuses_only_its_own_finished_folder(root, tmp_path, monkeypatch):
    again = phantom.make_phantom(tmp_path / "again", **SIZES)
    for name in ("train.json", "val.json", "test.json", "phantom.json"):
        assert (again / name).read_text() == (root / name).read_text()
    first = json.loads((root / "train.json").read_text())[5]
    path = f"{sanitize_company(first['company'])}/{first['image'].rsplit('/', 1)[-1]}"
    assert (again / path).read_bytes() == (root / path).read_bytes()
    assert len(read_split(root / "train.json").table) == 24  # the loader reads the real layout
    monkeypatch.setattr(phantom, "render", None)  # reusing a finished folder renders nothing
    assert phantom.make_phantom(again, **SIZES) == again
    assert phantom.finished_settings(again) == dict(version=2, seed=0, **SIZES)  # what the command reuses
    refused = f"{again} holds an unfinished implant phantom or one written with other settings"
    with pytest.raises(DataError, match=f"{refused}.*delete it or choose another --data_dir"):
        phantom.make_phantom(again, **dict(SIZES, n_train=25))
    (again / "test.json").unlink()  # cut short, or partly deleted
    with pytest.raises(DataError, match=refused):
        phantom.make_phantom(again, **SIZES)
    assert phantom.finished_settings(again) == {}
    (again / "test.json").write_text("[]")
    (again / "phantom.json").write_text(json.dumps({"version": 1}))  # an older generator's folder
    with pytest.raises(DataError, match=refused):
        phantom.make_phantom(again, **SIZES)
    assert phantom.finished_settings(again) == {}


def test_each_model_has_a_window_of_neighbouring_catalogue_sizes():
    models = phantom.catalogue()
    assert models == phantom.catalogue() and len({m[1] for m in models}) == 12
    for _, _, taper, depth, lengths, diameters in models:
        start = phantom.LENGTHS.index(lengths[0])
        assert lengths == phantom.LENGTHS[start : start + 3]
        start = phantom.DIAMETERS.index(diameters[0])
        assert diameters == phantom.DIAMETERS[start : start + 2]
        assert taper in phantom.TAPERS and depth in phantom.THREAD_DEPTHS
    assert len({apex for _, apex, _ in phantom.COMPANIES.values()}) == len(phantom.COMPANIES)
    for company in phantom.COMPANIES:  # the models of a company differ in taper and in thread depth
        designs = [(m[2], m[3]) for m in models if m[0] == company]
        assert len({t for t, _ in designs}) == 3 and len({d for _, d in designs}) == 3
    # every window start is used (12 models over 8 length and 9 diameter positions)
    assert {phantom.LENGTHS.index(m[4][0]) for m in models} == set(range(8))
    assert {phantom.DIAMETERS.index(m[5][0]) for m in models} == set(range(9))


def test_labels_are_catalogue_sizes_plus_noise_rendered_at_the_recorded_magnification(tmp_path, monkeypatch):
    drawn = []

    def recording_render(length, diameter, design, image_size, magnification, rng):
        drawn.append((length, diameter, magnification))
        return np.zeros((image_size, image_size), "uint8")

    monkeypatch.setattr(phantom, "render", recording_render)
    root = phantom.make_phantom(tmp_path, **SIZES)
    entries = [e for split in ("train", "val", "test") for e in json.loads((root / f"{split}.json").read_text())]
    assert [(e["catalogue_length"], e["catalogue_diameter"]) for e in entries] == [d[:2] for d in drawn]
    assert [e["magnification"] for e in entries] == pytest.approx([d[2] for d in drawn], abs=5e-5)
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
    # catalogue x magnification / 1.025 (the mean of 0.8 and 1.25), against the labels:
    # length |10.1 - 8.7805| and |8.0 - 9.3659|; diameter |4.0 - 3.6| and |3.3 - 4.0976|
    assert result["size_in_pixels"] == pytest.approx({"length": 1.3427, "diameter": 0.5988}, abs=1e-4)

"""Deterministic synthetic dental-implant radiographs in the original's JSON + image layout.

As on real radiographs, the size in pixels does not give the size in mm: every image has its own
magnification (0.8-1.25, from the source, object and detector distances). What does survive it is
the implant's design, and the design fixes the catalogue:

* each company has its traits: thread pitch (mm), apex shape (its own), collar height (mm);
* each of its models has its own taper and thread depth, and a catalogue of three neighbouring
  lengths and two neighbouring diameters (models cover different parts of the size range).

So the size follows from *which* implant it is (the catalogue window) and from what is
magnification-free in the image (the proportions; the thread pitch in pixels against the
company's pitch in mm). Labels are the catalogue size plus measurement noise (sd 0.1 mm). Every
image is rotated (+-8 deg) over a bone-like background. The files are
``<root>/<sanitised company>/<name>.png`` and ``<root>/{train,val,test}.json``; some entries carry
absolute container paths, as the original's JSON files do, so the loader's remapping is exercised.
Each entry also keeps what generated it (``catalogue_length``, ``catalogue_diameter``,
``magnification``), which the loader ignores; ``phantom.json`` records the generator's settings.

References (`references`): the error floor is the label noise, E|N(0, 0.1)| = 0.08 mm per target
(predicting the catalogue size exactly); reading the size in pixels, i.e. the catalogue size times
the image's magnification over its mean, leaves about 10 % of the size (1.1 mm of length, 0.45 mm
of diameter on the CPU preset's splits).

Example:

>>> import tempfile
>>> root = make_phantom(tempfile.mkdtemp(), n_train=4, n_val=2, n_test=2, image_size=64)
>>> sorted(p.name for p in root.glob("*.json"))
['phantom.json', 'test.json', 'train.json', 'val.json']
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from training.data.tables import DataError
from training.implant_dimensions.data import sanitize_company
from training.results import write_json

VERSION = 2  # 1: magnification 0.95-1.05 and catalogues drawn from the whole size range
COMPANIES = {  # name -> (thread pitch in mm, apex shape, collar height in mm)
    "Nobel Biocare": (0.8, "round", 0.0),
    "Straumann": (1.0, "flat", 1.8),
    "Zimmer Biomet": (1.25, "pointed", 0.6),
    "Osstem": (1.5, "stepped", 1.2),
}
TAPERS = (0.0, 0.18, 0.36)  # of the diameter, lost from the top to the apex; one per model of a company
THREAD_DEPTHS = (0.08, 0.14, 0.2)  # of the half-width; one per model of a company
MODELS_PER_COMPANY = len(TAPERS)
LENGTHS = (6.0, 7.0, 8.0, 8.5, 10.0, 11.5, 13.0, 14.0, 15.0, 16.0)
DIAMETERS = (3.0, 3.3, 3.5, 3.75, 4.1, 4.3, 4.8, 5.0, 5.5, 6.0)
LENGTHS_PER_MODEL, DIAMETERS_PER_MODEL = 3, 2
MAGNIFICATION = (0.8, 1.25)
FIELD_OF_VIEW_MM = 24.0
LABEL_NOISE_MM = 0.1
CONTAINER_PREFIX = "/opt/ml/input/data/training/"
SPLITS = ("train", "val", "test")


def catalogue():
    """``[(company, model, taper, thread_depth, lengths, diameters)]``, the same at every call."""
    rng = np.random.default_rng(0)
    count = len(COMPANIES) * MODELS_PER_COMPANY
    # the windows' first sizes cycle through every position, shuffled, so the models cover the range evenly
    first_lengths = rng.permutation(np.arange(count) % (len(LENGTHS) - LENGTHS_PER_MODEL + 1))
    first_diameters = rng.permutation(np.arange(count) % (len(DIAMETERS) - DIAMETERS_PER_MODEL + 1))
    models = []
    for company in COMPANIES:
        designs = zip(rng.permutation(TAPERS), rng.permutation(THREAD_DEPTHS), strict=True)
        for index, (taper, depth) in enumerate(designs):
            first_length, first_diameter = first_lengths[len(models)], first_diameters[len(models)]
            lengths = LENGTHS[first_length : first_length + LENGTHS_PER_MODEL]
            diameters = DIAMETERS[first_diameter : first_diameter + DIAMETERS_PER_MODEL]
            name = f"{company.split()[0]} {chr(65 + index)}{index + 1}"
            models.append((company, name, float(taper), float(depth), lengths, diameters))
    return models


def render(length, diameter, design, image_size, magnification, rng):
    """One radiograph (uint8, ``image_size`` square) of an implant of ``length`` x ``diameter`` mm."""
    pitch, apex, collar, taper, depth = design
    scale = image_size / FIELD_OF_VIEW_MM * magnification  # pixels per mm
    yy, xx = np.mgrid[0:image_size, 0:image_size].astype("float32")
    noise = ndimage.gaussian_filter(rng.normal(size=(image_size, image_size)), image_size / 24)
    bone = 90 + 25 * noise / (noise.std() + 1e-6) + 30 * yy / image_size
    top = (image_size - length * scale) / 2
    rel = np.clip((yy - top) / (length * scale), 0, 1)
    half = diameter * scale / 2 * (1 - taper * rel)
    threads = (yy - top) / scale > collar
    half = half * (1 + depth * threads * np.sin(2 * np.pi * (yy - top) / (pitch * scale)))
    tip = np.clip((1 - rel) * length / 1.5, 0, 1)  # the last 1.5 mm
    apexes = {
        "round": np.sqrt(tip),
        "flat": np.minimum(1.0, 4 * tip),
        "pointed": tip,
        "stepped": 0.6 + 0.4 * (tip >= 1),
    }
    half = half * apexes[apex]
    inside = (yy >= top) & (yy <= top + length * scale) & (np.abs(xx - image_size / 2) <= half)
    image = np.where(inside, 225.0, bone)
    image = ndimage.rotate(image, rng.uniform(-8, 8), reshape=False, order=1, mode="nearest")
    image = image + rng.normal(0, 4, size=image.shape)
    return np.clip(image, 0, 255).astype("uint8")


def make_phantom(root, n_train=1200, n_val=80, n_test=80, image_size=96, seed=0):
    """Write the dataset under ``root`` and return ``root``.

    ``seed`` draws the entries (implant, size, magnification, nuisances); the catalogue is fixed. A
    folder this generator finished with the same settings is reused as it is.

    Raises:
        DataError: ``root`` holds a dataset written with other settings or by another version.
    """
    root = Path(root)
    settings = {"version": VERSION, "n_train": n_train, "n_val": n_val, "n_test": n_test}
    settings.update(image_size=image_size, seed=seed)
    if any((root / f"{split}.json").exists() for split in SPLITS):
        written = finished_settings(root)
        if written != settings:
            raise DataError(
                f"{root} holds an unfinished implant phantom or one written with other settings "
                f"({written or f'not a finished version-{VERSION} phantom'}, not {settings}): delete it or choose another --data_dir."
            )
        return root
    (root / "phantom.json").unlink(missing_ok=True)  # written last: it marks a finished folder
    rng = np.random.default_rng(seed)
    models = catalogue()
    for split, count in zip(SPLITS, (n_train, n_val, n_test), strict=True):
        entries = []
        for index in range(count):
            company, name, taper, depth, lengths, diameters = models[rng.integers(len(models))]
            length, diameter = float(rng.choice(lengths)), float(rng.choice(diameters))
            magnification = float(rng.uniform(*MAGNIFICATION))
            design = (*COMPANIES[company], taper, depth)
            pixels = render(length, diameter, design, image_size, magnification, rng)
            folder_name, file_name = sanitize_company(company), f"{split}_{index:04d}.png"
            (root / folder_name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).convert("RGB").save(root / folder_name / file_name)
            image = file_name if index % 4 else f"{CONTAINER_PREFIX}{folder_name}/{file_name}"
            entries.append(
                {
                    "image": image,
                    "company": company,
                    "model": name,
                    "length": round(length + float(rng.normal(0, LABEL_NOISE_MM)), 2),
                    "diameter": round(diameter + float(rng.normal(0, LABEL_NOISE_MM)), 2),
                    "catalogue_length": length,
                    "catalogue_diameter": diameter,
                    "magnification": round(magnification, 4),
                }
            )
        (root / f"{split}.json").write_text(json.dumps(entries, indent=1))
    write_json(root / "phantom.json", settings)
    return root


def finished_settings(root):
    """The settings of the phantom this version finished in ``root`` (its ``phantom.json``), else ``{}``."""
    root = Path(root)
    if not (root / "phantom.json").exists() or not all((root / f"{split}.json").exists() for split in SPLITS):
        return {}
    written = json.loads((root / "phantom.json").read_text())
    return written if written.get("version") == VERSION else {}


def references(json_path):
    """MAE (mm) per target of two answers that know what generated each entry of ``json_path``.

    ``error_floor``: the catalogue size itself (what the label noise leaves).
    ``size_in_pixels``: the catalogue size times the entry's magnification over the mean
    magnification (what the apparent size alone gives, without knowing the implant).
    """
    entries = json.loads(Path(json_path).read_text())
    mean_magnification = float(np.mean(MAGNIFICATION))
    answers = {
        "error_floor": lambda e, t: e[f"catalogue_{t}"],
        "size_in_pixels": lambda e, t: e[f"catalogue_{t}"] * e["magnification"] / mean_magnification,
    }
    return {
        name: {t: float(np.mean([abs(e[t] - answer(e, t)) for e in entries])) for t in ("length", "diameter")}
        for name, answer in answers.items()
    }

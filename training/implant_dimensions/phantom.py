"""Deterministic synthetic dental-implant radiographs in the original's JSON + image layout.

Each company has design traits (thread pitch, apex shape, collar height); each of its models has
its own taper and thread depth and a catalogue of lengths and diameters. An image shows one
implant at its catalogue size, magnified by a nuisance factor (0.95-1.05) and rotated (+-8 deg)
over a bone-like background; its labels are the catalogue size plus measurement noise (sd 0.1 mm).
The files are ``<root>/<sanitised company>/<name>.png`` and ``<root>/{train,val,test}.json``; some
entries carry absolute container paths, as the original's JSON files do, so the loader's remapping
is exercised.

Error floor: a model cannot beat the label noise, E|N(0, 0.1)| = 0.08 mm per target (the
magnification leaves the catalogue value recoverable from the design); `error_floor` reports
it measured on the generated labels.

Example:

>>> import tempfile
>>> root = make_phantom(tempfile.mkdtemp(), n_train=4, n_val=2, n_test=2, image_size=64)
>>> sorted(p.name for p in root.glob("*.json"))
['test.json', 'train.json', 'val.json']
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from training.implant_dimensions.data import sanitize_company

COMPANIES = {  # name -> (thread pitch in mm, apex shape, collar height in mm)
    "Nobel Biocare": (0.6, "round", 0.0),
    "Straumann": (0.8, "flat", 1.8),
    "Zimmer Biomet": (1.0, "pointed", 0.6),
    "Osstem": (1.25, "round", 1.2),
}
MODELS_PER_COMPANY = 3
LENGTHS = (8.0, 10.0, 11.5, 13.0, 15.0)
DIAMETERS = (3.3, 3.5, 4.1, 4.8, 5.0)
LABEL_NOISE_MM = 0.1
CONTAINER_PREFIX = "/opt/ml/input/data/training/"


def catalogue(seed=0):
    """``[(company, model, taper, thread_depth, lengths, diameters)]``, the same for every seed call."""
    rng = np.random.default_rng(seed)
    models = []
    for company in COMPANIES:
        for index in range(MODELS_PER_COMPANY):
            lengths = tuple(sorted(rng.choice(LENGTHS, size=3, replace=False)))
            diameters = tuple(sorted(rng.choice(DIAMETERS, size=2, replace=False)))
            taper, depth = float(rng.uniform(0.0, 0.35)), float(rng.uniform(0.08, 0.2))
            name = f"{company.split()[0]} {chr(65 + index)}{index + 1}"
            models.append((company, name, taper, depth, lengths, diameters))
    return models


def render(length, diameter, design, image_size, rng):
    """One radiograph (uint8, ``image_size`` square) of an implant of ``length`` x ``diameter`` mm."""
    pitch, apex, collar, taper, depth = design
    scale = image_size / 20.0 * rng.uniform(0.95, 1.05)  # 20 mm field of view, magnification nuisance
    yy, xx = np.mgrid[0:image_size, 0:image_size].astype("float32")
    noise = ndimage.gaussian_filter(rng.normal(size=(image_size, image_size)), image_size / 24)
    bone = 90 + 25 * noise / (noise.std() + 1e-6) + 30 * yy / image_size
    top = (image_size - length * scale) / 2
    rel = np.clip((yy - top) / (length * scale), 0, 1)
    half = diameter * scale / 2 * (1 - taper * rel)
    threads = (yy - top) / scale > collar
    half = half * (1 + depth * threads * np.sin(2 * np.pi * (yy - top) / (pitch * scale)))
    tip = np.clip((1 - rel) * length / 1.5, 0, 1)  # the last 1.5 mm
    half = half * {"round": np.sqrt(tip), "flat": np.minimum(1.0, 4 * tip), "pointed": tip}[apex]
    inside = (yy >= top) & (yy <= top + length * scale) & (np.abs(xx - image_size / 2) <= half)
    image = np.where(inside, 225.0, bone)
    image = ndimage.rotate(image, rng.uniform(-8, 8), reshape=False, order=1, mode="nearest")
    image = image + rng.normal(0, 4, size=image.shape)
    return np.clip(image, 0, 255).astype("uint8")


def make_phantom(root, n_train=1200, n_val=80, n_test=80, image_size=96, seed=0):
    """Write the dataset under ``root`` (skipped if ``root/train.json`` exists); returns ``root``."""
    root = Path(root)
    if (root / "train.json").exists():
        return root
    rng = np.random.default_rng(seed)
    models = catalogue()
    for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
        entries = []
        for index in range(count):
            company, name, taper, depth, lengths, diameters = models[rng.integers(len(models))]
            length, diameter = float(rng.choice(lengths)), float(rng.choice(diameters))
            pitch, apex, collar = COMPANIES[company]
            pixels = render(length, diameter, (pitch, apex, collar, taper, depth), image_size, rng)
            folder = root / sanitize_company(company)
            folder.mkdir(parents=True, exist_ok=True)
            file_name = f"{split}_{index:04d}.png"
            Image.fromarray(pixels).convert("RGB").save(folder / file_name)
            image = file_name if index % 4 else f"{CONTAINER_PREFIX}{sanitize_company(company)}/{file_name}"
            entries.append(
                {
                    "image": image,
                    "company": company,
                    "model": name,
                    "length": round(length + float(rng.normal(0, LABEL_NOISE_MM)), 2),
                    "diameter": round(diameter + float(rng.normal(0, LABEL_NOISE_MM)), 2),
                    "catalogue_length": length,
                    "catalogue_diameter": diameter,
                }
            )
        (root / f"{split}.json").write_text(json.dumps(entries, indent=1))
    return root


def error_floor(json_path):
    """MAE (mm) of predicting each entry's catalogue size exactly: what the label noise leaves."""
    entries = json.loads(Path(json_path).read_text())
    return {
        target: float(np.mean([abs(e[target] - e[f"catalogue_{target}"]) for e in entries]))
        for target in ("length", "diameter")
    }

"""Embedded dataset: deterministic synthetic wound photos with captions, written in the Wound layout.

Each sample has a ``type`` (3 classes) drawn as the colour of a blob, so task 1 is visible in the
image, and a ``severity`` (3 classes) = (blob size (small/large) + caption cue (mild/moderate/marked
= 0/1/2)) mod 3, so task 2 needs both modalities. Captions hold the cue, filler words and distractors
(a random, unrelated type word); with probability ``noise`` the cue word is replaced by a random one.

Example:

>>> import tempfile
>>> root = write_synthetic_wound(tempfile.mkdtemp(), samples=6, image_size=16)
>>> sorted(p.name for p in root.iterdir())[:2]
['images', 'metadata.csv']
"""

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from training.image_text_fusion.data import split_wound_metadata

TYPES = ("abrasion", "burn", "laceration")
SEVERITIES = ("high", "low", "medium")
CUES = ("mild", "moderate", "marked")
COLOURS = np.array([[200, 60, 60], [60, 180, 60], [60, 60, 200]], "float32")
FILLER = ("patient", "reports", "area", "near", "skin", "clinic", "noted", "dressing", "today", "left", "right")


def write_synthetic_wound(root, samples=300, image_size=32, noise=0.1, seed=0):
    """Write ``samples`` images, ``metadata.csv`` and the 70/15/15 split files under ``root``; return ``root``."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:image_size, :image_size]
    rows = []
    for index in range(samples):
        kind, large, cue = rng.integers(3), rng.integers(2), rng.integers(3)
        severity = (large + cue) % 3
        radius = image_size * (0.33 if large else 0.18) * rng.uniform(0.9, 1.1)
        cy, cx = rng.uniform(0.35, 0.65, 2) * image_size
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2)[..., None]
        image = (
            rng.normal(150, 25, (image_size, image_size, 3)) * (1 - blob)
            + (COLOURS[kind] + rng.normal(0, 20, 3)) * blob
        )
        name = f"images/wound_{index:05d}.png"
        Image.fromarray(np.clip(image, 0, 255).astype("uint8")).save(root / name)
        shown_cue = rng.integers(3) if rng.uniform() < noise else cue
        words = list(rng.choice(FILLER, 4)) + [CUES[shown_cue], "inflammation", "unlike", TYPES[rng.integers(3)]]
        rng.shuffle(words[:4])
        rows.append(
            {"file_path": name, "type": TYPES[kind], "severity": SEVERITIES[severity], "description": " ".join(words)}
        )
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    split_wound_metadata(root, seed=seed)
    return root

"""Embedded dataset: deterministic synthetic wound photos with captions, written in the Wound layout.

Each sample has a ``type`` (3 classes) drawn as the colour of a blob, so task 1 is visible in the
image, and a ``severity`` (3 classes) from two hidden levels in ``0..2``: the blob size (small,
medium, large: image only) and a caption cue (mild, moderate, marked: text only). Their sum decides
the severity: ``low`` for 0-1, ``medium`` for 2, ``high`` for 3-4 (3 of the 9 combinations each), so
task 2 needs both modalities: either one alone tops out at 5/9 (about 0.56) accuracy. Each modality
still moves the severity monotonically (unlike a parity rule), so gradient descent finds both.
Captions hold filler words and distractors (an unrelated type word, an unrelated level word about
another site); with probability ``noise`` the cue word is replaced by a random one.

Example:

>>> import tempfile
>>> root = write_synthetic_wound(tempfile.mkdtemp(), samples=6, image_size=16)
>>> sorted(p.name for p in root.iterdir())[:2]
['images', 'metadata.csv']
>>> [severity_of(size, cue) for size, cue in ((0, 1), (1, 1), (2, 1))]
['low', 'medium', 'high']
"""

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from training.image_text_fusion.data import split_wound_metadata

TYPES = ("abrasion", "burn", "laceration")
CUES = ("mild", "moderate", "marked")
SIZES = (0.15, 0.25, 0.36)  # blob radius / image side per size level
COLOURS = np.array([[200, 60, 60], [60, 180, 60], [60, 60, 200]], "float32")
FILLER = ("patient", "reports", "area", "near", "skin", "clinic", "noted", "dressing", "today", "left", "right")
DISTRACTOR_SITES = ("elbow", "knee", "shin", "wrist")


def severity_of(size, cue):
    """The severity label of a size level and a cue level (both in ``0..2``)."""
    return ("low", "low", "medium", "high", "high")[size + cue]


def write_synthetic_wound(root, samples=300, image_size=32, noise=0.1, seed=0):
    """Write ``samples`` images, ``metadata.csv`` and the 70/15/15 split files under ``root``; return ``root``.

    Args:
        root: output folder.
        samples: number of images.
        image_size: image side in pixels.
        noise: probability that the caption's cue word is replaced by a random one.
        seed: random seed (same seed, same files).
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:image_size, :image_size]
    rows = []
    for index in range(samples):
        kind, size, cue = rng.integers(3), rng.integers(3), rng.integers(3)
        radius = image_size * SIZES[size] * rng.uniform(0.93, 1.07)
        cy, cx = rng.uniform(0.4, 0.6, 2) * image_size
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2)[..., None]
        image = (
            rng.normal(150, 25, (image_size, image_size, 3)) * (1 - blob)
            + (COLOURS[kind] + rng.normal(0, 20, 3)) * blob
        )
        name = f"images/wound_{index:05d}.png"
        Image.fromarray(np.clip(image, 0, 255).astype("uint8")).save(root / name)
        shown_cue = rng.integers(3) if rng.uniform() < noise else cue
        words = [*rng.choice(FILLER, 3), CUES[shown_cue], "inflammation", "unlike", TYPES[rng.integers(3)]]
        words += ["previously", CUES[rng.integers(3)], "at", DISTRACTOR_SITES[rng.integers(4)]]
        rows.append(
            {
                "file_path": name,
                "type": TYPES[kind],
                "severity": severity_of(size, cue),
                "description": " ".join(words),
            }
        )
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    split_wound_metadata(root, seed=seed)
    return root

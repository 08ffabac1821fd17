"""Embedded dataset: deterministic synthetic chest DRRs with lung nodules, written in the real layout.

Each case is a projection ("line integral") of a simple thorax: body, two lungs, heart, spine and
ribs, plus 0-3 nodules (projected ellipsoids: chord length of a rotated ellipsoid, so brightest at
the centre) of varied size and density; then exposure, noise, blur and a small rotation. Some
nodules are faint and many overlap ribs, which have a similar contrast, so a threshold cannot
segment them. Case ``i`` depends only on ``(seed, i)``.

Written as ``<root>/<first>-<last>/<id>_drr.png`` with ``<id>_drr_mask.png`` (the original's
``DRR dataset/LIDC_LDRI/1-200/...`` layout), so `training.nodule_segmentation.data` reads it like
real data.

Example:

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> summary = write_phantom(root, n_cases=3, size=64)
>>> sorted(p.name for p in root.rglob("*.png"))[:2]
['case_0000_drr.png', 'case_0000_drr_mask.png']
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image

GROUP_SIZE = 200
# Probabilities of 0, 1, 2 and 3 nodules per case.
NODULE_COUNTS = (0.1, 0.5, 0.25, 0.15)
SUMMARY_FILE = "phantom.json"


def _ellipse(xx, yy, cx, cy, ax, ay, angle=0.0):
    """``1 - r^2`` inside a rotated ellipse (centre, semi-axes, radians), 0 outside."""
    c, s = np.cos(angle), np.sin(angle)
    u = ((xx - cx) * c + (yy - cy) * s) / ax
    v = (-(xx - cx) * s + (yy - cy) * c) / ay
    return np.clip(1.0 - u * u - v * v, 0.0, None)


def _blur(image, sigma):
    """Separable Gaussian blur with edge padding (NumPy only)."""
    radius = max(1, int(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(image, radius, mode="edge")
    rows = np.apply_along_axis(lambda r: np.convolve(r, taps, mode="valid"), 1, padded)
    return np.apply_along_axis(lambda c: np.convolve(c, taps, mode="valid"), 0, rows)


def synthetic_case(index, size=128, seed=0):
    """One case: ``(drr uint8 (S, S), mask uint8 (S, S) in {0, 255}, facts dict)``."""
    rng = np.random.default_rng([seed, index])
    yy, xx = np.mgrid[0:size, 0:size].astype("float64") / size  # [0, 1)
    body = _ellipse(xx, yy, 0.5, 0.55, rng.uniform(0.42, 0.47), rng.uniform(0.5, 0.56)) ** 0.5
    density = 0.9 * body
    lungs = []
    for side in (-1, 1):
        cx, cy = 0.5 + side * rng.uniform(0.17, 0.21), rng.uniform(0.45, 0.5)
        ax, ay = rng.uniform(0.11, 0.14), rng.uniform(0.25, 0.3)
        lung = _ellipse(xx, yy, cx, cy, ax, ay, side * rng.uniform(0.0, 0.12))
        lungs.append((cx, cy, ax, ay, lung))
        density -= 0.6 * np.sqrt(lung)
    density += 0.45 * np.sqrt(_ellipse(xx, yy, 0.5 + rng.uniform(0.03, 0.07), 0.6, rng.uniform(0.1, 0.13), 0.12))
    density += 0.5 * np.sqrt(_ellipse(xx, yy, 0.5, 0.5, 0.035, 0.6))  # spine
    for rib in range(rng.integers(8, 11)):  # curved bands across both lungs
        y0 = 0.22 + rib * 0.06 + rng.normal(0, 0.005)
        curve = y0 + 0.12 * (xx - 0.5) ** 2 * 4 - 0.03 * np.abs(xx - 0.5)
        band = np.clip(1.0 - ((yy - curve) / 0.012) ** 2, 0.0, None)
        density += rng.uniform(0.12, 0.2) * band * (np.abs(xx - 0.5) < 0.4)
    mask = np.zeros((size, size), bool)
    n_nodules = rng.choice(len(NODULE_COUNTS), p=NODULE_COUNTS)
    nodules = []
    for _ in range(n_nodules):
        cx, cy, ax, ay, lung = lungs[rng.integers(2)]
        radius = rng.uniform(0.02, 0.07)
        x0 = cx + rng.uniform(-0.7, 0.7) * (ax - radius)
        y0 = cy + rng.uniform(-0.7, 0.7) * (ay - radius)
        shape = _ellipse(xx, yy, x0, y0, radius, radius * rng.uniform(0.7, 1.3), rng.uniform(0, np.pi))
        contrast = rng.choice([rng.uniform(0.06, 0.12), rng.uniform(0.12, 0.35)], p=[0.35, 0.65])  # some faint
        density += contrast * np.sqrt(shape)
        mask |= shape > 0
        nodules.append({"x": float(x0), "y": float(y0), "radius": float(radius), "contrast": float(contrast)})
    exposure = rng.uniform(0.8, 1.2)
    image = 1.0 - np.exp(-exposure * np.clip(density, 0.0, None) * 1.5)
    image = _blur(image, rng.uniform(0.5, 1.5) * size / 128)
    image = image + rng.normal(0.0, rng.uniform(0.01, 0.04), image.shape)
    angle = rng.uniform(-5.0, 5.0)
    drr = Image.fromarray(np.uint8(np.clip(image, 0, 1) * 255)).rotate(angle, Image.BILINEAR, fillcolor=0)
    mask_image = Image.fromarray(np.uint8(mask) * 255).rotate(angle, Image.NEAREST, fillcolor=0)
    return np.asarray(drr), np.asarray(mask_image), {"nodules": nodules, "rotation_degrees": float(angle)}


def case_folder(root, index):
    """``<root>/<first>-<last>`` of the original layout (groups of 200, 1-based)."""
    first = index // GROUP_SIZE * GROUP_SIZE + 1
    return Path(root) / f"{first}-{first + GROUP_SIZE - 1}"


def write_phantom(root, n_cases=400, size=128, seed=0):
    """Write ``n_cases`` synthetic cases under ``root``; returns (and writes) a summary.

    A root holding a summary with the same settings is kept as it is (the data is deterministic).
    """
    root = Path(root)
    settings = {"n_cases": int(n_cases), "size": int(size), "seed": int(seed)}
    summary_path = root / SUMMARY_FILE
    if summary_path.is_file() and json.loads(summary_path.read_text()).get("settings") == settings:
        return json.loads(summary_path.read_text())
    counts = [0] * len(NODULE_COUNTS)
    for index in range(n_cases):
        drr, mask, facts = synthetic_case(index, size, seed)
        folder = case_folder(root, index)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(drr).save(folder / f"case_{index:04d}_drr.png")
        Image.fromarray(mask).save(folder / f"case_{index:04d}_drr_mask.png")
        counts[len(facts["nodules"])] += 1
    summary = {"settings": settings, "cases_by_nodule_count": counts}
    summary_path.write_text(json.dumps(summary, indent=2))
    return summary

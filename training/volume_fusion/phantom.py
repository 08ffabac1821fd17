"""Deterministic synthetic hip MRI volumes with clinical metadata, in the original's on-disk layout.

Real hip MRIs cannot ship with the project; this renders a stand-in with a known answer. Each case:

* **Metadata** ``[Age, Gender, Treatment, Luxation]``: age at treatment in months U(1, 12), female
  with probability 0.75 (m=0 / f=1), treatment 0/1 (probability 0.4 of 1), luxation grade 1-4.
* **A hidden image severity** ``s ~ N(0, 1)``, independent of the metadata, that the volume shows:
  the femoral head flattens and the acetabular cup covers less of it as ``s`` grows.
* **Outcome** (THP, about 20 % positive): ``y ~ Bernoulli(sigmoid(b0 + w . metadata + w_s s))`` with the
  weights in `OUTCOME_WEIGHTS`; age and gender carry no effect, treatment and luxation do.
* **Volume** (``VOLUME_SIZE``^3): fatty background, the femoral head (an ellipsoid) with its neck,
  the acetabular cup (a spherical shell segment), a smooth bias field, Rician-like noise and a small
  random shift; right hips are mirrored. Luxation moves the head out of the cup.

Because the outcome law is known, `make_dataset` reports the best possible ROC-AUC of a reader of
the metadata alone, of the image severity alone and of both (``oracle_auc`` in ``manifest.json``):
the gap between them is the information the image adds. Every case's randomness comes from
``default_rng([seed, split, index])``, so the files are reproducible.

Layout written (what `training.volume_fusion.tables` reads):
``images/img<study>_annotation-<l|r>.nii.gz``, ``train.xlsx`` (sheet "2year model"), ``val.xlsx`` and
``test.xlsx`` (sheet "2 year FU model"), ``manifest.json``.
"""

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from training.volume_fusion.tables import EVAL_SHEET, TRAIN_SHEET, volume_name

GENERATOR_VERSION = "1.0.0"
VOLUME_SIZE = 32
SPLITS = {"train": 0, "val": 1, "test": 2}
FILES = {"train": ("train.xlsx", TRAIN_SHEET), "val": ("val.xlsx", EVAL_SHEET), "test": ("test.xlsx", EVAL_SHEET)}
IMAGE_DIR = "images"
MANIFEST = "manifest.json"
# logit = BIAS + weights . [age, gender, treatment, luxation - 2.5] + SEVERITY_WEIGHT * s
OUTCOME_WEIGHTS = np.array([0.0, 0.0, 1.0, 0.9])
SEVERITY_WEIGHT = 1.6
BIAS = -2.3


def sample_case(seed, split, index):
    """Metadata, severity, outcome probability and outcome of one case, and its generator."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    metadata = np.array(
        [
            round(float(rng.uniform(1, 12)), 1),
            float(rng.uniform() < 0.75),
            float(rng.uniform() < 0.4),
            float(rng.choice([1, 2, 3, 4], p=[0.35, 0.3, 0.2, 0.15])),
        ]
    )
    severity = float(rng.normal())
    probability = float(_sigmoid(_metadata_logit(metadata) + SEVERITY_WEIGHT * severity))
    return metadata, severity, probability, int(rng.uniform() < probability), rng


def _metadata_logit(metadata):
    shifted = np.asarray(metadata, "float64") - np.array([0.0, 0.0, 0.0, 2.5])
    return BIAS + shifted @ OUTCOME_WEIGHTS


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def render_volume(severity, luxation, side, rng, size=VOLUME_SIZE):
    """One hip volume ``(size, size, size)`` float32 (arbitrary MRI-like units)."""
    grid = (np.indices((size,) * 3).astype("float32") + 0.5) / size - 0.5  # z, y, x in [-0.5, 0.5)
    z, y, x = grid + rng.uniform(-0.04, 0.04, size=(3, 1, 1, 1)).astype("float32")
    radius = 0.17 * (1 + 0.05 * rng.normal())
    flattening = float(np.clip(1.0 - 0.12 * severity, 0.6, 1.3))
    head_x = 0.03 * (luxation - 1) + 0.01 * rng.normal()  # luxation moves the head laterally, out of the cup
    head = ((x - head_x) / radius) ** 2 + (y / radius) ** 2 + (z / (radius * flattening)) ** 2
    volume = 0.35 + 0.05 * rng.normal() + np.zeros_like(x)
    volume = np.where(head < 1.0, 0.8, volume)
    neck = ((y / (0.45 * radius)) ** 2 + ((z + 0.02) / (0.45 * radius)) ** 2 < 1.0) & (x > head_x) & (x < 0.45)
    volume = np.where(neck & (head >= 1.0), 0.7, volume)
    shell = np.sqrt(x**2 + y**2 + z**2)
    cover = np.clip(0.45 - 0.12 * severity, 0.1, 0.8)  # fraction of the sphere the cup covers, from medial
    cup = (np.abs(shell - 1.25 * radius) < 0.035) & (-x / np.maximum(shell, 1e-6) > 1 - 2 * cover)
    volume = np.where(cup, 0.15, volume)
    bias = 1.0 + 0.25 * (rng.normal(size=3) @ grid.reshape(3, -1)).reshape(x.shape)
    noisy = np.hypot(volume * bias + rng.normal(0, 0.05, x.shape), rng.normal(0, 0.05, x.shape))
    return (noisy[:, :, ::-1] if side == "r" else noisy).astype("float32")


def _auc(y, score):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if len(set(y)) == 2 else None


def make_dataset(output_dir, n_train=200, n_val=100, n_test=100, seed=0, size=VOLUME_SIZE):
    """Write the dataset to ``output_dir`` (replacing it atomically); returns the manifest dict.

    Example:

    >>> import tempfile
    >>> info = make_dataset(Path(tempfile.mkdtemp()) / "hips", n_train=4, n_val=2, n_test=2, size=8)
    >>> info["counts"]["train"], sorted(info["files"])
    (4, ['test', 'train', 'val'])
    """
    import nibabel

    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}-"))
    (staging / IMAGE_DIR).mkdir()
    counts = {"train": n_train, "val": n_val, "test": n_test}
    oracle, positives = {}, {}
    for split, count in counts.items():
        rows, truths = [], []
        for index in range(count):
            metadata, severity, probability, outcome, rng = sample_case(seed, split, index)
            side = "l" if rng.uniform() < 0.5 else "r"
            study = 1000 * (SPLITS[split] + 1) + index
            volume = render_volume(severity, metadata[3], side, rng, size)
            stored = np.round(np.clip(volume, 0, 3) * 10000).astype("int16")  # like a scanner's integers
            nibabel.save(nibabel.Nifti1Image(stored, np.eye(4)), staging / IMAGE_DIR / volume_name(study, side))
            rows.append(
                {"Study number": study, "Side": side, "Age": metadata[0], "Gender": "mf"[int(metadata[1])],
                 "Treatment": int(metadata[2]), "Luxation": int(metadata[3]), "THP": outcome}
            )  # fmt: skip
            truths.append((outcome, _metadata_logit(metadata), severity, probability))
        name, sheet = FILES[split]
        pd.DataFrame(rows).to_excel(staging / name, sheet_name=sheet, index=False)
        y, meta_logit, severity, probability = (np.array(column) for column in zip(*truths, strict=True))
        positives[split] = int(y.sum())
        oracle[split] = {"metadata": _auc(y, meta_logit), "image": _auc(y, severity), "both": _auc(y, probability)}
    manifest = {
        "generator": "training.volume_fusion.phantom",
        "version": GENERATOR_VERSION,
        "settings": {"n_train": n_train, "n_val": n_val, "n_test": n_test, "seed": seed, "size": size},
        "counts": counts,
        "positives": positives,
        "files": {split: {"table": name, "sheet": sheet} for split, (name, sheet) in FILES.items()},
        "oracle_auc": oracle,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    if output_dir.exists():
        shutil.rmtree(output_dir)
    staging.rename(output_dir)
    return manifest


def ensure_dataset(output_dir, **settings):
    """`make_dataset` unless ``output_dir`` already holds a dataset with these settings; the manifest."""
    manifest_path = Path(output_dir) / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        wanted = {"n_train": 200, "n_val": 100, "n_test": 100, "seed": 0, "size": VOLUME_SIZE} | settings
        if manifest.get("settings") == wanted and manifest.get("version") == GENERATOR_VERSION:
            return manifest
    return make_dataset(output_dir, **settings)

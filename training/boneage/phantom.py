"""Deterministic synthetic hand radiographs ("phantoms") for bone-age regression.

Real RSNA Pediatric Bone Age radiographs cannot be shipped with the project, so
this module renders a stand-in dataset with the same file layout. Each image is
a left-hand PA view drawn from soft-edged primitives (capsules, ellipses and a
rounded palm) whose skeletal maturity follows the label:

* Labels are bone ages drawn uniformly on a 0.1-month grid over
  [MIN_AGE_MONTHS, MAX_AGE_MONTHS]; a child is male with MALE_PROBABILITY.
* Every child has a biological maturity offset ``o ~ N(0, sd)`` with
  ``sd = MATURITY_OFFSET_SD_MONTHS``. The drawn anatomy depends only on the
  maturity ``m = clip(rate * (age + o), 0, MATURITY_MAX_MONTHS)``, where
  ``rate`` is 1 for boys and FEMALE_MATURITY_RATE for girls (girls reach each
  stage earlier). ``m`` is measured in "boy months".
* Maturity shows as: long-bone shafts that lengthen, widen and gain cortex;
  epiphyses that appear, widen, cap the metaphysis and fuse (distal phalanges
  first, radius last) while the dark growth plate between them narrows and
  vanishes; carpal ossification centres that appear in the order capitate,
  hamate, triquetrum, lunate, trapezium, trapezoid, scaphoid, pisiform and
  grow; and an adductor sesamoid of the thumb in puberty.
* Nuisance per image, independent of age: finger spread, rotation (+-15
  deg), scale (+-15 %), shift, mirroring, bone calibre, tissue densities,
  fog, heel-effect gradient, a random window and gamma, collimator bands,
  blur, Gaussian noise and an "L"/"R" side marker. Together they make the
  global intensity histogram a poor age cue (a ridge regression on it is
  barely better than predicting the mean), so the age has to be read from
  the anatomy.
* Masks mark the age-informative sites (carpal centres, epiphyses with their
  growth plates, the sesamoid), whether or not they have ossified yet.

Each image's randomness comes from ``default_rng([seed, split, index])``
(see :func:`sample_child`), so datasets are byte-for-byte reproducible.

Because of the offset no reader can be exact. The error floor reported by
:func:`make_dataset` is the mean absolute error of the Bayes-optimal reader
that sees the rendered maturity and the sex: for each image it predicts the
median of the posterior of the label given ``m`` (label prior times offset
likelihood, including the clipped ends of the maturity range), see
:func:`posterior_median_age`. Nuisance can only make a real reader worse, so
the floor is a lower bound.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

GENERATOR_NAME = "training.boneage.phantom"
GENERATOR_VERSION = "1.0.0"

MIN_AGE_MONTHS = 1.0
MAX_AGE_MONTHS = 228
AGE_STEP_MONTHS = 0.1
MALE_PROBABILITY = 0.54
MATURITY_OFFSET_SD_MONTHS = 10.0
FEMALE_MATURITY_RATE = 1.12
MATURITY_MAX_MONTHS = 240.0
MIN_IMG_SIZE = 64

SPLITS = ("train", "val", "test")
TRAIN_CSV = "boneage-training-dataset.csv"
TRAIN_IMAGES = "boneage-training-dataset"
VAL_DIR = "Bone Age Validation Set"
VAL_CSV = f"{VAL_DIR}/Validation Dataset.csv"
TEST_DIR = "Bone Age Test Set"
TEST_CSV = f"{TEST_DIR}/Bone age ground truth.csv"
MASKS_DIR = "masks"
TRUTH_CSV = "phantom_truth.csv"
MANIFEST = "manifest.json"

_SPLIT_FILES = {
    "train": (TRAIN_CSV, TRAIN_IMAGES),
    "val": (VAL_CSV, VAL_DIR),
    "test": (TEST_CSV, TEST_DIR),
}

# ----------------------------------------------------------------------------
# Maturity model
# ----------------------------------------------------------------------------


def maturity_months(bone_age_months, male, maturity_offset_months):
    """Skeletal maturity that the anatomy is drawn from, in boy months.

    Args:
        bone_age_months: Label(s) in months.
        male: Sex flag(s); girls mature FEMALE_MATURITY_RATE times faster.
        maturity_offset_months: Individual offset(s) added to the age.

    Returns:
        ``clip(rate * (age + offset), 0, MATURITY_MAX_MONTHS)``, a float or
        an array broadcast over the inputs.

    Example:
        >>> round(float(maturity_months(100.0, False, 0.0)), 6)
        112.0
    """
    rate = np.where(male, 1.0, FEMALE_MATURITY_RATE)
    m = rate * (np.asarray(bone_age_months, float) + maturity_offset_months)
    return np.clip(m, 0.0, MATURITY_MAX_MONTHS)


def _age_grid():
    steps_per_month = round(1 / AGE_STEP_MONTHS)
    first = round(MIN_AGE_MONTHS * steps_per_month)
    last = round(MAX_AGE_MONTHS * steps_per_month)
    return np.arange(first, last + 1) / steps_per_month  # exact tenths, e.g. 21.2


def _normal_cdf(x):
    return 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in x]))


@lru_cache(maxsize=2)
def _clipped_likelihoods(male):
    """Likelihood of a maturity clipped at 0 / at the maximum, per grid age."""
    ages = _age_grid()
    rate = 1.0 if male else FEMALE_MATURITY_RATE
    sd = MATURITY_OFFSET_SD_MONTHS
    low = _normal_cdf(-ages / sd)  # P(age + o <= 0)
    high = _normal_cdf((ages - MATURITY_MAX_MONTHS / rate) / sd)
    return low, high


def posterior_median_age(maturity, male):
    """Bayes-optimal (minimum MAE) label estimate given maturity and sex.

    The label prior is uniform on the 0.1-month grid used by the generator and
    the offset is Gaussian, so the posterior over the grid is proportional to
    the offset density at ``m / rate - age`` for an interior maturity, and to
    the probability of landing beyond the clip point when ``m`` sits at 0 or
    at MATURITY_MAX_MONTHS. The estimate is the posterior median.

    Args:
        maturity: Maturity value(s) as returned by :func:`maturity_months`.
        male: Sex flag(s), broadcast against ``maturity``.

    Returns:
        Array of posterior medians in months, shaped like the broadcast input.

    Example:
        >>> float(posterior_median_age(120.0, True)[0])
        120.0
    """
    maturity, male = np.broadcast_arrays(
        np.atleast_1d(np.asarray(maturity, float)), np.atleast_1d(np.asarray(male, bool))
    )
    out = np.empty(maturity.shape)
    for start in range(0, maturity.size, 1024):  # bounds memory to ~20 MB
        part = slice(start, start + 1024)
        out.flat[part] = _posterior_median(maturity.flat[part], male.flat[part])
    return out


def _posterior_median(maturity, male):
    ages = _age_grid()
    rate = np.where(male, 1.0, FEMALE_MATURITY_RATE)
    z = (maturity[:, None] / rate[:, None] - ages[None, :]) / MATURITY_OFFSET_SD_MONTHS
    post = np.exp(-0.5 * z * z)
    for is_male in (True, False):
        low, high = _clipped_likelihoods(is_male)
        post[(male == is_male) & (maturity <= 0.0)] = low
        post[(male == is_male) & (maturity >= MATURITY_MAX_MONTHS)] = high
    cdf = np.cumsum(post, axis=1)
    return ages[np.argmax(cdf >= 0.5 * cdf[:, -1:], axis=1)]


def error_floor_mae(bone_age_months, male, maturity):
    """MAE of the Bayes-optimal reader on given samples (0.0 if empty).

    Args:
        bone_age_months: True labels.
        male: Sex flags.
        maturity: Rendered maturities of the same samples.

    Returns:
        ``mean(|age - posterior_median_age(maturity, male)|)`` as a float.

    Example:
        >>> error_floor_mae([120.0], [True], [120.0])
        0.0
    """
    ages = np.asarray(bone_age_months, float)
    if ages.size == 0:
        return 0.0
    return float(np.mean(np.abs(ages - posterior_median_age(maturity, male))))


@lru_cache(maxsize=1)
def expected_error_floor_mae():
    """Population error floor: the floor's expectation under the generator.

    Integrates ``|age - estimate|`` over the uniform label grid, the Gaussian
    offset (fine quadrature over +-6 sd) and the sex probability. Estimates
    for interior maturities are interpolated from a 0.05-month maturity grid.

    Returns:
        Expected MAE of the Bayes-optimal reader in months.

    Example:
        >>> 6.0 < expected_error_floor_mae() < 8.0
        True
    """
    ages = _age_grid()
    z = np.linspace(-6.0, 6.0, 481)
    weights = np.exp(-0.5 * z * z)
    weights /= weights.sum()
    m_grid = np.linspace(0.0, MATURITY_MAX_MONTHS, 4801)
    total = 0.0
    for is_male, p_sex in ((True, MALE_PROBABILITY), (False, 1.0 - MALE_PROBABILITY)):
        estimate_on_grid = posterior_median_age(m_grid, is_male)
        m = maturity_months(ages[:, None], is_male, MATURITY_OFFSET_SD_MONTHS * z[None, :])
        estimate = np.interp(m, m_grid, estimate_on_grid)
        mae = np.abs(ages[:, None] - estimate) @ weights
        total += p_sex * float(mae.mean())
    return total


# ----------------------------------------------------------------------------
# Anatomy (canonical frame: x towards the thumb, y towards the forearm; the
# radiocarpal joint is near the origin and the middle fingertip near y=-0.6)
# ----------------------------------------------------------------------------

# Epiphysis timing in boy months: (appears, fused). Distal phalanges fuse
# first and the radius last.
_EPIPHYSIS_TIMING = {
    "radius": (10.0, 216.0),
    "ulna": (84.0, 210.0),
    "metacarpal": (18.0, 198.0),
    "metacarpal1": (28.0, 192.0),
    "proximal": (15.0, 196.0),
    "middle": (26.0, 200.0),
    "distal": (22.0, 186.0),
}

# Carpal ossification centres: name, appearance (boy months), centre,
# adult semi-axes (x, y) and rotation in degrees.
_CARPALS = (
    ("capitate", 2.0, (0.008, -0.090), (0.024, 0.040), 0.0),
    ("hamate", 5.0, (-0.042, -0.085), (0.024, 0.034), -10.0),
    ("triquetrum", 30.0, (-0.064, -0.038), (0.022, 0.018), -20.0),
    ("lunate", 42.0, (-0.014, -0.027), (0.025, 0.020), 0.0),
    ("trapezium", 58.0, (0.086, -0.098), (0.022, 0.020), 30.0),
    ("trapezoid", 66.0, (0.052, -0.112), (0.018, 0.019), 0.0),
    ("scaphoid", 72.0, (0.048, -0.040), (0.034, 0.018), -40.0),
    ("pisiform", 126.0, (-0.076, -0.056), (0.013, 0.013), 0.0),
)
_CARPAL_MATURE_MONTHS = 230.0
_SESAMOID_ONSET_MONTHS = 156.0

# Rays from thumb to little finger: metacarpal base, direction (deg from
# "up", positive towards the thumb), bone lengths (metacarpal, phalanges),
# width scale, finger soft-tissue radius and spread per unit of finger spread.
_RAYS = (
    ((0.094, -0.112), 32.0, (0.118, 0.082, 0.060), 1.10, 0.028, 12.0),
    ((0.045, -0.135), 4.0, (0.200, 0.115, 0.068, 0.050), 1.00, 0.0245, 6.0),
    ((0.008, -0.128), 0.0, (0.190, 0.125, 0.078, 0.053), 1.05, 0.0255, 0.0),
    ((-0.032, -0.124), -5.0, (0.172, 0.117, 0.073, 0.052), 0.95, 0.024, -5.0),
    ((-0.062, -0.112), -11.0, (0.155, 0.093, 0.053, 0.045), 0.85, 0.021, -11.0),
)

# Radius and ulna: distal joint, a point far down the forearm, adult
# half-widths and density scale (both are flatter than a cylinder).
_FOREARM_BONES = (
    ("radius", (0.048, 0.0), (0.056, 0.5), (0.036, 0.021, 0.021), 0.65),
    ("ulna", (-0.047, 0.02), (-0.052, 0.5), (0.0165, 0.012, 0.012), 0.8),
)

# Adult half-widths (epiphyseal end, waist, far end) per bone type.
_BONE_WIDTHS = {
    "metacarpal": (0.0155, 0.0105, 0.0145),
    "proximal": (0.0125, 0.0080, 0.0100),
    "middle": (0.0105, 0.0068, 0.0085),
    "distal": (0.0090, 0.0055, 0.0065),
}

_FRAME_CENTER = np.array([0.012, -0.245])
_FRAME_HALF = 0.39
_SUPERSAMPLE = 2
_SOFT_ATTENUATION = 4.5
_BONE_ATTENUATION = 60.0


def _growth(m):
    """Smooth, strictly increasing 0..1 growth factor over the maturity range."""
    return (m / MATURITY_MAX_MONTHS) ** 0.75


def _rot(deg):
    a = math.radians(deg)
    return np.array([math.sin(a), -math.cos(a)])  # unit vector, 0 deg = up


@dataclass(frozen=True)
class _Pose:
    angle_deg: float = 0.0
    scale: float = 1.0
    shift: tuple = (0.0, 0.0)  # fraction of the image size
    mirror: bool = False
    spread: float = 0.5
    finger_jitter_deg: tuple = (0.0,) * 5
    robustness: float = 1.0  # individual bone calibre, independent of age


@dataclass(frozen=True)
class _Exposure:
    soft_gain: float = 1.0
    bone_gain: float = 1.0
    fog: float = 0.0
    low: float = 0.0
    high: float = 1.0
    gamma: float = 1.0
    gradient: tuple = (0.0, 0.0)
    blur_px: float = 0.5
    noise_sd: float = 0.0
    marker: tuple | None = None  # (corner 0..3, margin fraction)
    collimation: tuple = (0.0, 0.0, 0.0, 0.0)  # band widths: top, bottom, left, right
    collimation_level: float = 0.0


def _draw_nuisance(rng):
    pose = _Pose(
        angle_deg=rng.uniform(-15.0, 15.0),
        scale=rng.uniform(0.85, 1.15),
        shift=tuple(rng.uniform(-0.05, 0.05, 2)),
        mirror=bool(rng.random() < 0.5),
        spread=rng.uniform(-0.4, 1.2),
        finger_jitter_deg=tuple(rng.normal(0.0, 2.5, 5)),
        robustness=rng.uniform(0.85, 1.2),
    )
    exposure = _Exposure(
        soft_gain=rng.uniform(0.7, 1.35),
        bone_gain=rng.uniform(0.8, 1.2),
        fog=rng.uniform(0.0, 0.15),
        low=rng.uniform(-0.1, 0.12),
        high=rng.uniform(0.7, 1.05),
        gamma=math.exp(rng.uniform(math.log(0.6), math.log(1.7))),
        gradient=tuple(rng.uniform(-0.12, 0.12, 2)),
        blur_px=rng.uniform(0.3, 1.1),
        noise_sd=rng.uniform(0.004, 0.03),
        marker=(int(rng.integers(4)), rng.uniform(0.02, 0.06)),
        collimation=tuple(np.where(rng.random(4) < 0.35, rng.uniform(0.0, 0.14, 4), 0.0)),
        collimation_level=rng.uniform(0.5, 0.95),
    )
    return pose, exposure


class _Canvas:
    """Supersampled pixel grid with canonical coordinates for every pixel."""

    def __init__(self, img_size, pose):
        n = img_size * _SUPERSAMPLE
        a = math.radians(pose.angle_deg)
        k = n / (2.0 * _FRAME_HALF) * pose.scale
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        flip = np.diag([-1.0 if pose.mirror else 1.0, 1.0])
        self.forward = k * rot @ flip
        self.offset = n / 2.0 + n * np.asarray(pose.shift) - self.forward @ _FRAME_CENTER
        inverse = np.linalg.inv(self.forward)
        pix = np.arange(n) + 0.5
        px, py = np.meshgrid(pix - self.offset[0], pix - self.offset[1])
        self.u = inverse[0, 0] * px + inverse[0, 1] * py
        self.v = inverse[1, 0] * px + inverse[1, 1] * py
        self.n = n
        self.soft = np.zeros((n, n))
        self.bone = np.zeros((n, n))
        self.mask = np.zeros((n, n), bool)

    def region(self, centre, radius):
        """Slices covering a canonical disc, or None when it is off-canvas."""
        c = self.forward @ np.asarray(centre) + self.offset
        r = radius * abs(np.linalg.det(self.forward)) ** 0.5 + 1.0
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int), self.n)
        if (hi <= lo).any():
            return None
        return slice(lo[1], hi[1]), slice(lo[0], hi[0])

    def coords(self, sl):
        return self.u[sl], self.v[sl]


def _ellipse_q(u, v, centre, semi, angle_deg, power=2):
    """Normalised radius ``|x/a|^p + |y/b|^p`` in a rotated (super)ellipse."""
    a = math.radians(angle_deg)
    du, dv = u - centre[0], v - centre[1]
    x = du * math.cos(a) + dv * math.sin(a)
    y = -du * math.sin(a) + dv * math.cos(a)
    return np.abs(x / semi[0]) ** power + np.abs(y / semi[1]) ** power


def _dome(q, thickness):
    return 2.0 * thickness * np.sqrt(np.clip(1.0 - q, 0.0, None))


def _soft_capsule(canvas, p0, p1, radius, thickness, radius_end=None):
    p0, p1 = np.asarray(p0), np.asarray(p1)
    radius_end = radius if radius_end is None else radius_end
    sl = canvas.region((p0 + p1) / 2, np.linalg.norm(p1 - p0) / 2 + max(radius, radius_end))
    if sl is None:
        return
    u, v = canvas.coords(sl)
    d = p1 - p0
    t = np.clip(((u - p0[0]) * d[0] + (v - p0[1]) * d[1]) / (d @ d), 0.0, 1.0)
    dist2 = (u - p0[0] - t * d[0]) ** 2 + (v - p0[1] - t * d[1]) ** 2
    r = radius + (radius_end - radius) * t
    np.maximum(canvas.soft[sl], _dome(dist2 / r**2, thickness), out=canvas.soft[sl])


def _soft_ellipse(canvas, centre, semi, angle_deg, thickness, power=2):
    sl = canvas.region(centre, max(semi) * 1.42)  # covers superellipse corners
    if sl is None:
        return
    u, v = canvas.coords(sl)
    q = _ellipse_q(u, v, centre, semi, angle_deg, power)
    np.maximum(canvas.soft[sl], _dome(q, thickness), out=canvas.soft[sl])


def _add_mask_ellipse(canvas, centre, semi, angle_deg):
    sl = canvas.region(centre, max(semi))
    if sl is None:
        return
    u, v = canvas.coords(sl)
    canvas.mask[sl] |= _ellipse_q(u, v, centre, semi, angle_deg) <= 1.0


def _epiphysis_stage(m, timing):
    """Progress 0..1 from appearance to fusion, or None before appearance."""
    onset, fused = timing
    if m < onset:
        return None
    return min((m - onset) / (fused - onset), 1.0)


def _long_bone(canvas, m, joint, far, widths, timing, depth=1.0):
    """Tubular bone from its epiphyseal joint to its far joint.

    The shaft leaves room at the epiphyseal end for the epiphysis and the
    growth plate. The epiphysis appears small, widens until it caps the
    metaphysis, and the plate closes and is bridged over (fusion). ``depth``
    scales the density of bones that are flatter than a cylinder.
    """
    g = _growth(m)
    joint, far = np.asarray(joint, float), np.asarray(far, float)
    axis = far - joint
    length = np.linalg.norm(axis)
    axis /= length
    w_end, w_mid, w_far = (w * (0.65 + 0.35 * g) for w in widths)
    cartilage = w_end * (1.6 - 1.3 * g)
    stage = _epiphysis_stage(m, timing)
    if stage is None:
        epi_height, plate = 0.0, 1.05 * w_end
    else:
        size = stage**0.6
        epi_height = w_end * (0.25 + 0.55 * size)
        epi_half_width = w_end * min(0.3 + 0.8 * size, 1.08)
        plate = w_end * (0.8 * (1.0 - stage / 0.92) if stage < 0.92 else -0.4 * (stage - 0.92) / 0.08)
    start = joint + axis * (cartilage + epi_height + plate)
    end = far - axis * 0.6 * cartilage
    mask_centre = joint + axis * (cartilage + 0.65 * w_end)
    _add_mask_ellipse(canvas, mask_centre, (1.45 * w_end, 1.05 * w_end), _axis_angle(axis))

    sl = canvas.region((joint + far) / 2, length / 2 + 2 * w_end)
    if sl is None:
        return
    u, v = canvas.coords(sl)
    shaft_len = np.linalg.norm(end - start)
    s = (u - start[0]) * axis[0] + (v - start[1]) * axis[1]
    q = -(u - start[0]) * axis[1] + (v - start[1]) * axis[0]
    t = np.clip(s / shaft_len, 0.0, 1.0)
    radius = w_mid + np.where(t < 0.5, (w_end - w_mid) * (1 - 2 * t) ** 2, (w_far - w_mid) * (2 * t - 1) ** 2)
    beyond = np.where(s < 0, -s * 3.0, np.where(s > shaft_len, s - shaft_len, 0.0))
    rho2 = q * q + beyond * beyond
    medulla = radius * (0.78 - 0.2 * g)
    density = 2.0 * (np.sqrt(np.clip(radius**2 - rho2, 0, None)) - 0.55 * np.sqrt(np.clip(medulla**2 - rho2, 0, None)))
    if stage is not None:
        centre = joint + axis * (cartilage + epi_height / 2)
        qe = _ellipse_q(u, v, centre, (epi_height / 2, epi_half_width), _axis_angle(axis) + 90.0)
        density = np.maximum(density, 0.9 * _dome(qe, epi_half_width))
    canvas.bone[sl] += depth * density


def _axis_angle(axis):
    """Rotation (deg) that maps the ellipse's second semi-axis onto ``axis``."""
    return math.degrees(math.atan2(axis[1], axis[0])) - 90.0


def _carpals(canvas, m):
    for _, onset, centre, semi, angle in _CARPALS:
        _add_mask_ellipse(canvas, centre, (semi[0] * 1.25, semi[1] * 1.25), angle)
        if m < onset:
            continue
        frac = 0.22 + 0.78 * min((m - onset) / (_CARPAL_MATURE_MONTHS - onset), 1.0) ** 0.5
        mean = (semi[0] + semi[1]) / 2
        axes = tuple(frac * (mean + (s - mean) * frac) for s in semi)
        _bone_ellipse(canvas, centre, axes, angle)


def _bone_ellipse(canvas, centre, semi, angle):
    sl = canvas.region(centre, max(semi))
    if sl is None:
        return
    u, v = canvas.coords(sl)
    canvas.bone[sl] += _dome(_ellipse_q(u, v, centre, semi, angle), 1.1 * min(semi))


def _sesamoid(canvas, m, mcp, mc_dir):
    """Adductor sesamoid on the ulnar side of the thumb's metacarpal head."""
    centre = mcp - 0.012 * mc_dir + 0.011 * np.array([mc_dir[1], -mc_dir[0]])
    _add_mask_ellipse(canvas, centre, (0.011, 0.012), 0.0)
    if m >= _SESAMOID_ONSET_MONTHS:
        frac = 0.6 + 0.4 * min((m - _SESAMOID_ONSET_MONTHS) / 60.0, 1.0)
        _bone_ellipse(canvas, centre, (0.0065 * frac, 0.0075 * frac), 0.0)


def _draw_hand(canvas, m, pose):
    """Draw soft tissue, bones and the age-informative mask into ``canvas``."""
    g = _growth(m)
    _soft_capsule(canvas, (0.005, -0.03), (0.012, 0.6), 0.095, 0.05, radius_end=0.108)
    _soft_ellipse(canvas, (0.0, -0.185), (0.118, 0.17), 0.0, 0.04, power=4)
    _soft_ellipse(canvas, (0.095, -0.125), (0.052, 0.09), 32.0, 0.035)

    for name, joint, far, widths, depth in _FOREARM_BONES:
        widths = tuple(pose.robustness * w for w in widths)
        _long_bone(canvas, m, joint, far, widths, _EPIPHYSIS_TIMING[name], depth)
    _carpals(canvas, m)

    for ray, (base, angle, lengths, wscale, soft_r, spread) in enumerate(_RAYS):
        finger_angle = angle + spread * pose.spread + pose.finger_jitter_deg[ray]
        base = np.asarray(base)
        thumb = ray == 0
        mc_dir = _rot(finger_angle if thumb else angle)
        mcp = base + lengths[0] * mc_dir
        wscale *= pose.robustness
        mc_widths = tuple(wscale * w for w in _BONE_WIDTHS["metacarpal"])
        if thumb:
            _long_bone(canvas, m, base, mcp, mc_widths, _EPIPHYSIS_TIMING["metacarpal1"])
            _sesamoid(canvas, m, mcp, mc_dir)
        else:
            _long_bone(canvas, m, mcp, base, mc_widths, _EPIPHYSIS_TIMING["metacarpal"])
        phalanges = ("proximal", "distal") if thumb else ("proximal", "middle", "distal")
        f_dir = _rot(finger_angle)
        joint = mcp
        for name, length in zip(phalanges, lengths[1:], strict=False):
            nxt = joint + length * f_dir
            widths = tuple(wscale * w for w in _BONE_WIDTHS[name])
            _long_bone(canvas, m, joint, nxt, widths, _EPIPHYSIS_TIMING[name])
            joint = nxt
        soft_r *= 1.12 - 0.12 * g  # chubbier fingers when young
        if thumb:
            _soft_capsule(canvas, base, joint + 0.006 * f_dir, 1.6 * soft_r, soft_r, radius_end=soft_r)
        else:
            _soft_capsule(canvas, mcp - 0.02 * f_dir, joint + 0.006 * f_dir, soft_r, soft_r)


# ----------------------------------------------------------------------------
# Image formation
# ----------------------------------------------------------------------------

_GLYPHS = {
    "L": ("1000", "1000", "1000", "1000", "1000", "1111"),
    "R": ("1110", "1001", "1001", "1110", "1010", "1001"),
}


def _downsample(a):
    n = a.shape[0] // _SUPERSAMPLE
    return a.reshape(n, _SUPERSAMPLE, n, _SUPERSAMPLE).mean(axis=(1, 3))


def _gaussian_blur(img, sigma):
    radius = max(1, int(math.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    for axis in (0, 1):
        padded = np.pad(img, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        n = img.shape[axis]
        img = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(kernel))
    return img


def _draw_marker(img, letter, corner, margin):
    """Bright lead-marker letter on a lighter plate in one image corner."""
    size = img.shape[0]
    cell = max(1, round(size / 64))
    glyph = np.array([[c == "1" for c in row] for row in _GLYPHS[letter]])
    block = np.kron(glyph, np.ones((cell, cell), bool))
    block = np.pad(block, cell)
    h, w = block.shape
    off = max(1, int(margin * size))
    r0 = off if corner < 2 else size - off - h
    c0 = off if corner % 2 == 0 else size - off - w
    img[r0 : r0 + h, c0 : c0 + w] = np.where(block, 0.97, 0.45)


def _collimate(img, widths, level):
    """Blend unexposed (bright) collimator bands into the image borders."""
    size = img.shape[0]
    i = np.arange(size)
    top, bottom, left, right = (w * size for w in widths)
    rows = np.maximum(np.clip(top - i, 0, 1), np.clip(i + 1 - (size - bottom), 0, 1))
    cols = np.maximum(np.clip(left - i, 0, 1), np.clip(i + 1 - (size - right), 0, 1))
    cover = np.maximum(rows[:, None], cols[None, :])
    return img * (1.0 - cover) + level * cover


def _expose(canvas, exposure, letter, rng):
    """Turn tissue thickness into a displayed radiograph in [0, 1]."""
    attenuation = (
        _SOFT_ATTENUATION * exposure.soft_gain * canvas.soft + _BONE_ATTENUATION * exposure.bone_gain * canvas.bone
    )
    img = _downsample(1.0 - np.exp(-attenuation))
    img = _gaussian_blur(img, exposure.blur_px)
    size = img.shape[0]
    ramp = np.linspace(-1.0, 1.0, size)
    img = img * (1.0 + exposure.gradient[0] * ramp[None, :] + exposure.gradient[1] * ramp[:, None])
    img = exposure.fog + (1.0 - exposure.fog) * img
    img = np.clip((img - exposure.low) / (exposure.high - exposure.low), 0.0, 1.0) ** exposure.gamma
    img = _collimate(img, exposure.collimation, exposure.collimation_level)
    if exposure.marker is not None:
        _draw_marker(img, letter, *exposure.marker)
    if exposure.noise_sd > 0:
        img = img + rng.normal(0.0, exposure.noise_sd, img.shape)
    return img


def render_hand(bone_age_months, male, maturity_offset_months, rng, img_size=128, nuisance=True):
    """Render one synthetic hand radiograph and its age-informative mask.

    Args:
        bone_age_months: Bone-age label in months.
        male: True for a boy; girls are drawn FEMALE_MATURITY_RATE times
            more mature at the same label.
        maturity_offset_months: The child's maturity offset in months
            (positive looks older).
        rng: ``numpy.random.Generator`` for the nuisance (pose, exposure,
            noise, marker). Unused, and may be None, when ``nuisance`` is False.
        img_size: Side length S of the square output.
        nuisance: If False, draw a canonical upright left hand with a fixed
            exposure and no noise or marker (for measuring anatomy).

    Returns:
        ``(image, mask)``: uint8 arrays of shape (S, S). The mask is 0/255 and
        marks the carpal ossification sites, the epiphyses with their growth
        plates and the sesamoid site, whether or not they are ossified yet.

    Example:
        >>> img, mask = render_hand(120.0, True, 0.0, np.random.default_rng(0))
        >>> img.shape, img.dtype, np.unique(mask).tolist()
        ((128, 128), dtype('uint8'), [0, 255])
    """
    if img_size < MIN_IMG_SIZE:
        raise ValueError(f"img_size must be >= {MIN_IMG_SIZE}, got {img_size}")
    pose, exposure = _draw_nuisance(rng) if nuisance else (_Pose(), _Exposure())
    m = float(maturity_months(bone_age_months, male, maturity_offset_months))
    canvas = _Canvas(img_size, pose)
    _draw_hand(canvas, m, pose)
    img = _expose(canvas, exposure, "R" if pose.mirror else "L", rng)
    image = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    mask = np.where(_downsample(canvas.mask.astype(float)) >= 0.5, 255, 0).astype(np.uint8)
    return image, mask


# ----------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------


def sample_child(seed, split, index):
    """Label, sex, offset and nuisance generator of one image.

    Every image owns ``numpy.random.default_rng([seed, split_code, index])``,
    so any image can be regenerated alone and the result does not depend on
    the order or the process it was rendered in.

    Args:
        seed: Dataset seed (non-negative int).
        split: One of "train", "val", "test".
        index: Position of the image within its split (0-based).

    Returns:
        ``(bone_age_months, male, maturity_offset_months, rng)``; the returned
        generator continues the same stream and drives the nuisance.

    Example:
        >>> age, male, offset, rng = sample_child(42, "train", 0)
        >>> 1.0 <= age <= 228.0
        True
    """
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    grid = _age_grid()
    age = float(grid[rng.integers(len(grid))])
    male = bool(rng.random() < MALE_PROBABILITY)
    offset = float(rng.normal(0.0, MATURITY_OFFSET_SD_MONTHS))
    return age, male, offset, rng


def _render_job(job):
    """Render and save one image and its mask; runs in worker processes."""
    root, split, index, image_id, seed, img_size = job
    age, male, offset, rng = sample_child(seed, split, index)
    image, mask = render_hand(age, male, offset, rng, img_size)
    image_dir = _SPLIT_FILES[split][1]
    Image.fromarray(image).save(os.path.join(root, image_dir, f"{image_id}.png"))
    Image.fromarray(mask).save(os.path.join(root, MASKS_DIR, f"{image_id}.png"))
    return {
        "id": image_id,
        "split": split,
        "boneage": age,
        "male": male,
        "maturity_offset_months": offset,
        "maturity_months": float(maturity_months(age, male, offset)),
    }


def _write_split_csv(root, split, rows):
    ids = [r["id"] for r in rows]
    ages = [r["boneage"] for r in rows]
    males = [r["male"] for r in rows]
    if split == "train":
        table = {"id": ids, "boneage": ages, "male": males}
    elif split == "val":
        table = {"Image ID": ids, "male": males, "Bone Age (months)": ages}
    else:
        table = {"Case ID": ids, "Sex": ["M" if m else "F" for m in males], "Ground truth bone age (months)": ages}
    pd.DataFrame(table).to_csv(os.path.join(root, _SPLIT_FILES[split][0]), index=False)


def _write_json_atomic(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def _check_positive(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _prepare_destination(out, overwrite):
    """Refuse to clobber a finished dataset or unrelated files."""
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if (out / MANIFEST).exists():
        if not overwrite:
            raise FileExistsError(
                f"{out} already holds a phantom dataset ({MANIFEST}); pass overwrite=True (--overwrite) to replace it"
            )
    elif any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty and holds no {MANIFEST}; refusing to replace it")


def _render_all(root, jobs, workers):
    # A pool costs about a second to start, so small runs stay in-process.
    if workers > 1 and len(jobs) >= 64:
        # spawn: workers start clean even if the caller has threads (e.g. TF).
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            return pool.map(_render_job, jobs, chunksize=16)
    return [_render_job(job) for job in jobs]


def make_dataset(out_dir, n_train=800, n_val=200, n_test=200, img_size=128, seed=42, overwrite=False, workers=2):
    """Write a phantom dataset in the RSNA Pediatric Bone Age layout.

    The dataset is built in a hidden temporary sibling of ``out_dir`` and
    renamed into place only when complete, so an interrupted run never leaves
    a directory with a ``manifest.json``. Ids run 1..n_train for train and
    continue through val and test. Same arguments give byte-identical files.

    Args:
        out_dir: Destination directory.
        n_train: Number of training images (>= 1).
        n_val: Number of validation images (>= 1).
        n_test: Number of test images (>= 1).
        img_size: Image side in pixels (>= MIN_IMG_SIZE).
        seed: Non-negative dataset seed.
        overwrite: Replace an existing phantom dataset at ``out_dir``.
        workers: Rendering processes; the output does not depend on it.
            Workers are spawned, so a script that calls this with
            ``workers > 1`` needs the usual ``if __name__ == "__main__":``
            guard.

    Returns:
        The manifest dict that was written to ``out_dir/manifest.json``.

    Raises:
        ValueError: On an invalid argument.
        FileExistsError: If ``out_dir`` holds a dataset and ``overwrite`` is
            False, or holds other files.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "phantom"
        >>> manifest = make_dataset(out, n_train=8, n_val=4, n_test=4, img_size=64)
        >>> manifest["splits"]["val"]["count"], (out / "manifest.json").exists()
        (4, True)
    """
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split, n in counts.items():
        _check_positive(f"n_{split}", n)
    _check_positive("img_size", img_size, MIN_IMG_SIZE)
    _check_positive("seed", seed, 0)
    _check_positive("workers", workers)
    out = Path(out_dir)
    _prepare_destination(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)

    root = tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    try:
        for sub in (TRAIN_IMAGES, VAL_DIR, TEST_DIR, MASKS_DIR):
            os.makedirs(os.path.join(root, sub))
        jobs, next_id = [], 1
        for split in SPLITS:
            for index in range(counts[split]):
                jobs.append((root, split, index, next_id, int(seed), int(img_size)))
                next_id += 1
        rows = _render_all(root, jobs, workers)
        truth = pd.DataFrame(rows).round({"maturity_offset_months": 4, "maturity_months": 4})
        truth.to_csv(os.path.join(root, TRUTH_CSV), index=False)
        manifest = _manifest(rows, counts, img_size, seed)
        for split in SPLITS:
            _write_split_csv(root, split, [r for r in rows if r["split"] == split])
        _write_json_atomic(os.path.join(root, MANIFEST), manifest)
        _prepare_destination(out, overwrite)  # again: another run may have finished meanwhile
        _swap_into_place(Path(root), out)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return manifest


def _swap_into_place(built, out):
    os.chmod(built, 0o755)  # mkdtemp creates 0700
    if not out.exists():
        os.rename(built, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / out.name)
    os.rename(built, out)
    shutil.rmtree(old)


def _manifest(rows, counts, img_size, seed):
    frame = pd.DataFrame(rows)
    splits = {}
    for split in SPLITS:
        part = frame[frame["split"] == split]
        csv, image_dir = _SPLIT_FILES[split]
        splits[split] = {
            "count": int(len(part)),
            "csv": csv,
            "image_dir": image_dir,
            "first_id": int(part["id"].min()),
            "last_id": int(part["id"].max()),
            "age_range_months": [float(part["boneage"].min()), float(part["boneage"].max())],
            "male_fraction": round(float(part["male"].mean()), 4),
            "error_floor_mae_months": round(error_floor_mae(part["boneage"], part["male"], part["maturity_months"]), 4),
        }
    return {
        "generator": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "arguments": {
            "n_train": int(counts["train"]),
            "n_val": int(counts["val"]),
            "n_test": int(counts["test"]),
            "img_size": int(img_size),
            "seed": int(seed),
        },
        "image_format": "8-bit grayscale PNG",
        "masks_dir": MASKS_DIR,
        "truth_csv": TRUTH_CSV,
        "splits": splits,
        "age_prior_months": [MIN_AGE_MONTHS, float(MAX_AGE_MONTHS)],
        "male_probability": MALE_PROBABILITY,
        "maturity_offset_sd_months": MATURITY_OFFSET_SD_MONTHS,
        "female_maturity_rate": FEMALE_MATURITY_RATE,
        "maturity_max_months": MATURITY_MAX_MONTHS,
        "error_floor_mae_months": round(error_floor_mae(frame["boneage"], frame["male"], frame["maturity_months"]), 4),
        "error_floor_expected_mae_months": round(expected_error_floor_mae(), 4),
        "error_floor_method": (
            "MAE of the posterior median of the label given the rendered maturity and sex "
            "(uniform label grid prior, Gaussian maturity offset, clipped maturity range), "
            "over this dataset's images; 'expected' integrates the same over the generator."
        ),
    }

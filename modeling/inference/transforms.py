"""Random geometric views of images or volumes for test-time augmentation.

Each transform draws, from a seeded generator, one matrix per view that maps output pixel
coordinates to input coordinates (3x3 for images ``(x, y, 1)``, 4x4 for volumes
``(x, y, z, 1)``; built by `modeling.geometry`). The matrices of a list of transforms are
multiplied into one affine warp per view; `apply_views` warps the inputs with it and
`undo_views` warps per-pixel predictions back with its inverse.
"""

import keras
import numpy as np

from modeling import geometry


class ViewTransform:
    """Base class: a family of random affine maps, sampled ``n`` at a time.

    Subclasses implement ``matrices(rng, n, *shape)`` for a spatial ``shape`` ``(H, W)``
    (returning ``(n, 3, 3)``) or ``(D, H, W)`` (returning ``(n, 4, 4)``), mapping output to
    input pixel coordinates. Settings about the depth axis act on volumes only.
    """

    def matrices(self, rng, n, *shape):
        raise NotImplementedError

    def get_config(self):
        return dict(self._config)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="medfusion")
class Flip(ViewTransform):
    """Mirror each view with probability ``probability``.

    A hand radiograph may be mirrored left to right (a left hand looks like a
    right one); vertical flips are off by default.

    Args:
        horizontal: allow left-right mirroring.
        vertical: allow top-bottom mirroring.
        probability: chance that a view is mirrored (per direction).
        depth: volumes only: allow mirroring along the depth (slice) axis.

    Example:

    >>> Flip(probability=1.0).matrices(np.random.default_rng(0), 1, 4, 6)[0].tolist()
    [[-1.0, 0.0, 5.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    >>> Flip(horizontal=False, depth=True, probability=1.0).matrices(np.random.default_rng(0), 1, 3, 4, 6)[0, 2].tolist()
    [0.0, 0.0, -1.0, 2.0]
    """

    def __init__(self, horizontal=True, vertical=False, probability=0.5, depth=False):
        if not (horizontal or vertical or depth):
            raise ValueError("Flip needs `horizontal`, `vertical` or `depth` (or several).")
        if not 0 <= probability <= 1:
            raise ValueError(f"`probability` must be in [0, 1]; got {probability!r}.")
        self._config = {
            "horizontal": bool(horizontal),
            "vertical": bool(vertical),
            "probability": float(probability),
            "depth": bool(depth),
        }

    def matrices(self, rng, n, *shape):
        enabled = (self._config["horizontal"], self._config["vertical"], self._config["depth"])[: len(shape)]
        # one draw per axis, enabled or not, so that the views do not depend on the other settings
        flips = np.stack([(rng.random(n) < self._config["probability"]) & on for on in enabled], axis=1)
        return geometry.affine_matrix(shape, flip=flips)


@keras.saving.register_keras_serializable(package="medfusion")
class Rotation(ViewTransform):
    """Rotate each view about the centre by an angle drawn from [-max_degrees, max_degrees].

    Images turn in their plane; volumes about the depth axis (every slice alike) or, with
    ``all_axes``, about each of the three axes by its own angle.

    Args:
        max_degrees: largest rotation, in degrees (0 to 180).
        all_axes: volumes only: rotate about all three axes.

    Example:

    >>> Rotation(10.0).matrices(np.random.default_rng(0), 3, 32, 32).shape
    (3, 3, 3)
    >>> Rotation(10.0, all_axes=True).matrices(np.random.default_rng(0), 3, 8, 32, 32).shape
    (3, 4, 4)
    """

    def __init__(self, max_degrees=5.0, all_axes=False):
        if not 0 <= max_degrees <= 180:
            raise ValueError(f"`max_degrees` must be in [0, 180]; got {max_degrees!r}.")
        self._config = {"max_degrees": float(max_degrees), "all_axes": bool(all_axes)}

    def matrices(self, rng, n, *shape):
        size = (n, 3) if self._config["all_axes"] and len(shape) == 3 else n
        angles = np.deg2rad(rng.uniform(-1.0, 1.0, size) * self._config["max_degrees"])
        return geometry.affine_matrix(shape, rotation=angles)


class _FractionTransform(ViewTransform):
    """A transform whose one setting is ``max_fraction`` in [0, 1)."""

    def __init__(self, max_fraction=0.05):
        if not 0 <= max_fraction < 1:
            raise ValueError(f"`max_fraction` must be in [0, 1); got {max_fraction!r}.")
        self._config = {"max_fraction": float(max_fraction)}


@keras.saving.register_keras_serializable(package="medfusion")
class Shift(_FractionTransform):
    """Translate each view by up to ``max_fraction`` of its size along each axis.

    Args:
        max_fraction: largest shift as a fraction of the image size, in [0, 1).

    Example:

    >>> Shift(0.1).matrices(np.random.default_rng(0), 2, 32, 32).shape
    (2, 3, 3)
    """

    def matrices(self, rng, n, *shape):
        shifts = rng.uniform(-1.0, 1.0, (n, len(shape))) * self._config["max_fraction"]  # x, y[, z]
        return geometry.affine_matrix(shape, shift=-shifts * np.array(shape[::-1], "float64"))


@keras.saving.register_keras_serializable(package="medfusion")
class Zoom(_FractionTransform):
    """Scale each view about the centre by a factor drawn from [1 - max_fraction, 1 + max_fraction].

    Args:
        max_fraction: largest relative zoom, in [0, 1).

    Example:

    >>> Zoom(0.1).matrices(np.random.default_rng(0), 2, 32, 32).shape
    (2, 3, 3)
    """

    def matrices(self, rng, n, *shape):
        factors = 1.0 + rng.uniform(-1.0, 1.0, n) * self._config["max_fraction"]
        return geometry.affine_matrix(shape, scale=1.0 / factors)  # factor > 1 magnifies


DEFAULT_TRANSFORMS = (Flip(), Rotation(5.0), Shift(0.05), Zoom(0.05))


def sample_views(transforms, n, seed, *shape):
    """Draw ``n`` views: one composed affine warp each, as `modeling.geometry.as_vectors` flattens it.

    Args:
        transforms: sequence of `ViewTransform`; empty gives ``n`` identity views.
        n: number of views.
        seed: integer seed; the same seed gives the same views.
        *shape: spatial size in pixels: ``height, width`` for images, ``depth, height, width``
            for volumes.

    Returns:
        float32 array ``(n, 8)`` for images (the form of `affine_transform`), ``(n, 15)`` for volumes.

    Example:

    >>> sample_views([], 2, 0, 8, 8).tolist()
    [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]
    >>> sample_views([Rotation(10.0)], 2, 0, 4, 8, 8).shape
    (2, 15)
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"The number of views `n` must be a positive integer; got {n!r}.")
    if len(shape) not in (2, 3):
        raise ValueError(f"Give the spatial size as height, width or depth, height, width; got {shape!r}.")
    rng = np.random.default_rng(seed)
    matrices = [np.tile(np.eye(len(shape) + 1), (int(n), 1, 1))]
    for transform in transforms:
        if not isinstance(transform, ViewTransform):
            raise TypeError(f"Expected ViewTransform instances (Flip, Rotation, ...); got {transform!r}.")
        matrices.append(transform.matrices(rng, int(n), *shape))
    return geometry.as_vectors(geometry.compose(*matrices)).astype("float32")


def apply_views(images, views, fill_mode="nearest"):
    """Warp every image (or volume) with every view, stacked view by view.

    Args:
        images: array ``(batch, H, W, C)`` or ``(batch, D, H, W, C)``.
        views: array ``(n, 8)`` or ``(n, 15)`` from `sample_views`.
        fill_mode: how pixels outside the image are filled ("nearest",
            "constant", "reflect", "wrap" or "mirror").

    Returns:
        Tensor ``(n * batch, ...)``: all images under view 0, then view 1, ...

    Example:

    >>> images = np.arange(12, dtype="float32").reshape(1, 2, 2, 3)
    >>> views = sample_views([Flip(probability=1.0)], 1, 0, 2, 2)
    >>> flipped = keras.ops.convert_to_numpy(apply_views(images, views))
    >>> bool((flipped == images[:, :, ::-1]).all())
    True
    """
    images = keras.ops.convert_to_tensor(images, dtype="float32")
    stacked = keras.ops.concatenate([images] * len(views), axis=0)
    return _warp_stacked(stacked, geometry.as_matrices(np.asarray(views, "float32")), "bilinear", fill_mode)


def undo_views(maps, views, shape=None, fill_mode="nearest"):
    """Warp per-pixel predictions of the views back onto the original images (the inverse warps).

    Args:
        maps: ``(n * batch, h, w, K)`` or ``(n * batch, d, h, w, K)``, stacked as `apply_views`
            stacks; any spatial size (the warps are rescaled to it).
        views: the ``(n, 8)`` or ``(n, 15)`` views from `sample_views`.
        shape: spatial size of the images the views were drawn for; ``None``: the maps' size.
        fill_mode: how points that no view saw are filled (bilinear interpolation).

    Returns:
        Tensor like ``maps``, every view aligned with the original images.

    Example:

    >>> images = np.random.default_rng(0).random((2, 4, 4, 1)).astype("float32")
    >>> views = sample_views([Flip(probability=1.0)], 3, 0, 4, 4)
    >>> back = keras.ops.convert_to_numpy(undo_views(apply_views(images, views), views))
    >>> bool(np.allclose(back, np.concatenate([images] * 3)))
    True
    """
    spatial = tuple(maps.shape[1:-1])
    matrices = geometry.invert(geometry.as_matrices(np.asarray(views, "float64")))
    matrices = geometry.rescale(matrices, spatial if shape is None else tuple(shape), spatial)
    return _warp_stacked(maps, matrices.astype("float32"), "bilinear", fill_mode)


def _warp_stacked(stacked, matrices, interpolation, fill_mode):
    """Warp ``(n * batch, ...)`` samples, stacked view by view, with the ``n`` view matrices."""
    return geometry.warp(stacked, np.repeat(matrices, len(stacked) // len(matrices), axis=0), interpolation, fill_mode)

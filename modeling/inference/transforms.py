"""Random geometric views of an image for test-time augmentation.

Each transform draws, from a seeded generator, one 3x3 matrix per view that
maps output pixel coordinates ``(x, y, 1)`` to input coordinates. The
matrices of a list of transforms are multiplied into one affine warp per
view, applied with `keras.ops.image.affine_transform` (any backend).
"""

import keras
import numpy as np


class ViewTransform:
    """Base class: a family of random affine maps, sampled ``n`` at a time.

    Subclasses implement ``matrices(rng, n, height, width)`` returning an
    array ``(n, 3, 3)`` that maps output to input pixel coordinates.
    """

    def matrices(self, rng, n, height, width):
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

    Example:

    >>> Flip(probability=1.0).matrices(np.random.default_rng(0), 1, 4, 6)[0].tolist()
    [[-1.0, 0.0, 5.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """

    def __init__(self, horizontal=True, vertical=False, probability=0.5):
        if not (horizontal or vertical):
            raise ValueError("Flip needs `horizontal` or `vertical` (or both).")
        if not 0 <= probability <= 1:
            raise ValueError(f"`probability` must be in [0, 1]; got {probability!r}.")
        self._config = {
            "horizontal": bool(horizontal),
            "vertical": bool(vertical),
            "probability": float(probability),
        }

    def matrices(self, rng, n, height, width):
        result = np.tile(np.eye(3), (n, 1, 1))
        directions = ((0, self._config["horizontal"], width), (1, self._config["vertical"], height))
        for axis, enabled, size in directions:
            flipped = rng.random(n) < self._config["probability"]
            if enabled:
                result[flipped, axis, axis] = -1.0
                result[flipped, axis, 2] = size - 1.0
        return result


@keras.saving.register_keras_serializable(package="medfusion")
class Rotation(ViewTransform):
    """Rotate each view about the image centre by an angle drawn from [-max_degrees, max_degrees].

    Args:
        max_degrees: largest rotation, in degrees (0 to 180).

    Example:

    >>> Rotation(10.0).matrices(np.random.default_rng(0), 3, 32, 32).shape
    (3, 3, 3)
    """

    def __init__(self, max_degrees=5.0):
        if not 0 <= max_degrees <= 180:
            raise ValueError(f"`max_degrees` must be in [0, 180]; got {max_degrees!r}.")
        self._config = {"max_degrees": float(max_degrees)}

    def matrices(self, rng, n, height, width):
        angles = np.deg2rad(rng.uniform(-1.0, 1.0, n) * self._config["max_degrees"])
        rotation = np.tile(np.eye(3), (n, 1, 1))
        rotation[:, 0, 0] = rotation[:, 1, 1] = np.cos(angles)
        rotation[:, 0, 1] = -np.sin(angles)
        rotation[:, 1, 0] = np.sin(angles)
        return _about_centre(rotation, height, width)


@keras.saving.register_keras_serializable(package="medfusion")
class Shift(ViewTransform):
    """Translate each view by up to ``max_fraction`` of the width and of the height.

    Args:
        max_fraction: largest shift as a fraction of the image size, in [0, 1).

    Example:

    >>> Shift(0.1).matrices(np.random.default_rng(0), 2, 32, 32).shape
    (2, 3, 3)
    """

    def __init__(self, max_fraction=0.05):
        if not 0 <= max_fraction < 1:
            raise ValueError(f"`max_fraction` must be in [0, 1); got {max_fraction!r}.")
        self._config = {"max_fraction": float(max_fraction)}

    def matrices(self, rng, n, height, width):
        shifts = rng.uniform(-1.0, 1.0, (n, 2)) * self._config["max_fraction"]
        result = np.tile(np.eye(3), (n, 1, 1))
        result[:, 0, 2] = -shifts[:, 0] * width
        result[:, 1, 2] = -shifts[:, 1] * height
        return result


@keras.saving.register_keras_serializable(package="medfusion")
class Zoom(ViewTransform):
    """Scale each view about the centre by a factor drawn from [1 - max_fraction, 1 + max_fraction].

    Args:
        max_fraction: largest relative zoom, in [0, 1).

    Example:

    >>> Zoom(0.1).matrices(np.random.default_rng(0), 2, 32, 32).shape
    (2, 3, 3)
    """

    def __init__(self, max_fraction=0.05):
        if not 0 <= max_fraction < 1:
            raise ValueError(f"`max_fraction` must be in [0, 1); got {max_fraction!r}.")
        self._config = {"max_fraction": float(max_fraction)}

    def matrices(self, rng, n, height, width):
        factors = 1.0 + rng.uniform(-1.0, 1.0, n) * self._config["max_fraction"]
        scale = np.tile(np.eye(3), (n, 1, 1))
        scale[:, 0, 0] = scale[:, 1, 1] = 1.0 / factors
        return _about_centre(scale, height, width)


DEFAULT_TRANSFORMS = (Flip(), Rotation(5.0), Shift(0.05), Zoom(0.05))


def sample_views(transforms, n, seed, height, width):
    """Draw ``n`` views: one composed affine warp each, in the 8-number form of `affine_transform`.

    Args:
        transforms: sequence of `ViewTransform`; empty gives ``n`` identity views.
        n: number of views.
        seed: integer seed; the same seed gives the same views.
        height, width: image size in pixels.

    Returns:
        float32 array ``(n, 8)``.

    Example:

    >>> sample_views([], 2, seed=0, height=8, width=8).tolist()
    [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"The number of views `n` must be a positive integer; got {n!r}.")
    rng = np.random.default_rng(seed)
    composed = np.tile(np.eye(3), (int(n), 1, 1))
    for transform in transforms:
        if not isinstance(transform, ViewTransform):
            raise TypeError(f"Expected ViewTransform instances (Flip, Rotation, ...); got {transform!r}.")
        composed = composed @ transform.matrices(rng, int(n), height, width)
    return composed.reshape(int(n), 9)[:, :8].astype("float32")


def apply_views(images, views, fill_mode="nearest"):
    """Warp every image with every view, stacked view by view.

    Args:
        images: array ``(batch, H, W, C)``.
        views: array ``(n, 8)`` from `sample_views`.
        fill_mode: how pixels outside the image are filled ("nearest",
            "constant", "reflect", "wrap" or "mirror").

    Returns:
        Tensor ``(n * batch, H, W, C)``: all images under view 0, then view 1, ...

    Example:

    >>> images = np.arange(12, dtype="float32").reshape(1, 2, 2, 3)
    >>> views = sample_views([Flip(probability=1.0)], 1, seed=0, height=2, width=2)
    >>> flipped = keras.ops.convert_to_numpy(apply_views(images, views))
    >>> bool((flipped == images[:, :, ::-1]).all())
    True
    """
    images = keras.ops.convert_to_tensor(images, dtype="float32")
    stacked = keras.ops.concatenate([images] * len(views), axis=0)
    transforms = np.repeat(np.asarray(views, dtype="float32"), int(images.shape[0]), axis=0)
    return keras.ops.image.affine_transform(
        stacked, transforms, interpolation="bilinear", fill_mode=fill_mode
    )


def _about_centre(matrices, height, width):
    """Conjugate linear maps by a translation so that they act about the image centre."""
    centre = np.eye(3)
    centre[0, 2], centre[1, 2] = (width - 1) / 2.0, (height - 1) / 2.0
    back = np.eye(3)
    back[0, 2], back[1, 2] = -centre[0, 2], -centre[1, 2]
    return centre @ matrices @ back

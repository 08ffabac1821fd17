"""Affine geometry of images ``(B, H, W, C)`` and volumes ``(B, D, H, W, C)``, written once.

A warp is a matrix that maps *output* pixel coordinates to *input* coordinates (the output at
``p`` is the input sampled at ``M @ p``): 3x3 for images, 4x4 for volumes. Coordinates are
listed fastest axis first, ``(x, y)`` = (column, row) and ``(x, y, z)`` = (column, row, slice),
as `keras.ops.image.affine_transform` reads them; spatial shapes are given in array order,
``(H, W)`` or ``(D, H, W)``.

Every function computes with an `ArrayLibrary`: by default NumPy for the matrix arithmetic
(float64) and `keras.ops` for resampling, so it runs on every backend. A caller with other arrays
passes its own library with the same few names; the `tf.data` augmentation
(`training.data.augmentation.TF_LIBRARY`) passes TensorFlow, so it also runs inside `tf.data`
when the Keras backend is JAX.

* `affine_matrix`: flip, rotation, scale and shift about the centre, in one matrix per sample.
* `compose`, `invert`, `rescale` (the same warp on a resized grid), `as_vectors` / `as_matrices`.
* `warp` (images and volumes), `warp_mask` (label maps: nearest neighbour, or bilinear then a
  0.5 threshold for binary masks).
"""

import dataclasses
import functools

import keras
import numpy as np

INTERPOLATIONS = ("nearest", "bilinear")
FILL_MODES = ("nearest", "constant", "reflect", "mirror", "wrap")


@dataclasses.dataclass(frozen=True)
class ArrayLibrary:
    """What the geometry computes with.

    Args:
        xp: matrix arithmetic with NumPy's names (``stack``, ``where``, ``matmul``, ``reshape``,
            ``concat``, ``linalg.inv``, ``cos``, ...): `numpy`, or `tensorflow`.
        ops: resampling with `keras.ops`' names (``image.affine_transform``, ``cast`` and the
            ``numpy`` functions ``take``, ``floor``, ``where``, ...).
    """

    xp: object
    ops: object


def default_library():
    """NumPy matrices and `keras.ops` resampling."""
    return ArrayLibrary(np, keras.ops)


def affine_matrix(shape, flip=None, rotation=None, scale=None, shift=None, library=None):
    """Output-to-input matrices of warps about the centre of a grid of spatial size ``shape``.

    With ``c`` the centre, ``S`` the diagonal of flip signs times scales and ``R`` the rotation:
    ``input = c + R @ S @ (output - c) + shift``. Leave a part ``None`` to skip it.

    Args:
        shape: spatial size in array order, ``(H, W)`` or ``(D, H, W)``; ints or scalar tensors.
        flip: booleans ``(n, k)``, per axis ``(x, y[, z])``: mirror that axis.
        rotation: angles in radians, ``(n,)``: counter-clockwise in the x-y plane (for volumes,
            about the depth axis, each slice turning as an image does); or for volumes ``(n, 3)``,
            angles about the x, y and z axes, applied in that order (``R = Rz @ Ry @ Rx``).
        scale: ``(n,)`` or ``(n, k)`` per axis; the input is read at ``scale`` times the distance
            from the centre, so ``scale > 1`` shrinks the content.
        shift: ``(n, k)`` per axis, in pixels, added to the input coordinates.

    Returns:
        ``(n, k + 1, k + 1)``: float64 for NumPy parameters, the parameters' dtype with another library.

    Example:

    >>> affine_matrix((4, 6), flip=np.array([[True, False]]))[0].tolist()
    [[-1.0, 0.0, 5.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    >>> (affine_matrix((5, 5), rotation=np.array([np.pi / 2])).round(6) + 0.0)[0].tolist()  # a quarter turn
    [[0.0, -1.0, 4.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    rank = _spatial_rank(len(shape))
    xp = (library or default_library()).xp
    if xp is np:
        flip = None if flip is None else np.asarray(flip, bool)
        rotation, scale, shift = (None if p is None else np.asarray(p, "float64") for p in (rotation, scale, shift))
    signs = None if flip is None else xp.where(flip, -1.0, 1.0)
    given = [p for p in (signs, rotation, scale, shift) if p is not None]
    if not given:
        raise ValueError("affine_matrix needs at least one of flip, rotation, scale or shift.")
    zeros = xp.zeros_like(given[0][:, 0] if len(given[0].shape) == 2 else given[0])
    centre = [(size - 1.0) / 2.0 for size in reversed(tuple(shape))]
    diagonal = [1.0] * rank
    for name, part in (("flip", signs), ("scale", scale)):
        for j, value in enumerate(_per_axis(part, rank, name, allow_one=name == "scale")):
            diagonal[j] = diagonal[j] * value
    linear = [[r * diagonal[j] for j, r in enumerate(row)] for row in _rotation(rotation, rank, xp)]
    offsets = _per_axis(shift, rank, "shift", allow_one=False) if shift is not None else [0.0] * rank
    rows = []
    for i in range(rank):
        translation = centre[i]
        for j in range(rank):
            translation = translation - linear[i][j] * centre[j]
        rows.append(linear[i] + [translation + offsets[i]])
    rows.append([0.0] * rank + [1.0])
    # adding zeros (exact) turns constant entries into (n,) columns and -0.0 into 0.0
    return xp.stack([xp.stack([entry + zeros for entry in row], axis=-1) for row in rows], axis=-2)


def compose(*matrices, library=None):
    """The warp equal to warping by the first matrix, then the second, ...: their product.

    Args:
        *matrices: ``(n, k + 1, k + 1)`` (or unbatched) output-to-input matrices.

    Example:

    >>> flip = affine_matrix((4, 6), flip=np.array([[True, False]]))
    >>> compose(flip, flip)[0].tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if not matrices:
        raise ValueError("compose needs at least one matrix.")
    return functools.reduce((library or default_library()).xp.matmul, matrices)


def invert(matrices, library=None):
    """The inverse warps: ``compose(m, invert(m))`` is the identity.

    Args:
        matrices: ``(n, k + 1, k + 1)`` output-to-input matrices.

    Example:

    >>> m = affine_matrix((8, 8), rotation=np.array([0.3]), scale=np.array([1.2]), shift=np.array([[1.0, -2.0]]))
    >>> bool(np.allclose(compose(m, invert(m)), np.eye(3)))
    True
    """
    return (library or default_library()).xp.linalg.inv(matrices)


def rescale(matrices, shape, new_shape):
    """The same warps expressed in the pixel coordinates of the grid resized from ``shape`` to ``new_shape``.

    Pixel centres line up as in resizing without corner alignment:
    ``x_old = (x_new + 0.5) * old / new - 0.5`` per axis.

    Args:
        matrices: ``(n, k + 1, k + 1)`` warps of a grid of spatial size ``shape``.
        shape, new_shape: spatial sizes in array order (ints).

    Example:

    >>> flip = affine_matrix((8, 8), flip=np.array([[True, False]]))
    >>> rescale(flip, (8, 8), (4, 4))[0].tolist()
    [[-1.0, 0.0, 3.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    ratios = np.array(
        [old / new for old, new in zip(reversed(tuple(shape)), reversed(tuple(new_shape)), strict=True)], "float64"
    )
    to_old, to_new = np.eye(len(ratios) + 1), np.eye(len(ratios) + 1)
    to_old[:-1, :-1], to_old[:-1, -1] = np.diag(ratios), (ratios - 1.0) / 2.0
    to_new[:-1, :-1], to_new[:-1, -1] = np.diag(1.0 / ratios), (1.0 - ratios) / (2.0 * ratios)
    dtype = _numpy_dtype(matrices)
    return compose(to_new.astype(dtype), matrices, to_old.astype(dtype))


def as_vectors(matrices, library=None):
    """Matrices flattened without their last entry: ``(n, 8)`` for images, the form of
    `keras.ops.image.affine_transform`, or ``(n, 15)`` for volumes.

    Args:
        matrices: ``(n, 3, 3)`` or ``(n, 4, 4)``.

    Example:

    >>> as_vectors(np.eye(3)[None]).tolist()
    [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]
    """
    size = int(matrices.shape[-1])
    return (library or default_library()).xp.reshape(matrices, (-1, size * size))[:, :-1]


def as_matrices(vectors, library=None):
    """The inverse of `as_vectors`: ``(n, 8)`` -> ``(n, 3, 3)``, ``(n, 15)`` -> ``(n, 4, 4)``.

    Args:
        vectors: ``(n, 8)`` or ``(n, 15)``.

    Example:

    >>> as_matrices(np.array([[1.0, 0, 2, 0, 1, 3, 0, 0]]))[0].tolist()
    [[1.0, 0.0, 2.0], [0.0, 1.0, 3.0], [0.0, 0.0, 1.0]]
    """
    length = int(vectors.shape[-1])
    if length not in (8, 15):
        raise ValueError(f"Expected vectors of 8 (images) or 15 (volumes) numbers; got {length}.")
    xp = (library or default_library()).xp
    size = 3 if length == 8 else 4
    return xp.reshape(xp.concat([vectors, xp.ones_like(vectors[:, :1])], 1), (-1, size, size))


def warp(images, matrices, interpolation="bilinear", fill_mode="nearest", fill_value=0.0, library=None):
    """Resample each image or volume: the output at ``p`` is the input at ``matrices[b] @ p``.

    Images go through `affine_transform`; volumes are sampled with one gather per interpolation
    corner for the whole batch (their depth, height, width and channels must be static). "bilinear" is linear
    along every axis (trilinear for volumes).

    Args:
        images: ``(B, H, W, C)`` images or ``(B, D, H, W, C)`` volumes.
        matrices: ``(B, 3, 3)`` or ``(B, 4, 4)`` output-to-input matrices.
        interpolation: "bilinear" or "nearest".
        fill_mode: how points outside the input are filled: "nearest" (the edge value),
            "constant" (``fill_value``), "reflect", "mirror" or "wrap".
        fill_value: the value for ``fill_mode="constant"``.

    Returns:
        The warped batch, a tensor of ``library.ops`` (the Keras backend's by default).

    Example:

    >>> images = np.arange(24, dtype="float32").reshape(1, 2, 3, 4)
    >>> flip = affine_matrix((2, 3), flip=np.array([[True, False]]))
    >>> bool((keras.ops.convert_to_numpy(warp(images, flip)) == images[:, :, ::-1]).all())
    True
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"`interpolation` must be one of {INTERPOLATIONS}; got {interpolation!r}.")
    rank = _spatial_rank(len(images.shape) - 2)
    library = library or default_library()
    kernels = library.ops
    if rank == 2:
        vectors = as_vectors(matrices, library)
        return kernels.image.affine_transform(images, vectors, interpolation, fill_mode, fill_value)
    depth, height, width, channels = images.shape[1:]
    if None in (depth, height, width, channels):
        raise ValueError(f"Volumes need a static depth, height, width and channels; got {images.shape}.")
    if fill_mode not in FILL_MODES:
        raise ValueError(f"`fill_mode` must be one of {FILL_MODES}; got {fill_mode!r}.")
    z, y, x = np.meshgrid(np.arange(depth), np.arange(height), np.arange(width), indexing="ij")
    grid = np.stack([x, y, z, np.ones_like(x)]).reshape(4, -1).astype(_numpy_dtype(matrices))
    xp = library.xp
    points = xp.matmul(matrices, grid)  # (B, 4, D*H*W), rows x, y, z, 1
    return _sample_volumes(
        images, [points[:, 2], points[:, 1], points[:, 0]], interpolation, fill_mode, fill_value, kernels
    )


def _sample_volumes(volumes, coordinates, interpolation, fill_mode, fill_value, ops):
    """Sample every channel of a batch of volumes at per-sample points, in one gather per corner.

    The values of ``scipy.ndimage.map_coordinates`` per volume and channel, without a loop over the
    batch, on every backend (Keras' TensorFlow ``map_coordinates`` folds "mirror" and "reflect"
    differently from SciPy and JAX, and can index outside the volume with "mirror").

    Args:
        volumes: ``(B, D, H, W, C)``, static D, H, W, C.
        coordinates: ``[z, y, x]``, each ``(B, D*H*W)`` input coordinates of the output voxels.
    """
    np_ops = ops.numpy
    sizes = volumes.shape[1:4]
    # computed in the coordinates' dtype, as map_coordinates does
    flat = ops.cast(np_ops.reshape(volumes, (-1, volumes.shape[4])), coordinates[0].dtype)
    # each sample's first voxel in ``flat``: 0, DHW, 2 DHW, ... (a cumulative sum needs no dynamic shape op)
    first = (np_ops.cumsum(np_ops.ones_like(coordinates[0][:, :1], dtype="int32"), axis=0) - 1) * int(np.prod(sizes))
    # corners as (flat index, inside, weight), built up axis by axis: 1, 2, 4, then 8 for trilinear
    corners = [(first, None, None)]
    strides = (sizes[1] * sizes[2], sizes[2], 1)
    for coordinate, size, stride in zip(coordinates, sizes, strides, strict=True):
        if interpolation == "nearest":
            nodes = [(np_ops.round(coordinate), None)]
        else:
            lower = np_ops.floor(coordinate)
            upper_weight = coordinate - lower
            nodes = [(lower, 1.0 - upper_weight), (lower + 1.0, upper_weight)]
        folded = [(*_fold(ops.cast(index, "int32"), size, fill_mode, np_ops), weight) for index, weight in nodes]
        corners = [
            (
                offset + index * stride,
                _combine(np_ops.logical_and, inside, node_inside),
                _combine(np_ops.multiply, weight, node_weight),
            )
            for offset, inside, weight in corners
            for index, node_inside, node_weight in folded
        ]
    total = 0.0
    for offset, inside, weight in corners:
        values = np_ops.take(flat, offset, axis=0)  # (B, D*H*W, C)
        if inside is not None:
            values = np_ops.where(inside[..., None], values, ops.cast(fill_value, flat.dtype))
        total = total + (values if weight is None else weight[..., None] * values)
    return ops.cast(np_ops.reshape(total, (-1, *volumes.shape[1:])), volumes.dtype)


def _combine(function, first, second):
    """``function(first, second)``, where ``None`` (no flag, no weight) is the neutral element."""
    if first is None or second is None:
        return second if first is None else first
    return function(first, second)


def _fold(index, size, fill_mode, np_ops):
    """A corner's integer index brought inside ``[0, size)`` by the fill mode (SciPy's "nearest",
    "grid-constant", "reflect", "mirror", "grid-wrap"), and for "constant" whether it was inside."""
    if fill_mode == "constant":
        return np_ops.clip(index, 0, size - 1), np_ops.logical_and(index >= 0, index < size)
    if fill_mode == "nearest" or (fill_mode == "mirror" and size == 1):
        return np_ops.clip(index, 0, size - 1), None
    if fill_mode == "wrap":
        return np_ops.mod(index, size), None
    if fill_mode == "mirror":  # d c b | a b c d | c b a: period 2 (size - 1)
        folded = np_ops.mod(np_ops.abs(index), 2 * size - 2)
        return np_ops.where(folded < size, folded, 2 * size - 2 - folded), None
    folded = np_ops.mod(index, 2 * size)  # "reflect": d c b a | a b c d | d c b a, period 2 size
    return np_ops.where(folded < size, folded, 2 * size - 1 - folded), None


def warp_mask(masks, matrices, interpolation="nearest", fill_mode="nearest", library=None):
    """Warp masks like `warp` warps their images, keeping them masks (same dtype, no new labels).

    "nearest" copies the nearest input label: right for label maps with any number of classes.
    "bilinear" interpolates, then thresholds at 0.5: smoother edges for binary masks in {0, 1}
    (channel by channel; not for integer label maps).

    Args:
        masks: ``(B, H, W, C)`` or ``(B, D, H, W, C)``, any numeric dtype.
        matrices: the matrices their images were warped with.
        interpolation: "nearest" or "bilinear" (thresholded), as above.
        fill_mode: as for `warp` (outside points get label 0 with "constant").

    Example:

    >>> mask = np.array([[0, 1, 2]], "int32").reshape(1, 1, 3, 1)
    >>> flip = affine_matrix((1, 3), flip=np.array([[True, False]]))
    >>> keras.ops.convert_to_numpy(warp_mask(mask, flip))[0, :, :, 0].tolist()
    [[2, 1, 0]]
    """
    library = library or default_library()
    warped = warp(library.ops.cast(masks, "float32"), matrices, interpolation, fill_mode, library=library)
    return library.ops.cast(warped if interpolation == "nearest" else warped >= 0.5, masks.dtype)


def _spatial_rank(rank):
    if rank not in (2, 3):
        raise ValueError(f"Expected 2 spatial axes (images) or 3 (volumes); got {rank}.")
    return rank


def _per_axis(part, rank, name, allow_one):
    """Columns of ``part`` for the axes x, y[, z] (a single column repeated when ``allow_one``)."""
    if part is None:
        return [1.0] * rank
    if allow_one and len(part.shape) == 1:
        return [part] * rank
    if len(part.shape) != 2 or part.shape[1] != rank:
        raise ValueError(f"`{name}` must have shape (n, {rank}){' or (n,)' if allow_one else ''}; got {part.shape}.")
    return [part[:, j] for j in range(rank)]


def _rotation(angles, rank, xp):
    """The rotation as nested lists of entries (Python floats where constant)."""
    if angles is None:
        return _plane_rotation(None, 2, rank, xp)
    if len(angles.shape) == 1:
        return _plane_rotation(angles, 2, rank, xp)
    if rank != 3 or angles.shape[1] != 3:
        raise ValueError(f"`rotation` must have shape (n,), or (n, 3) for volumes; got {angles.shape}.")
    about_x, about_y, about_z = (_plane_rotation(angles[:, axis], axis, 3, xp) for axis in range(3))
    return _product(_product(about_z, about_y), about_x)


def _plane_rotation(angle, axis, rank, xp):
    """Rotation by ``angle`` about ``axis`` (0 x, 1 y, 2 z; images turn about z); identity for ``None``."""
    entries = [[1.0 if i == j else 0.0 for j in range(rank)] for i in range(rank)]
    if angle is not None:
        first, second = (axis + 1) % 3, (axis + 2) % 3
        cos, sin = xp.cos(angle), xp.sin(angle)
        entries[first][first], entries[first][second] = cos, -sin
        entries[second][first], entries[second][second] = sin, cos
    return entries


def _product(left, right):
    size = len(left)
    return [[sum(left[i][k] * right[k][j] for k in range(size)) for j in range(size)] for i in range(size)]


def _numpy_dtype(array):
    return getattr(array.dtype, "as_numpy_dtype", array.dtype)

"""modeling.geometry: matrices against hand-computed ones, inverses, resampling, masks, NumPy vs tf.data."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from modeling.geometry import (
    affine_matrix,
    as_matrices,
    as_vectors,
    compose,
    invert,
    rescale,
    warp,
    warp_mask,
)
from training.data.augmentation import TF_LIBRARY

pytestmark = pytest.mark.multibackend

QUARTER = np.pi / 2


def numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def test_image_matrices_match_hand_computed_ones():
    flips = affine_matrix((4, 6), flip=np.array([[True, False], [False, True]]))
    np.testing.assert_array_equal(flips[0], [[-1, 0, 5], [0, 1, 0], [0, 0, 1]])  # x -> 5 - x
    np.testing.assert_array_equal(flips[1], [[1, 0, 0], [0, -1, 3], [0, 0, 1]])  # y -> 3 - y
    # a quarter turn about (2, 2): (x, y) -> (2 - (y - 2), 2 + (x - 2))
    np.testing.assert_allclose(
        affine_matrix((5, 5), rotation=np.array([QUARTER]))[0], [[0, -1, 4], [1, 0, 0], [0, 0, 1]], atol=1e-15
    )
    # scale 2 about the centre (3, 2) of a 5 x 7 grid: x -> 2 x - 3, y -> 2 y - 2
    np.testing.assert_array_equal(affine_matrix((5, 7), scale=np.array([2.0]))[0], [[2, 0, -3], [0, 2, -2], [0, 0, 1]])
    np.testing.assert_array_equal(
        affine_matrix((5, 7), shift=np.array([[1.5, -2.0]]))[0], [[1, 0, 1.5], [0, 1, -2], [0, 0, 1]]
    )


def test_the_parts_combine_as_documented():
    rng = np.random.default_rng(0)
    flip, angle, scale, shift = (
        rng.random((3, 2)) < 0.5,
        rng.uniform(-1, 1, 3),
        rng.uniform(0.8, 1.2, (3, 2)),
        rng.normal(size=(3, 2)),
    )
    matrices = affine_matrix((9, 12), flip=flip, rotation=angle, scale=scale, shift=shift)
    centre = np.array([5.5, 4.0])  # (x, y) of a 9 x 12 grid
    for m, f, a, s, t in zip(matrices, flip, angle, scale, shift, strict=True):
        linear = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.diag(np.where(f, -1, 1) * s)
        np.testing.assert_allclose(m[:2, :2], linear, atol=1e-15)
        np.testing.assert_allclose(m[:2, 2], centre - linear @ centre + t, atol=1e-14)


def test_volume_matrices_match_hand_computed_ones():
    depth_flip = affine_matrix((3, 4, 5), flip=np.array([[False, False, True]]))[0]
    np.testing.assert_array_equal(depth_flip, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 2], [0, 0, 0, 1]])
    # one angle: about the depth axis, as an image turns; centre (2, 2, 1)
    about_z = affine_matrix((3, 5, 5), rotation=np.array([QUARTER]))[0]
    np.testing.assert_allclose(about_z, [[0, -1, 0, 4], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], atol=1e-15)
    # three angles (about x, y, z): a quarter turn about x maps (y, z) -> (-z, y) about the centre (2, 2, 2)
    about_x = affine_matrix((5, 5, 5), rotation=np.array([[QUARTER, 0.0, 0.0]]))[0]
    np.testing.assert_allclose(about_x, [[1, 0, 0, 0], [0, 0, -1, 4], [0, 1, 0, 0], [0, 0, 0, 1]], atol=1e-15)
    about_y = affine_matrix((5, 5, 5), rotation=np.array([[0.0, QUARTER, 0.0]]))[0]
    np.testing.assert_allclose(about_y, [[0, 0, 1, 0], [0, 1, 0, 0], [-1, 0, 0, 4], [0, 0, 0, 1]], atol=1e-15)
    # scale 2 about the centre (3, 2, 1) of a 3 x 5 x 7 grid
    zoom = affine_matrix((3, 5, 7), scale=np.array([2.0]))[0]
    np.testing.assert_array_equal(zoom, [[2, 0, 0, -3], [0, 2, 0, -2], [0, 0, 2, -1], [0, 0, 0, 1]])


def test_warps_equal_numpy_flips_and_quarter_turns():
    rng = np.random.default_rng(1)
    images = rng.random((2, 5, 5, 3)).astype("float32")
    turned = warp(images, affine_matrix((5, 5), rotation=np.full(2, QUARTER)))
    np.testing.assert_allclose(numpy(turned), np.rot90(images, axes=(1, 2)), atol=1e-5)
    volumes = rng.random((2, 5, 5, 5, 2)).astype("float32")
    for axis in range(3):  # flip x, y, z = array axes 3, 2, 1
        flip = np.zeros((2, 3), bool)
        flip[:, axis] = True
        np.testing.assert_array_equal(
            numpy(warp(volumes, affine_matrix((5, 5, 5), flip=flip))), np.flip(volumes, axis=3 - axis)
        )
    about_x = affine_matrix((5, 5, 5), rotation=np.tile([QUARTER, 0.0, 0.0], (2, 1)))
    np.testing.assert_allclose(numpy(warp(volumes, about_x)), np.rot90(volumes, axes=(1, 2)), atol=1e-5)
    about_z = affine_matrix((5, 5, 5), rotation=np.full(2, QUARTER))
    np.testing.assert_allclose(numpy(warp(volumes, about_z)), np.rot90(volumes, axes=(2, 3)), atol=1e-5)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("fill_mode", ["nearest", "constant", "reflect", "mirror", "wrap"])
def test_volume_warps_equal_scipy_map_coordinates(fill_mode, interpolation):
    """Every fill mode, with points well outside the volume, against SciPy's own sampler."""
    from scipy import ndimage

    rng = np.random.default_rng(2)
    volumes = rng.random((3, 4, 5, 6, 2)).astype("float32")
    matrices = affine_matrix(
        (4, 5, 6),
        flip=rng.random((3, 3)) < 0.5,
        rotation=rng.uniform(-1, 1, (3, 3)),
        scale=rng.uniform(0.6, 1.6, (3, 3)),
        shift=rng.uniform(-4, 4, (3, 3)),
    )
    warped = numpy(warp(volumes, matrices, interpolation, fill_mode, fill_value=0.5))
    z, y, x = np.meshgrid(np.arange(4), np.arange(5), np.arange(6), indexing="ij")
    grid = np.stack([x, y, z, np.ones_like(x)]).reshape(4, -1)
    scipy_mode = {"constant": "grid-constant", "wrap": "grid-wrap"}.get(fill_mode, fill_mode)
    for sample in range(3):
        points = (matrices[sample] @ grid)[2::-1].reshape(3, 4, 5, 6)  # rows z, y, x
        for channel in range(2):
            expected = ndimage.map_coordinates(
                volumes[sample, ..., channel].astype("float64"),
                points,
                order=1 if interpolation == "bilinear" else 0,
                mode=scipy_mode,
                cval=0.5,
            )
            np.testing.assert_allclose(warped[sample, ..., channel], expected, atol=1e-5)


def _random_matrices(shape, n=4, seed=0):
    rng = np.random.default_rng(seed)
    k = len(shape)
    angles = rng.uniform(-1, 1, (n, 3) if k == 3 else n)
    return affine_matrix(
        shape,
        flip=rng.random((n, k)) < 0.5,
        rotation=angles,
        scale=rng.uniform(0.7, 1.3, (n, k)),
        shift=rng.normal(size=(n, k)),
    )


@pytest.mark.parametrize("shape", [(9, 12), (5, 9, 12)])
def test_inverse_composes_to_identity(shape):
    matrices = _random_matrices(shape)
    identity = np.broadcast_to(np.eye(len(shape) + 1), matrices.shape)
    np.testing.assert_allclose(compose(matrices, invert(matrices)), identity, atol=1e-12)
    np.testing.assert_allclose(compose(invert(matrices), matrices), identity, atol=1e-12)
    as_tf = tf.constant(matrices, tf.float32)
    tf_inverse = invert(as_tf, library=TF_LIBRARY)
    np.testing.assert_allclose(compose(as_tf, tf_inverse, library=TF_LIBRARY).numpy(), identity, atol=1e-5)


def test_numpy_and_tensorflow_build_the_same_matrices():
    rng = np.random.default_rng(2)
    parts = dict(
        flip=rng.random((3, 3)) < 0.5,
        rotation=rng.uniform(-1, 1, (3, 3)),
        scale=rng.uniform(0.8, 1.2, 3),
        shift=rng.normal(size=(3, 3)),
    )
    expected = affine_matrix((4, 6, 8), **parts)
    tensors = {name: tf.constant(value if name == "flip" else value.astype("float32")) for name, value in parts.items()}
    np.testing.assert_allclose(affine_matrix((4, 6, 8), **tensors, library=TF_LIBRARY).numpy(), expected, atol=1e-5)


def test_rescale_expresses_a_warp_on_a_resized_grid():
    flip_8 = affine_matrix((8, 8), flip=np.array([[True, True]]))
    np.testing.assert_array_equal(rescale(flip_8, (8, 8), (4, 4)), affine_matrix((4, 4), flip=np.array([[True, True]])))
    shift_8 = affine_matrix((8, 8), shift=np.array([[2.0, -4.0]]))
    np.testing.assert_allclose(rescale(shift_8, (8, 8), (4, 4))[0, :2, 2], [1.0, -2.0])
    # warping then halving the resolution equals halving then warping with the rescaled matrix
    images = np.random.default_rng(3).random((1, 8, 8, 1)).astype("float32")
    matrices = compose(flip_8, shift_8)
    halve = keras.layers.AveragePooling2D(2)
    np.testing.assert_allclose(
        numpy(halve(warp(images, matrices, fill_mode="wrap"))),
        numpy(warp(numpy(halve(images)), rescale(matrices, (8, 8), (4, 4)), fill_mode="wrap")),
        atol=1e-6,
    )


def test_vectors_round_trip_and_match_the_affine_transform_form():
    for shape, length in (((9, 12), 8), ((5, 9, 12), 15)):
        matrices = _random_matrices(shape)
        vectors = as_vectors(matrices)
        assert vectors.shape == (4, length)
        np.testing.assert_array_equal(as_matrices(vectors), matrices)
    np.testing.assert_array_equal(
        as_vectors(affine_matrix((4, 6), flip=np.array([[True, False]]))), [[-1, 0, 5, 0, 1, 0, 0, 0]]
    )
    with pytest.raises(ValueError, match="8 .* or 15"):
        as_matrices(np.zeros((1, 9)))


def square(shape, batch=4):
    """A bright square (or cube) of side 8 (200 on 0), 2 px off the centre along each axis, and its mask."""
    mask = np.zeros((batch, *shape, 1), "int32")
    mask[(slice(None),) + tuple(slice(s // 2 - 6, s // 2 + 2) for s in shape)] = 1
    return (200.0 * mask).astype("float32"), mask


def mass_centres(arrays):
    """Centroid of each sample's first channel, one row per sample, in array axis order."""
    arrays = np.asarray(arrays, "float64")[..., 0]
    axes = tuple(range(1, arrays.ndim))
    return np.stack(
        [(arrays * grid).sum(axis=axes) / arrays.sum(axis=axes) for grid in np.indices(arrays.shape[1:])], axis=1
    )


@pytest.mark.parametrize("shape", [(32, 32), (20, 20, 20)])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_a_mask_warped_with_its_image_stays_aligned(shape, interpolation):
    images, masks = square(shape)
    matrices = _random_matrices(shape, seed=5)
    warped, warped_masks = numpy(warp(images, matrices)), numpy(warp_mask(masks, matrices, interpolation))
    assert warped_masks.dtype == np.int32 and set(np.unique(warped_masks)) == {0, 1}
    assert np.abs(mass_centres(warped) - mass_centres(images)).max() > 1.0  # really moved
    # nearest neighbour rounds sub-pixel moves, so the bound is half a pixel
    np.testing.assert_allclose(mass_centres(warped_masks), mass_centres(warped), atol=0.5)


def test_nearest_masks_keep_their_labels():
    labels = np.random.default_rng(4).integers(0, 4, (2, 9, 9, 1)).astype("int32")
    warped = numpy(warp_mask(labels, _random_matrices((9, 9), n=2)))
    assert warped.dtype == np.int32 and set(np.unique(warped)) <= {0, 1, 2, 3}
    assert not np.array_equal(warped, labels)


def test_warps_run_inside_tf_data_as_on_numpy():
    """The path `Augmentation` takes: TF tensors in a tf.data map, on any Keras backend."""
    rng = np.random.default_rng(6)
    for shape in ((10, 12), (4, 10, 12)):
        images = rng.random((3, *shape, 2)).astype("float32")
        masks = (images[..., :1] > 0.5).astype("int32")
        k = len(shape)
        parts = dict(
            flip=rng.random((3, k)) < 0.5,
            rotation=rng.uniform(-0.5, 0.5, 3).astype("float32"),
            scale=rng.uniform(0.8, 1.2, (3, k)).astype("float32"),
            shift=rng.normal(size=(3, k)).astype("float32"),
        )

        def augment(images, masks, parts):
            sizes = tf.unstack(tf.cast(tf.shape(images)[1:-1], tf.float32))
            matrices = affine_matrix(sizes, **parts, library=TF_LIBRARY)
            return warp(images, matrices, library=TF_LIBRARY), warp_mask(
                masks, matrices, "bilinear", library=TF_LIBRARY
            )

        dataset = tf.data.Dataset.from_tensors((images, masks, parts)).map(augment)
        assert dataset.element_spec[0].shape.as_list() == [3, *shape, 2]
        warped, warped_masks = next(iter(dataset))
        matrices = affine_matrix(shape, **parts)
        np.testing.assert_allclose(warped.numpy(), numpy(warp(images, matrices)), atol=1e-4)
        np.testing.assert_array_equal(warped_masks.numpy(), numpy(warp_mask(masks, matrices, "bilinear")))


def test_bad_arguments_fail():
    with pytest.raises(ValueError, match="at least one"):
        affine_matrix((4, 4))
    with pytest.raises(ValueError, match="2 spatial axes"):
        affine_matrix((4,), scale=np.ones(1))
    with pytest.raises(ValueError, match=r"`rotation` must have shape \(n,\)"):
        affine_matrix((4, 4), rotation=np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"`shift` must have shape \(n, 3\)"):
        affine_matrix((4, 4, 4), shift=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="interpolation"):
        warp(np.zeros((1, 4, 4, 1), "float32"), np.eye(3)[None], interpolation="cubic")
    unknown_depth = tf.function(
        lambda v: warp(v, tf.eye(4)[None], library=TF_LIBRARY), input_signature=[tf.TensorSpec((1, None, 4, 4, 1))]
    )
    with pytest.raises(ValueError, match="static depth"):
        unknown_depth.get_concrete_function()

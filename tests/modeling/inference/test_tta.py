"""Test-time augmentation: identity, flip invariance, determinism, reductions, data forms, geometry."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from modeling.inference import Flip, Rotation, Shift, Zoom, apply_views, predict_tta, sample_views
from tests.checkers import run_serialization_test

pytestmark = pytest.mark.multibackend

IMG_DIMS = (32, 32, 3)


def two_input_model(pooling):
    """image -> pooling -> concat sex -> Dense(1); GlobalAveragePooling makes it flip-invariant."""
    image = keras.Input(IMG_DIMS, name="image")
    sex = keras.Input((1,), name="sex")
    features = keras.layers.Conv2D(4, 1)(image)  # 1x1: commutes with any pixel permutation
    pool = keras.layers.GlobalAveragePooling2D() if pooling == "average" else keras.layers.Flatten()
    features = pool(features)
    joint = keras.layers.Concatenate()([features, sex])
    return keras.Model([image, sex], keras.layers.Dense(1)(joint))


def inputs(size=7, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.uniform(-1, 1, size=(size, *IMG_DIMS)).astype("float32"),
        "sex": (np.arange(size) % 2).reshape(size, 1).astype("float32"),
    }


def test_identity_views_equal_predict():
    model, x = two_input_model("flatten"), inputs()
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(predict_tta(model, x, transforms=(), n=3, batch_size=4), expected, atol=1e-5)


def test_flips_leave_a_flip_invariant_model_unchanged():
    x = inputs()
    flips = [Flip(horizontal=True, vertical=True, probability=0.5)]
    invariant = two_input_model("average")
    np.testing.assert_allclose(
        predict_tta(invariant, x, transforms=flips, n=6), invariant.predict(x, verbose=0), atol=1e-5
    )
    sensitive = two_input_model("flatten")  # the flips really were applied
    per_view = predict_tta(sensitive, x, transforms=flips, n=6, reduce=None)
    assert np.abs(per_view - sensitive.predict(x, verbose=0)[None]).max() > 1e-3


def test_views_are_deterministic_under_a_seed():
    model, x = two_input_model("flatten"), inputs()
    first = predict_tta(model, x, n=4, seed=11)
    np.testing.assert_array_equal(predict_tta(model, x, n=4, seed=11), first)
    assert not np.allclose(predict_tta(model, x, n=4, seed=12), first)
    transforms = [Rotation(10), Zoom(0.1)]
    np.testing.assert_array_equal(sample_views(transforms, 4, 5, 32, 32), sample_views(transforms, 4, 5, 32, 32))


def test_mean_and_median_reduce_the_views():
    model, x = two_input_model("flatten"), inputs()
    per_view = predict_tta(model, x, n=5, seed=3, reduce=None)
    assert per_view.shape == (5, 7, 1)
    mean = predict_tta(model, x, n=5, seed=3, reduce="mean")
    median = predict_tta(model, x, n=5, seed=3, reduce="median")
    np.testing.assert_allclose(mean, per_view.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(median, np.median(per_view, axis=0), rtol=1e-6)
    assert not np.allclose(mean, median)


def test_batch_size_list_and_dataset_inputs_give_the_same_predictions():
    model, x = two_input_model("flatten"), inputs()
    reference = predict_tta(model, x, n=3, batch_size=7)
    as_list = predict_tta(model, [x["image"], x["sex"]], n=3, batch_size=2)
    np.testing.assert_allclose(as_list, reference, rtol=1e-5)
    targets = np.zeros((7, 1), "float32")
    for element in ((x, targets), x):
        dataset = tf.data.Dataset.from_tensor_slices(element).batch(3)
        np.testing.assert_allclose(predict_tta(model, dataset, n=3), reference, rtol=1e-5)


def test_transform_geometry():
    image = np.zeros((1, 5, 5, 1), "float32")
    image[0, 2, 3] = 1.0  # row 2, column 3
    views = sample_views([Flip(probability=1.0)], 1, 0, 5, 5)
    flipped = keras.ops.convert_to_numpy(apply_views(image, views))
    assert flipped[0, 2, 1, 0] == 1.0 and flipped.sum() == 1.0
    rng, centre = np.random.default_rng(0), np.array([2.0, 2.0, 1.0])  # middle of a 5x5 image
    for matrix in Rotation(30).matrices(rng, 4, 5, 5):
        np.testing.assert_allclose(matrix @ centre, centre, atol=1e-12)
        np.testing.assert_allclose(matrix[:2, :2] @ matrix[:2, :2].T, np.eye(2), atol=1e-12)
        assert abs(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))) <= 30
    for matrix in Zoom(0.2).matrices(rng, 4, 5, 5):
        np.testing.assert_allclose(matrix @ centre, centre, atol=1e-12)
        assert matrix[0, 0] == matrix[1, 1] and 0.8 <= 1 / matrix[0, 0] <= 1.2
    for matrix in Shift(0.2).matrices(rng, 4, 5, 10):  # height 5, width 10: up to 1 and 2 pixels
        np.testing.assert_array_equal(matrix[:2, :2], np.eye(2))
        assert abs(matrix[0, 2]) <= 2.0 and abs(matrix[1, 2]) <= 1.0


@pytest.mark.parametrize("transform", [Flip(vertical=True, probability=0.3), Rotation(7.5), Shift(0.1), Zoom(0.2)])
def test_transforms_serialise(transform):
    run_serialization_test(transform)


def test_bad_arguments_fail():
    model, x = two_input_model("flatten"), inputs()
    with pytest.raises(ValueError, match="reduce"):
        predict_tta(model, x, reduce="max")
    with pytest.raises(ValueError, match="`n`"):
        predict_tta(model, x, n=0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Zoom(1.5)
    with pytest.raises(TypeError, match="ViewTransform"):
        predict_tta(model, x, transforms=["flip"])


def smooth(shape, batch=3, channels=2, seed=0):
    """Products of slow sines (under one cycle per image), so interpolating twice changes little."""
    rng = np.random.default_rng(seed)
    grids = np.indices(shape) / np.reshape(shape, (-1,) + (1,) * len(shape))
    out = np.zeros((batch, *shape, channels), "float32")
    for index in np.ndindex(batch, channels):
        frequencies, phases = rng.uniform(0.3, 0.7, len(shape)), rng.uniform(0, 6, len(shape))
        out[index[0], ..., index[1]] = np.prod(
            [np.sin(2 * np.pi * f * g + p) for f, g, p in zip(frequencies, grids, phases, strict=True)], axis=0
        )
    return out


def map_model(shape, layer):
    image = keras.Input(shape, name="image")
    return keras.Model(image, layer(image))


def test_segmentation_views_are_warped_back_onto_the_image():
    x = smooth((32, 32))
    identity = map_model((32, 32, 2), keras.layers.Identity())  # a "segmenter" whose map is its input
    interior = (slice(None), slice(None), slice(6, -6), slice(6, -6))
    views = predict_tta(identity, x, n=6, reduce=None)  # DEFAULT_TRANSFORMS, output="auto" -> "map"
    assert views.shape == (6, 3, 32, 32, 2)
    np.testing.assert_allclose(views[interior], np.broadcast_to(x, views.shape)[interior], atol=0.02)
    np.testing.assert_allclose(predict_tta(identity, x, n=6)[:, 6:-6, 6:-6], x[:, 6:-6, 6:-6], atol=0.01)
    not_undone = predict_tta(identity, x, n=6, reduce=None, output="vector")
    assert np.abs(not_undone - x[None])[interior].max() > 0.5  # the views really moved
    flips = [Flip(horizontal=True, vertical=True)]  # exact everywhere: no interpolation, no border
    np.testing.assert_array_equal(
        predict_tta(identity, x, transforms=flips, n=6, reduce=None), np.broadcast_to(x, (6, *x.shape))
    )


def test_maps_of_another_size_are_warped_back_at_their_size():
    x = smooth((32, 32))
    half = map_model((32, 32, 2), keras.layers.AveragePooling2D(2))  # a map at half the resolution
    expected = keras.ops.convert_to_numpy(keras.layers.AveragePooling2D(2)(x))
    views = predict_tta(half, x, n=6, reduce=None, output="map")
    assert views.shape == (6, 3, 16, 16, 2)
    np.testing.assert_allclose(
        views[:, :, 3:-3, 3:-3], np.broadcast_to(expected, views.shape)[:, :, 3:-3, 3:-3], atol=0.04
    )
    flips = [Flip(horizontal=True, vertical=True)]
    np.testing.assert_allclose(
        predict_tta(half, x, transforms=flips, n=6, reduce=None), np.broadcast_to(expected, views.shape), atol=1e-6
    )


def test_volumes_get_3d_views():
    volumes = smooth((8, 16, 16), batch=2, channels=1)
    identity = map_model((8, 16, 16, 1), keras.layers.Identity())
    flips = [Flip(horizontal=True, vertical=True, depth=True)]
    np.testing.assert_array_equal(
        predict_tta(identity, volumes, transforms=flips, n=6, reduce=None),
        np.broadcast_to(volumes, (6, *volumes.shape)),
    )
    tilts = [Rotation(10.0, all_axes=True), Shift(0.05), Zoom(0.05)]
    views = predict_tta(identity, volumes, transforms=tilts, n=4, reduce=None)
    interior = (slice(None), slice(None), slice(2, -2), slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(views[interior], np.broadcast_to(volumes, views.shape)[interior], atol=0.07)
    assert (
        np.abs(predict_tta(identity, volumes, transforms=tilts, n=4, reduce=None, output="vector") - volumes[None])[
            interior
        ].max()
        > 0.2
    )
    pooled = map_model((8, 16, 16, 1), keras.layers.GlobalAveragePooling3D())  # invariant under flips
    np.testing.assert_allclose(
        predict_tta(pooled, volumes, transforms=flips, n=5), pooled.predict(volumes, verbose=0), atol=1e-6
    )


def test_3d_views_are_drawn_as_documented():
    views = sample_views([Flip(horizontal=False, depth=True, probability=1.0)], 2, 0, 3, 4, 5)
    assert views.shape == (2, 15)
    np.testing.assert_array_equal(views[0], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, -1, 2, 0, 0, 0])  # z -> 2 - z
    # the image views of a seed do not change when the volume options are set
    assert np.array_equal(
        sample_views([Flip(depth=True), Rotation(9, all_axes=True)], 4, 1, 8, 8),
        sample_views([Flip(), Rotation(9)], 4, 1, 8, 8),
    )
    for matrix in Shift(0.25).matrices(np.random.default_rng(0), 8, 4, 8, 12):  # up to 1, 2 and 3 voxels in z, y, x
        np.testing.assert_array_equal(matrix[:3, :3], np.eye(3))
        assert np.all(np.abs(matrix[:3, 3]) <= [3.0, 2.0, 1.0])


@pytest.mark.parametrize("transform", [Flip(depth=True, probability=0.2), Rotation(12.0, all_axes=True)])
def test_volume_options_serialise(transform):
    run_serialization_test(transform)


def test_bad_output_fails():
    model, x = two_input_model("flatten"), inputs()
    with pytest.raises(ValueError, match="`output`"):
        predict_tta(model, x, output="image")
    with pytest.raises(ValueError, match="per-pixel"):
        predict_tta(model, x, n=2, output="map")

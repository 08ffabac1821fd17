"""Training augmentation: the geometry of the warp (moved from the bone-age pipeline tests), masks, volumes."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from tests.modeling.test_geometry import mass_centres, square
from tests.training.boneage.test_pipeline import collect
from training.boneage.pipeline import make_dataset
from training.data.augmentation import Augmentation


def test_augmentation_changes_images_but_keeps_range(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(tmp_path / "noise.png")
    frame = pd.DataFrame([{"id": "a", "path": str(tmp_path / "noise.png"), "boneage": 1.0, "male": 0.0}] * 8)
    plain = collect(make_dataset(frame, 32, 8, 0.0, 1.0))[0]
    dataset = make_dataset(frame, 32, 8, 0.0, 1.0, training=True, augmentation=Augmentation(), seed=0, mixup_alpha=0.2)
    assert dataset.element_spec[0]["image"].shape.as_list() == [None, 32, 32, 3]  # static size, for distributed fit
    augmented = collect(make_dataset(frame, 32, 8, 0.0, 1.0, training=True, augmentation=Augmentation(), seed=0))[0]
    assert augmented.shape == plain.shape
    assert augmented.min() >= 0 and augmented.max() <= 255
    assert np.abs(augmented - plain).mean() > 5
    identity = Augmentation(flip=False, rotation_degrees=0, shift=0, zoom=0, brightness=0, contrast=0)
    np.testing.assert_array_equal(
        collect(make_dataset(frame, 32, 8, 0.0, 1.0, training=True, augmentation=identity))[0], plain
    )


def _blob(size, row, col, sigma=2.0):
    """A Gaussian spot of height 200 at (row, col) on a size x size grey image, batched x 32, 3 channels."""
    rows, cols = np.mgrid[:size, :size]
    image = 200.0 * np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma**2))
    return np.repeat(np.repeat(image[None, :, :, None], 3, axis=-1), 32, axis=0).astype("float32")


def _centroids(images):
    rows, cols = np.mgrid[: images.shape[1], : images.shape[2]]
    mass = images[..., 0].sum(axis=(1, 2))
    return (images[..., 0] * rows).sum(axis=(1, 2)) / mass, (images[..., 0] * cols).sum(axis=(1, 2)) / mass


GEOMETRY_ONLY = dict(flip=False, rotation_degrees=0.0, shift=0.0, zoom=0.0, brightness=0.0, contrast=0.0)


def test_flip_mirrors_about_half_of_the_images():
    images = _blob(33, 10, 6)
    out = Augmentation(**(GEOMETRY_ONLY | {"flip": True}))(images, [1, 2]).numpy()
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-3) for o, i in zip(out, images, strict=True)]
    kept = [np.allclose(o, i, atol=1e-3) for o, i in zip(out, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 8 <= sum(mirrored) <= 24


def test_rotation_turns_about_the_centre_within_the_range():
    # a spot 10 px right of the centre of a 33 px image keeps its radius; its angle moves by <= 20 degrees
    out = Augmentation(**(GEOMETRY_ONLY | {"rotation_degrees": 20.0}))(_blob(33, 16, 26), [3, 4]).numpy()
    rows, cols = _centroids(out)
    radius = np.hypot(rows - 16, cols - 16)
    angle = np.degrees(np.arctan2(rows - 16, cols - 16))
    np.testing.assert_allclose(radius, 10.0, atol=0.1)
    assert np.abs(angle).max() <= 20.0 + 0.5 and np.abs(angle).max() > 10.0


def test_shift_moves_by_at_most_the_fraction_of_the_size():
    out = Augmentation(**(GEOMETRY_ONLY | {"shift": 0.2}))(_blob(40, 20, 20), [5, 6]).numpy()
    rows, cols = _centroids(out)
    assert np.abs(rows - 20).max() <= 0.2 * 40 + 0.1 and np.abs(cols - 20).max() <= 0.2 * 40 + 0.1
    assert np.abs(cols - 20).max() > 4.0  # really moved


def test_zoom_scales_the_spot_size_by_the_drawn_factor():
    out = Augmentation(**(GEOMETRY_ONLY | {"zoom": 0.2}))(_blob(41, 20, 20, sigma=3.0), [7, 8]).numpy()
    rows, cols = _centroids(out)
    np.testing.assert_allclose(rows, 20.0, atol=0.05)
    np.testing.assert_allclose(cols, 20.0, atol=0.05)  # zoom is about the centre
    grid = np.mgrid[:41, :41][1]
    spread = np.sqrt((out[..., 0] * (grid - 20.0) ** 2).sum(axis=(1, 2)) / out[..., 0].sum(axis=(1, 2)))
    # the output samples the input at zoom x the distance: the spot looks 1/zoom as wide
    assert spread.min() >= 3.0 / 1.2 - 0.1 and spread.max() <= 3.0 / 0.8 + 0.1
    assert spread.max() - spread.min() > 0.5


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_masks_follow_their_images(interpolation):
    images, masks = square((32, 32), batch=16)
    augment = Augmentation(brightness=0.0, contrast=0.0, mask_interpolation=interpolation)
    out, out_masks = augment(images, [3, 4], masks=masks)
    out, out_masks = out.numpy(), out_masks.numpy()
    assert out_masks.dtype == np.int32 and set(np.unique(out_masks)) == {0, 1}
    moved = np.abs(mass_centres(out) - mass_centres(images)).max()
    assert moved > 2.0  # the warp really moved the square
    np.testing.assert_allclose(mass_centres(out_masks), mass_centres(out), atol=0.5)
    np.testing.assert_array_equal(out, augment(images, [3, 4]).numpy())  # masks do not change the images


def test_masks_get_the_geometry_only():
    images, masks = square((32, 32), batch=16)
    _, with_photometric = Augmentation()(images, [5, 6], masks=masks)
    _, geometric = Augmentation(brightness=0.0, contrast=0.0)(images, [5, 6], masks=masks)
    np.testing.assert_array_equal(with_photometric.numpy(), geometric.numpy())  # the same draw, no brightness
    photometric_only = Augmentation(flip=False, rotation_degrees=0.0, shift=0.0, zoom=0.0)
    out, same_masks = photometric_only(images, [5, 6], masks=masks)
    assert not np.allclose(out.numpy(), images)
    np.testing.assert_array_equal(same_masks, masks)


def _volumes(batch=4, depth=6, height=10, width=12, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, depth, height, width, 1)).astype("float32")


def test_volumes_augment_inside_tf_data_and_keep_range():
    volumes = _volumes()
    seeds = tf.data.Dataset.random(seed=0).map(lambda draw: tf.stack([draw, tf.constant(0, tf.int64)]))
    dataset = tf.data.Dataset.zip((tf.data.Dataset.from_tensor_slices(volumes).batch(3), seeds))
    dataset = dataset.map(lambda batch, seed: Augmentation(rotation_all_axes=True)(batch, seed))
    assert dataset.element_spec.shape.as_list() == [None, 6, 10, 12, 1]
    out = np.concatenate([batch.numpy() for batch in dataset])
    assert out.shape == volumes.shape
    assert out.min() >= 0 and out.max() <= 255
    assert np.abs(out - volumes).mean() > 20


def test_volume_flip_mirrors_the_width_axis():
    volumes = _volumes(batch=32)
    out = Augmentation(**(GEOMETRY_ONLY | {"flip": True}))(volumes, [1, 2]).numpy()
    mirrored = [np.allclose(o, np.flip(v, axis=2), atol=1e-3) for o, v in zip(out, volumes, strict=True)]
    kept = [np.allclose(o, v, atol=1e-3) for o, v in zip(out, volumes, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 8 <= sum(mirrored) <= 24


def _ball(batch=8, size=17, centre=(8, 8, 12), radius=2.5):
    """Volumes with a bright ball (200 on 0) and its mask."""
    grids = np.indices((size, size, size))
    inside = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) <= radius**2
    mask = np.repeat(inside[None, ..., None], batch, axis=0).astype("int32")
    return (200.0 * mask).astype("float32"), mask


def test_volume_rotation_about_the_depth_axis_or_all_axes():
    volumes, _ = _ball()  # the ball sits on the depth axis' centre plane, 4 voxels right of the centre
    about_depth = Augmentation(**(GEOMETRY_ONLY | {"rotation_degrees": 30.0}))(volumes, [1, 1]).numpy()
    centres = mass_centres(about_depth)
    np.testing.assert_allclose(centres[:, 0], 8.0, atol=1e-3)  # stays in its slice
    np.testing.assert_allclose(np.hypot(centres[:, 1] - 8, centres[:, 2] - 8), 4.0, atol=0.1)
    assert np.abs(centres[:, 1] - 8).max() > 0.5  # turned within the slice
    all_axes = Augmentation(**(GEOMETRY_ONLY | {"rotation_degrees": 30.0, "rotation_all_axes": True}))
    centres = mass_centres(all_axes(volumes, [1, 1]).numpy())
    np.testing.assert_allclose(np.linalg.norm(centres - 8.0, axis=1), 4.0, atol=0.1)  # turned about the centre
    assert np.abs(centres[:, 0] - 8).max() > 0.5  # out of its slice


def test_volume_masks_follow_their_volumes():
    volumes, masks = _ball()
    out, out_masks = Augmentation(rotation_all_axes=True, brightness=0.0, contrast=0.0)(volumes, [7, 7], masks=masks)
    assert np.abs(mass_centres(out.numpy()) - mass_centres(volumes)).max() > 1.0
    np.testing.assert_allclose(mass_centres(out_masks.numpy()), mass_centres(out.numpy()), atol=0.5)


def test_bad_mask_interpolation_fails():
    with pytest.raises(ValueError, match="mask_interpolation"):
        Augmentation(mask_interpolation="cubic")

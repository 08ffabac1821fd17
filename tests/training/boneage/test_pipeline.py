"""The tf.data pipeline: decoding, alignment under shuffling, z-scores, mixup, noise, augmentation."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from training.boneage.pipeline import make_dataset
from training.data.augmentation import Augmentation
from training.data.images import decode_image

N = 16


@pytest.fixture
def table(tmp_path):
    """Row i: a constant image of value 10 + 10 i, age 6 i months, sex i % 2."""
    rows = []
    for i in range(N):
        path = tmp_path / f"{i}.png"
        Image.new("L", (24, 24), color=10 + 10 * i).save(path)
        rows.append({"id": str(i), "path": str(path), "boneage": 6.0 * i, "male": float(i % 2)})
    return pd.DataFrame(rows)


def collect(dataset):
    images, sex, targets = [], [], []
    for inputs, z in dataset:
        images.append(np.asarray(inputs["image"]))
        sex.append(np.asarray(inputs["sex"]))
        targets.append(np.asarray(z))
    return np.concatenate(images), np.concatenate(sex), np.concatenate(targets)


def test_decode_keeps_values_and_the_dataset_replicates_grey(tmp_path):
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    Image.fromarray(pixels).save(tmp_path / "ramp.png")
    image = np.asarray(decode_image(str(tmp_path / "ramp.png"), 8))
    assert image.shape == (8, 8, 1)
    np.testing.assert_allclose(image[..., 0], pixels, atol=1e-3)
    frame = pd.DataFrame([{"id": "r", "path": str(tmp_path / "ramp.png"), "boneage": 1.0, "male": 0.0}])
    batch = collect(make_dataset(frame, 8, 1, 0.0, 1.0))[0]
    assert batch.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(batch[0, ..., 0], pixels, atol=1e-3)
    np.testing.assert_array_equal(batch[..., 0], batch[..., 2])


def test_jpeg_is_decoded_and_larger_images_are_resized(tmp_path):
    pixels = np.kron(np.arange(16, dtype=np.uint8).reshape(4, 4) * 15, np.ones((4, 4), np.uint8))  # 16 x 16 blocks
    Image.fromarray(pixels).save(tmp_path / "blocks.jpg", quality=100)
    image = np.asarray(decode_image(str(tmp_path / "blocks.jpg"), 4, interpolation="area"))
    assert image.shape == (4, 4, 1)
    # each block's mean, up to JPEG ringing at the block edges (measured <= 3.1 grey levels)
    np.testing.assert_allclose(image[..., 0], np.arange(16).reshape(4, 4) * 15, atol=4.0)


def test_shuffled_batches_keep_image_sex_and_target_together(table):
    dataset = make_dataset(table, 16, batch_size=5, target_mean=40.0, target_std=20.0, training=True, seed=3)
    images, sex, targets = collect(dataset)
    index = np.rint((images[:, 0, 0, 0] - 10) / 10).astype(int)
    assert sorted(index.tolist()) == list(range(N))
    assert index.tolist() != list(range(N))  # really shuffled
    np.testing.assert_array_equal(sex[:, 0], index % 2)
    np.testing.assert_allclose(targets[:, 0], (6.0 * index - 40.0) / 20.0, rtol=1e-6)
    second = collect(dataset)[0][:, 0, 0, 0]
    assert not np.array_equal(second, images[:, 0, 0, 0])  # a new order each epoch


def test_validation_order_is_the_table_order(table):
    images, _, targets = collect(make_dataset(table, 16, 4, target_mean=0.0, target_std=6.0))
    np.testing.assert_allclose(images[:, 5, 5, 1], 10 + 10 * np.arange(N), atol=1e-3)
    np.testing.assert_allclose(targets[:, 0], np.arange(N), rtol=1e-6)


def test_mixup_mixes_images_and_targets_with_one_lambda(table):
    dataset = make_dataset(table, 16, 8, target_mean=0.0, target_std=6.0, training=True, mixup_alpha=0.4, seed=1)
    images, sex, targets = collect(dataset)
    # Unmixed, image value = 10 + 10 z; mixing with one lambda keeps that relation exactly.
    np.testing.assert_allclose(images[:, 3, 3, 0], 10 + 10 * targets[:, 0], rtol=1e-4, atol=1e-3)
    fractional = np.abs(targets[:, 0] - np.rint(targets[:, 0])) > 1e-3
    assert fractional.any()  # some rows really were mixed
    assert np.all((sex >= 0) & (sex <= 1))


def test_label_noise_has_the_requested_spread(tmp_path):
    rows = []
    for i in range(256):
        path = tmp_path / f"{i}.png"
        if i == 0:
            Image.new("L", (8, 8)).save(path)
        rows.append({"id": str(i), "path": str(tmp_path / "0.png"), "boneage": 100.0, "male": 1.0})
    noisy = collect(make_dataset(pd.DataFrame(rows), 8, 64, 100.0, 10.0, training=True, label_noise_std=0.05, seed=0))[2]
    assert noisy.mean() == pytest.approx(0.0, abs=0.01)
    assert noisy.std() == pytest.approx(0.05, rel=0.15)


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
    np.testing.assert_array_equal(collect(make_dataset(frame, 32, 8, 0.0, 1.0, training=True, augmentation=identity))[0], plain)


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
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-3) for o, i in zip(out, images)]
    kept = [np.allclose(o, i, atol=1e-3) for o, i in zip(out, images)]
    assert all(m or k for m, k in zip(mirrored, kept))
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


def test_bad_arguments(table):
    with pytest.raises(ValueError, match="target_std"):
        make_dataset(table, 16, 4, 0.0, 0.0)
    with pytest.raises(ValueError, match="mixup_alpha"):
        make_dataset(table, 16, 4, 0.0, 1.0, mixup_alpha=-1)


def test_shards_split_the_rows_evenly_and_disjointly(table):
    # 16 rows over 3 processes: cut to 15, shard i gets rows i, i+3, ...; 5 rows -> 2 full batches of 2.
    seen = []
    for index in range(3):
        dataset = make_dataset(table.iloc[:16], 16, 2, 0.0, 6.0, num_shards=3, shard_index=index, drop_remainder=True)
        _, _, targets = collect(dataset)
        rows = np.rint(targets[:, 0]).astype(int).tolist()
        assert rows == [index, index + 3, index + 6, index + 9]  # the fifth row, index + 12, is a partial batch
        seen += rows
    assert len(set(seen)) == len(seen) == 12


def test_training_shards_draw_their_own_augmentation(table):
    def brightness_changes(shard_index):
        options = dict(training=True, augmentation=Augmentation(), seed=7, num_shards=2, drop_remainder=True)
        images, _, targets = collect(make_dataset(table, 16, 8, 0.0, 6.0, shard_index=shard_index, **options))
        return images.mean(axis=(1, 2, 3)) - (10 + 10 * np.rint(targets[:, 0]))

    np.testing.assert_allclose(brightness_changes(0), brightness_changes(0), atol=1e-4)  # seeded
    assert np.abs(brightness_changes(0)).max() > 1.0  # augmentation really ran
    assert not np.allclose(brightness_changes(0), brightness_changes(1), atol=1e-2)


def test_a_shard_smaller_than_one_batch_is_refused(table):
    with pytest.raises(ValueError, match="8 rows in this shard are fewer than one batch of 10"):
        make_dataset(table, 16, 10, 0.0, 6.0, num_shards=2, shard_index=1, drop_remainder=True)
    with pytest.raises(ValueError, match="shard_index"):
        make_dataset(table, 16, 2, 0.0, 6.0, num_shards=2, shard_index=2)

"""The tf.data pipeline: decoding, alignment under shuffling, z-scores, mixup, noise, augmentation seeds.

The augmentation's own geometry is tested in tests/training/data/test_augmentation.py.
"""

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
    noisy = collect(make_dataset(pd.DataFrame(rows), 8, 64, 100.0, 10.0, training=True, label_noise_std=0.05, seed=0))[
        2
    ]
    assert noisy.mean() == pytest.approx(0.0, abs=0.01)
    assert noisy.std() == pytest.approx(0.05, rel=0.15)


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


def test_an_epoch_variable_makes_each_epoch_a_function_of_the_seed_and_epoch(table):
    import tensorflow as tf

    from training.boneage.pipeline import DataEpoch

    epoch = tf.Variable(0, dtype=tf.int64)
    options = dict(training=True, augmentation=Augmentation(), seed=3, epoch=epoch)
    dataset = make_dataset(table, 16, 5, 0.0, 6.0, **options)
    setter = DataEpoch(epoch, offset=2)
    passes = {}
    for fit_epoch in (0, 1, 0):
        setter.on_epoch_begin(fit_epoch)
        passes.setdefault(fit_epoch, []).append(collect(dataset))
    fresh = make_dataset(table, 16, 5, 0.0, 6.0, **options)  # a resumed run's new dataset at epoch 1
    setter.on_epoch_begin(1)
    for first, second in zip(passes[0][0], passes[0][1], strict=True):
        np.testing.assert_array_equal(first, second)
    for first, second in zip(passes[1][0], collect(fresh), strict=True):
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(passes[0][0][2], passes[1][0][2])  # another epoch, another order


def test_memory_disk_and_no_cache_give_the_same_batches(table, tmp_path):
    def batches(cache):
        return collect(make_dataset(table, 16, 5, 0.0, 6.0, training=True, seed=3, cache=cache))

    memory = batches(True)
    for first, second in zip(memory, batches(str(tmp_path / "train")), strict=True):
        np.testing.assert_array_equal(first, second)
    for first, second in zip(memory, batches(False), strict=True):  # uncached: float32, not rounded
        np.testing.assert_allclose(first, second, atol=1e-3)
    assert list(tmp_path.glob("train*.index"))  # the disk cache was written


@pytest.mark.parametrize("cache", [True, False])
def test_the_first_training_batch_does_not_wait_for_the_whole_split(table, tmp_path, cache):
    """The row the first pass reads last is a missing file: the first batches arrive, the error comes at the end."""
    import tensorflow as tf

    epoch = tf.Variable(0, dtype=tf.int64)
    last = list(tf.data.Dataset.range(N).shuffle(N, seed=3, reshuffle_each_iteration=False).as_numpy_iterator())[-1]
    table.loc[last, "path"] = str(tmp_path / "missing.png")
    iterator = iter(make_dataset(table, 16, 2, 0.0, 6.0, training=True, seed=3, cache=cache, epoch=epoch))
    first = next(iterator)
    assert last not in np.asarray(first[1]).ravel()  # z = 6 i / 6
    with pytest.raises(tf.errors.NotFoundError, match="missing.png"):
        for _ in iterator:
            pass

"""`tf.data` input pipeline for bone-age tables (see `training.boneage.tables`).

Each element is ``({"image": float32 (S, S, 3) in [0, 255], "sex": float32 (1,)}, z)`` with
``z = (boneage - mean) / std`` from the training statistics. Images are decoded in parallel
(PNG or JPEG) and resized, cached and augmented as grey, and replicated to three channels last;
augmentation is one affine warp per image plus brightness and contrast. The model scales pixels itself
(`modeling.layers.ImagePreprocessing`), so one pipeline serves every backbone. Image, sex and
target travel together through shuffling, so they can never be misaligned.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from training.data.images import decode_image

AUTOTUNE = tf.data.AUTOTUNE
# A fixed degree of parallelism: on few cores AUTOTUNE sometimes settled on half the throughput.
PARALLEL_CALLS = max(2, os.cpu_count() or 2)
# Shuffle buffer (images) of passes over a disk cache: bounded memory (500 px uint8: 0.5 GiB).
DISK_CACHE_SHUFFLE_BUFFER = 2048


def make_dataset(
    table,
    img_size,
    batch_size,
    target_mean,
    target_std,
    training=False,
    augmentation=None,
    clahe=False,
    mixup_alpha=0.0,
    label_noise_std=0.0,
    seed=42,
    cache=True,
    interpolation="bilinear",
    num_shards=1,
    shard_index=0,
    drop_remainder=False,
    epoch=None,
):
    """Build the batched dataset for one split.

    Args:
        table: DataFrame from `training.boneage.tables.read_table` (``path``, ``male``, ``boneage``).
        img_size: square side the images are resized to.
        batch_size: global batch size.
        target_mean, target_std: training statistics for the z-score.
        training: shuffle each epoch (seeded) and apply the random parts below.
        augmentation: an `Augmentation` (training only); ``None`` for none.
        clahe: contrast-limited adaptive histogram equalisation (the original applied it to
            validation and test images).
        mixup_alpha: mixup with one ``lambda ~ Beta(alpha, alpha)`` per batch (training only).
        label_noise_std: Gaussian noise added to training z-scores.
        seed: seed of every random choice.
        cache: keep the decoded (and resized, equalised) images as uint8 after the first pass:
            ``True`` or ``"memory"`` in memory, a file path on disk (`tf.data` cache files with that
            prefix), ``False`` not at all (decode every epoch). Training batches stream from the
            first image on: uncached, the file names are shuffled before decoding; cached, the
            first pass decodes in one seeded random order and later passes shuffle the cache
            (the whole split in memory; windows of ``DISK_CACHE_SHUFFLE_BUFFER`` images on disk).
        interpolation: resize method (the original's Keras 2 loader used ``"nearest"``).
        num_shards, shard_index: read only rows ``shard_index::num_shards`` (one process of a
            multi-process run). The table is first cut to a multiple of ``num_shards`` rows so every
            shard has as many rows, and the shard's random draws use their own seed.
        drop_remainder: drop a last, smaller batch, so every batch splits evenly across devices
            and every shard yields as many batches.
        epoch: training only: an int64 ``tf.Variable`` holding the epoch being trained (set it with
            `DataEpoch`). The order and the random draws of an epoch are then a function of
            ``(seed, epoch)`` alone, so a run resumed at epoch k reads what an uninterrupted run
            reads there. ``None``: a new order at every pass over the dataset.

    Returns:
        A `tf.data.Dataset` of ``({"image", "sex"}, z)`` batches.
    """
    if not target_std > 0:
        raise ValueError(f"`target_std` must be positive; got {target_std!r}.")
    if mixup_alpha < 0 or label_noise_std < 0:
        raise ValueError("`mixup_alpha` and `label_noise_std` must be >= 0.")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"`shard_index` must be in [0, {num_shards}); got {shard_index}.")
    if num_shards > 1:
        table = table.iloc[: len(table) - len(table) % num_shards].iloc[shard_index::num_shards]
        seed = seed + 1009 * shard_index
    if drop_remainder and len(table) < batch_size:
        raise ValueError(
            f"{len(table)} rows{' in this shard' if num_shards > 1 else ''} are fewer than one batch of "
            f"{batch_size}: lower the batch size or add rows."
        )
    paths = table["path"].astype(str).to_numpy()
    sex = table["male"].to_numpy(np.float32).reshape(-1, 1)
    ages = table["boneage"].to_numpy(np.float32).reshape(-1, 1)
    targets = (ages - np.float32(target_mean)) / np.float32(target_std)

    rows = tf.data.Dataset.from_tensor_slices((paths, sex, targets))
    if training:
        # One seeded random order of the file names: the first pass reads it as it is, so batches
        # stream from the first image on (no shuffle buffer waits for the whole split to decode) and
        # a cache fills in that order; later passes shuffle it again (cheaply: the names, or the
        # cached uint8 images).
        rows = rows.shuffle(len(paths), seed=seed, reshuffle_each_iteration=False)
    decode = _decoder(img_size, interpolation, clahe)
    cache_file = _cache_file(cache)  # None: no cache; "": in memory; else the files' prefix
    cached = _cached(decode(rows), cache_file) if cache_file is not None else None
    randomize = training and (augmentation is not None or label_noise_std or mixup_alpha)
    later_buffer = min(len(paths), DISK_CACHE_SHUFFLE_BUFFER) if cache_file else len(paths)

    def one_pass(shuffle_seed, reshuffle, draws, first_pass):
        if training:
            buffer = tf.where(first_pass, tf.constant(1, tf.int64), tf.constant(later_buffer, tf.int64))
            if cached is not None:
                examples = cached.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=reshuffle)
            else:
                order = rows.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=reshuffle)
                examples = decode(order)
        else:
            examples = cached if cached is not None else decode(rows)
        examples = examples.batch(batch_size, drop_remainder=drop_remainder)
        examples = examples.map(lambda x, s, z: (tf.cast(x, tf.float32), s, z))
        if not randomize:
            return examples
        # one random draw per batch, new each epoch, feeds every random choice of that batch
        return tf.data.Dataset.zip((examples, draws)).map(
            lambda batch, draw: _randomize(*batch, draw, augmentation, label_noise_std, mixup_alpha),
            num_parallel_calls=PARALLEL_CALLS,
        )

    if training and epoch is not None:

        def epoch_pass(_):
            epoch_value = epoch.read_value()
            epoch_seed = tf.cast(seed, tf.int64) * 1_000_003 + epoch_value
            draws = tf.data.Dataset.range(len(paths)).map(lambda index: epoch_seed * 100_003 + index)
            return one_pass(epoch_seed, False, draws, first_pass=epoch_value == 0)

        batches = len(paths) // batch_size + (0 if drop_remainder or len(paths) % batch_size == 0 else 1)
        dataset = tf.data.Dataset.from_tensors(0).flat_map(epoch_pass)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    else:
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = one_pass(seed, True, draws, first_pass=tf.constant(False))
    # grey until here (a third of the work and of the cache); the models take three channels
    dataset = dataset.map(lambda x, s, z: ({"image": tf.image.grayscale_to_rgb(x), "sex": s}, z))
    return dataset.prefetch(AUTOTUNE)


def _decoder(img_size, interpolation, clahe):
    """A function from a dataset of ``(path, sex, z)`` to one of ``(image, sex, z)``: decoded,
    resized (and equalised) grey float32 images in [0, 255]."""
    equalize = (
        keras.layers.ContrastLimitedAdaptiveHistogramEqualization(
            value_range=(0, 255), clip_limit=2.0, tile_grid_size=(8, 8)
        )
        if clahe
        else None
    )

    def decode(rows):
        dataset = rows.map(
            lambda path, s, z: (decode_image(path, img_size, interpolation), s, z),
            num_parallel_calls=PARALLEL_CALLS,
            deterministic=True,
        )
        if equalize is None:
            return dataset
        return dataset.map(lambda x, s, z: (equalize(x[None])[0], s, z), num_parallel_calls=PARALLEL_CALLS)

    return decode


def _cache_file(cache):
    """`tf.data`'s cache argument for ``cache``: ``None`` (no cache), ``""`` (memory) or a file prefix."""
    if not cache:
        return None
    return "" if cache is True or cache == "memory" else str(cache)


def _cached(dataset, cache_file):
    """``dataset``'s images cached as uint8 (a quarter of float32: RSNA at 500 px is 2.9 GiB, not 11.7)."""
    dataset = dataset.map(lambda x, s, z: (tf.cast(tf.round(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8), s, z))
    return dataset.cache(cache_file)


class DataEpoch(keras.callbacks.Callback):
    """Sets the ``epoch`` variable of `make_dataset` at the start of every epoch of ``fit``.

    Args:
        variable: the int64 ``tf.Variable`` given to `make_dataset`.
        offset: added to ``fit``'s epoch (the epochs of earlier training phases).

    Example:

    >>> epoch = tf.Variable(0, dtype=tf.int64)
    >>> DataEpoch(epoch, offset=5).on_epoch_begin(2)
    >>> int(epoch.numpy())
    7
    """

    def __init__(self, variable, offset=0):
        super().__init__()
        self.variable = variable
        self.offset = int(offset)

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(self.offset + epoch)


def _randomize(images, sex, targets, draw, augmentation, label_noise_std, mixup_alpha):
    """Augmentation, then label noise, then mixup of image, sex and target (the original's order)."""
    seed = tf.stack([draw, tf.constant(0, tf.int64)])
    if augmentation is not None:
        images = augmentation(images, seed + 3)
    if label_noise_std:
        targets = targets + tf.random.stateless_normal(tf.shape(targets), seed=seed, stddev=label_noise_std)
    if mixup_alpha:
        gammas = tf.random.stateless_gamma([2], seed=seed + 1, alpha=mixup_alpha)
        lam = gammas[0] / (gammas[0] + gammas[1])
        order = tf.argsort(tf.random.stateless_uniform([tf.shape(images)[0]], seed=seed + 2))
        images = lam * images + (1 - lam) * tf.gather(images, order)
        sex = lam * sex + (1 - lam) * tf.gather(sex, order)
        targets = lam * targets + (1 - lam) * tf.gather(targets, order)
    return images, sex, targets

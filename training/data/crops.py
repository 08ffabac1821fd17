"""torchvision-style crops and ImageNet normalisation inside `tf.data`.

* `random_resized_crop`: ``RandomResizedCrop(size, scale, ratio)``: a random area fraction in
  ``scale`` and aspect ratio in ``ratio`` (log-uniform), then resized to ``size``;
* `resize_center_crop`: ``Resize(resize)`` of the shorter side, then ``CenterCrop(size)``;
* `imagenet_normalize`: ``(x / 255 - mean) / std`` with the ImageNet mean and std.

Example:

>>> import tensorflow as tf
>>> image = tf.fill((40, 60, 3), 128.0)
>>> resize_center_crop(image, 32, 28).shape
TensorShape([28, 28, 3])
>>> random_resized_crop(image, 24, seed=tf.constant([1, 2])).shape
TensorShape([24, 24, 3])
"""

import math

import tensorflow as tf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_resized_crop(image, size, scale=(0.8, 1.0), ratio=(3 / 4, 4 / 3), seed=(0, 0)):
    """A random crop of ``image`` ``(H, W, C)`` covering a ``scale`` fraction of it, resized to ``size``.

    Draws as torchvision does (10 tries, then the whole image clipped to ``ratio``), with a
    stateless ``seed`` (shape ``(2,)``), so a dataset is reproducible.
    """
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    tries = 10
    area = height * width * tf.random.stateless_uniform((tries,), seeds[0], scale[0], scale[1])
    log_ratio = tf.random.stateless_uniform((tries,), seeds[1], math.log(ratio[0]), math.log(ratio[1]))
    aspect = tf.exp(log_ratio)
    crop_w = tf.round(tf.sqrt(area * aspect))
    crop_h = tf.round(tf.sqrt(area / aspect))
    fits = (crop_w <= width) & (crop_h <= height) & (crop_w > 0) & (crop_h > 0)
    first = tf.argmax(tf.cast(fits, tf.int32))
    fallback_h = tf.minimum(height, tf.round(width / ratio[0]))
    fallback_w = tf.minimum(width, tf.round(height * ratio[1]))
    crop_h = tf.where(tf.reduce_any(fits), crop_h[first], fallback_h)
    crop_w = tf.where(tf.reduce_any(fits), crop_w[first], fallback_w)
    top = tf.floor(tf.random.stateless_uniform((), seeds[2]) * (height - crop_h + 1))
    left = tf.floor(tf.random.stateless_uniform((), seeds[3]) * (width - crop_w + 1))
    crop = tf.image.crop_to_bounding_box(
        image, tf.cast(top, tf.int32), tf.cast(left, tf.int32), tf.cast(crop_h, tf.int32), tf.cast(crop_w, tf.int32)
    )
    return tf.image.resize(crop, (size, size), antialias=True)


def resize_center_crop(image, resize, size):
    """Resize ``image`` so that its shorter side is ``resize``, then take the central ``size`` x ``size``."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    factor = resize / tf.reduce_min(shape)
    new_shape = tf.cast(tf.round(shape * factor), tf.int32)
    resized = tf.image.resize(image, new_shape, antialias=True)
    top = (new_shape[0] - size) // 2
    left = (new_shape[1] - size) // 2
    return tf.image.crop_to_bounding_box(resized, top, left, size, size)


def imagenet_normalize(image):
    """``(image / 255 - mean) / std`` per channel, for RGB images in [0, 255]."""
    return (image / 255.0 - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)

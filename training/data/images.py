"""Decoding image files inside `tf.data`."""

import tensorflow as tf


def read_grey_image(path):
    """Read a PNG/JPEG file (chosen by content) as grey float32 ``(height, width, 1)`` in [0, 255]."""
    contents = tf.io.read_file(path)
    image = tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, channels=1),
        lambda: tf.io.decode_png(contents, channels=1),
    )
    return tf.cast(image, tf.float32)


def decode_image(path, img_size, interpolation="bilinear"):
    """Read a PNG/JPEG file as grey float32 ``(img_size, img_size, 1)`` in [0, 255].

    Images already at ``img_size`` are not resampled.
    """
    image = read_grey_image(path)
    same_size = tf.reduce_all(tf.shape(image)[:2] == img_size)
    image = tf.cond(
        same_size,
        lambda: image,
        lambda: tf.image.resize(image, (img_size, img_size), method=interpolation, antialias=True),
    )
    return tf.clip_by_value(tf.ensure_shape(image, (img_size, img_size, 1)), 0.0, 255.0)

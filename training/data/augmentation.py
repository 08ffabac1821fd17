"""Random training augmentation inside `tf.data`: one affine warp per image, brightness, contrast."""

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Random training augmentation (defaults: the original's, plus brightness and contrast).

    Args:
        flip: mirror left-right with probability 0.5.
        rotation_degrees: rotations drawn from +-this many degrees.
        shift: translations up to this fraction of height and width.
        zoom: zoom factors drawn from [1 - zoom, 1 + zoom], independently per axis.
        brightness: brightness shift up to this fraction of the value range (0 disables).
        contrast: contrast factor drawn from [1 - contrast, 1 + contrast] (0 disables).
    """

    flip: bool = True
    rotation_degrees: float = 20.0
    shift: float = 0.2
    zoom: float = 0.2
    brightness: float = 0.2
    contrast: float = 0.2

    @property
    def geometric(self):
        """Whether any of flip, rotation, shift or zoom is on (an affine warp is needed)."""
        return bool(self.flip or self.rotation_degrees or self.shift or self.zoom)

    def __call__(self, images, seed):
        """Augment a batch ``(B, H, W, C)`` in [0, 255]; ``seed`` is a stateless seed pair.

        Flip, rotation, shift and zoom are composed into one affine warp per image (bilinear,
        edges filled with the nearest pixel), so each image is resampled once, as the original's
        ImageDataGenerator did; then brightness and contrast, then clipping to [0, 255].
        """
        if not (self.geometric or self.brightness or self.contrast):
            return images
        batch = tf.shape(images)[0]
        height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
        draws = tf.random.stateless_uniform((batch, 8), seed=seed, minval=-1.0, maxval=1.0)
        mirror = tf.where(draws[:, 0] < 0, -1.0, 1.0) if self.flip else tf.ones([batch])
        angle = draws[:, 1] * (self.rotation_degrees * np.pi / 180.0)
        zoom_x, zoom_y = 1.0 + draws[:, 2] * self.zoom, 1.0 + draws[:, 3] * self.zoom
        shift_x, shift_y = draws[:, 4] * self.shift * width, draws[:, 5] * self.shift * height
        # output pixel p -> input pixel centre + R(angle) diag(mirror * zoom_x, zoom_y) (p - centre) + shift
        cos, sin = tf.cos(angle), tf.sin(angle)
        a00, a01 = cos * mirror * zoom_x, -sin * zoom_y
        a10, a11 = sin * mirror * zoom_x, cos * zoom_y
        cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
        b0 = cx - a00 * cx - a01 * cy + shift_x
        b1 = cy - a10 * cx - a11 * cy + shift_y
        zeros = tf.zeros([batch])
        transforms = tf.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)
        if self.geometric:
            warped = tf.raw_ops.ImageProjectiveTransformV3(
                images=images, transforms=transforms, output_shape=tf.shape(images)[1:3], fill_value=0.0,
                interpolation="BILINEAR", fill_mode="NEAREST",
            )
            images = tf.ensure_shape(warped, images.shape)  # keep the static size the models need
        if self.brightness:
            images = images + (draws[:, 6] * self.brightness * 255.0)[:, None, None, None]
        if self.contrast:
            mean = tf.reduce_mean(images, axis=(1, 2), keepdims=True)
            images = (images - mean) * (1.0 + draws[:, 7] * self.contrast)[:, None, None, None] + mean
        return tf.clip_by_value(images, 0.0, 255.0)

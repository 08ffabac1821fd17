"""Random training augmentation inside `tf.data`: one affine warp per image or volume, brightness, contrast.

The warp's matrix and resampling are `modeling.geometry`'s; masks get the same warp and nothing else.
"""

import dataclasses

import numpy as np
import tensorflow as tf

# Keras' TensorFlow backend ops, importable under any Keras backend: what Keras' own preprocessing
# layers run inside `tf.data` (there is no public name for them).
from keras.src.backend import tensorflow as tensorflow_backend

from modeling import geometry

# The geometry's arrays inside `tf.data`: TensorFlow tensors, whatever the Keras backend.
TF_LIBRARY = geometry.ArrayLibrary(tf, tensorflow_backend)

# Columns of the uniform draws in [-1, 1] per sample. Images use the first 8 (the original's layout);
# volumes add zoom and shift along z and the angles about x and y.
_FLIP, _ANGLE, _BRIGHTNESS, _CONTRAST = 0, 1, 6, 7
_ZOOM, _SHIFT, _ANGLES_XY = (2, 3, 8), (4, 5, 9), (10, 11)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Random training augmentation (defaults: the original's, plus brightness and contrast).

    Args:
        flip: mirror left-right with probability 0.5.
        rotation_degrees: rotations drawn from +-this many degrees.
        shift: translations up to this fraction of the size along each axis.
        zoom: zoom factors drawn from [1 - zoom, 1 + zoom], independently per axis.
        brightness: brightness shift up to this fraction of the value range (0 disables).
        contrast: contrast factor drawn from [1 - contrast, 1 + contrast] (0 disables).
        rotation_all_axes: volumes only: rotate about all three axes (each angle drawn from
            +-``rotation_degrees``) instead of about the depth axis alone.
        flip_all_axes: with ``flip``, also mirror the other axes (up-down; for volumes also along
            depth), each independently with probability 0.5 (MONAI ``RandFlip`` on every axis).
        mask_interpolation: how masks are resampled, as in `modeling.geometry.warp_mask`:
            "nearest" (label maps) or "bilinear" (binary masks, thresholded at 0.5).

    Example:

    >>> images = tf.fill((2, 8, 8, 1), 100.0)
    >>> masks = tf.ones((2, 8, 8, 1), tf.int32)
    >>> out, out_masks = Augmentation()(images, tf.constant([1, 2]), masks=masks)
    >>> out.shape, out_masks.dtype
    (TensorShape([2, 8, 8, 1]), tf.int32)
    """

    flip: bool = True
    rotation_degrees: float = 20.0
    shift: float = 0.2
    zoom: float = 0.2
    brightness: float = 0.2
    contrast: float = 0.2
    rotation_all_axes: bool = False
    mask_interpolation: str = "nearest"
    flip_all_axes: bool = False

    def __post_init__(self):
        if self.mask_interpolation not in geometry.INTERPOLATIONS:
            raise ValueError(
                f"`mask_interpolation` must be one of {geometry.INTERPOLATIONS}; got {self.mask_interpolation!r}."
            )

    @property
    def geometric(self):
        """Whether any of flip, rotation, shift or zoom is on (an affine warp is needed)."""
        return bool(self.flip or self.rotation_degrees or self.shift or self.zoom)

    def __call__(self, images, seed, masks=None):
        """Augment images ``(B, H, W, C)`` or volumes ``(B, D, H, W, C)`` in [0, 255].

        Flip, rotation, shift and zoom are composed into one affine warp per sample (bilinear,
        edges filled with the nearest pixel), so each is resampled once, as the original's
        ImageDataGenerator did; then brightness and contrast, then clipping to [0, 255].

        Args:
            images: the batch, float32.
            seed: a stateless seed pair; the same seed gives the same augmentation.
            masks: optional masks of the same spatial size, warped with the same draw (and
                nothing else: no brightness, contrast or clipping).

        Returns:
            The augmented images, or ``(images, masks)`` when masks are given.
        """
        if not (self.geometric or self.brightness or self.contrast):
            return images if masks is None else (images, masks)
        rank = len(images.shape)
        shape = tf.unstack(tf.cast(tf.shape(images)[1:-1], tf.float32))  # (H, W) or (D, H, W)
        draws = tf.random.stateless_uniform(
            (tf.shape(images)[0], 8 if rank == 4 else 12), seed=seed, minval=-1.0, maxval=1.0
        )
        if self.geometric:
            other_flips = None
            if self.flip and self.flip_all_axes:  # separate draws keep the others' streams unchanged
                other_seed = tf.random.experimental.stateless_fold_in(seed, 1)
                other_flips = tf.random.stateless_uniform((tf.shape(images)[0], rank - 3), seed=other_seed) < 0.5
            matrices = self._matrices(draws, shape, other_flips)
            images = geometry.warp(images, matrices, library=TF_LIBRARY)
            if masks is not None:
                masks = geometry.warp_mask(masks, matrices, self.mask_interpolation, library=TF_LIBRARY)
        per_sample = (-1,) + (1,) * (rank - 1)
        if self.brightness:
            images = images + tf.reshape(draws[:, _BRIGHTNESS] * self.brightness * 255.0, per_sample)
        if self.contrast:
            mean = tf.reduce_mean(images, axis=tuple(range(1, rank - 1)), keepdims=True)
            images = (images - mean) * tf.reshape(1.0 + draws[:, _CONTRAST] * self.contrast, per_sample) + mean
        images = tf.clip_by_value(images, 0.0, 255.0)
        return images if masks is None else (images, masks)

    def _matrices(self, draws, shape, other_flips=None):
        """Output-to-input matrices: ``input = centre + R diag(mirror * zoom) (output - centre) + shift``.

        ``other_flips``: booleans ``(n, axes - 1)`` mirroring y[, z]; ``None`` flips left-right only.
        """
        axes = len(shape)
        mirror = draws[:, _FLIP] < 0 if self.flip else tf.zeros_like(draws[:, _FLIP], tf.bool)
        others = [tf.zeros_like(mirror)] * (axes - 1) if other_flips is None else tf.unstack(other_flips, axis=1)
        flip = tf.stack([mirror, *others], axis=1)
        radians = self.rotation_degrees * np.pi / 180.0
        if axes == 3 and self.rotation_all_axes:
            angle = tf.gather(draws, [*_ANGLES_XY, _ANGLE], axis=1) * radians  # about x, y, z
        else:
            angle = draws[:, _ANGLE] * radians
        zoom = 1.0 + tf.gather(draws, _ZOOM[:axes], axis=1) * self.zoom
        shift = tf.gather(draws, _SHIFT[:axes], axis=1) * self.shift * tf.stack(shape[::-1])  # x, y[, z]
        return geometry.affine_matrix(shape, flip=flip, rotation=angle, scale=zoom, shift=shift, library=TF_LIBRARY)

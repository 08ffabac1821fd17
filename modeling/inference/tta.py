"""Test-time augmentation: predictions averaged over random views of every image or volume.

The original averaged several passes over un-augmented images (no transform
at all) and, reading a Python generator again each time, shifted later passes
against the labels. Here every batch is warped ``n`` times with views drawn
once from a seed, the ``n`` copies go through the model in one forward pass,
and the per-view predictions are reduced per image. Only the image input is
transformed; other inputs (sex) are repeated alongside. Per-pixel predictions
(segmentation maps) are first warped back with each view's inverse.
"""

import keras
import numpy as np

from modeling.inference.batches import image_index, iterate_batches, model_call_inputs
from modeling.inference.transforms import DEFAULT_TRANSFORMS, apply_views, sample_views, undo_views

REDUCTIONS = ("mean", "median")
OUTPUTS = ("auto", "vector", "map")


def predict_tta(
    model,
    data,
    transforms=DEFAULT_TRANSFORMS,
    n=8,
    seed=0,
    reduce="mean",
    batch_size=16,
    fill_mode="nearest",
    output="auto",
):
    """Predict with test-time augmentation.

    Args:
        model: a Keras model; its image input is the one named "image" (else the first):
            images ``(B, H, W, C)`` or volumes ``(B, D, H, W, C)``.
        data: inputs as arrays (an image array, ``[image, sex]`` or
            ``{"image": ..., "sex": ...}``), ``(inputs, targets)``, or a batched
            ``tf.data.Dataset`` yielding either.
        transforms: sequence of `ViewTransform` (`Flip`, `Rotation`, `Shift`,
            `Zoom`) composed into one warp per view (2D or 3D, after the image
            input); ``()`` gives identity views.
        n: number of views per image.
        seed: the views are drawn from this seed, so results are reproducible.
        reduce: "mean" or "median" over the views, or ``None`` to return every view.
        batch_size: images per step for array data; each forward pass holds
            ``n * batch_size`` images. A dataset keeps its own batches.
        fill_mode: how pixels moved in from outside the image are filled (also
            those of a map that a view did not see, when it is warped back).
        output: "vector" (the prediction is not spatial, as bone age's), "map"
            (per-pixel predictions ``(B, h, w, K)`` or ``(B, d, h, w, K)`` of any
            spatial size, each view's warped back with its inverse before
            reducing), or "auto": "map" when the prediction has the image's rank.

    Returns:
        numpy array like ``model.predict``'s, or ``(n, samples, ...)`` when
        ``reduce`` is ``None`` (maps already warped back).

    Example:

    >>> import keras, numpy as np
    >>> image = keras.Input((8, 8, 3), name="image")
    >>> model = keras.Model(image, keras.layers.Dense(1)(keras.layers.Flatten()(image)))
    >>> images = np.random.default_rng(0).random((5, 8, 8, 3)).astype("float32")
    >>> predict_tta(model, images, n=4, batch_size=2).shape
    (5, 1)
    >>> predict_tta(model, images, n=4, reduce=None).shape
    (4, 5, 1)
    >>> segmenter = keras.Model(image, keras.layers.Conv2D(2, 1)(image))
    >>> predict_tta(segmenter, images, n=4).shape  # each view's map warped back, then averaged
    (5, 8, 8, 2)
    """
    predictions, _ = predict_views(model, data, transforms, n, seed, reduce, batch_size, fill_mode, output)
    return predictions


def predict_views(model, data, transforms, n, seed, reduce, batch_size, fill_mode, output="auto"):
    """Reduced (or per-view) predictions and the targets found in ``data`` (or None)."""
    if reduce not in REDUCTIONS + (None,):
        raise ValueError(f"`reduce` must be 'mean', 'median' or None; got {reduce!r}.")
    if output not in OUTPUTS:
        raise ValueError(f"`output` must be one of {OUTPUTS}; got {output!r}.")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    index = image_index(model)
    outputs, targets = [], []
    for inputs, batch_targets in iterate_batches(data, model, int(batch_size)):
        images = inputs[index]
        views = sample_views(transforms, n, seed, *images.shape[1:-1])
        stacked = [
            apply_views(images, views, fill_mode) if i == index else np.concatenate([array] * len(views))
            for i, array in enumerate(inputs)
        ]
        per_view = np.asarray(model.predict_on_batch(model_call_inputs(stacked)))
        if output == "map" or (output == "auto" and per_view.ndim == images.ndim):
            if per_view.ndim != images.ndim:
                raise ValueError(
                    f"output='map' needs per-pixel predictions like the images; got shape {per_view.shape}."
                )
            per_view = keras.ops.convert_to_numpy(undo_views(per_view, views, images.shape[1:-1], fill_mode))
        per_view = per_view.reshape((len(views), len(images)) + per_view.shape[1:])
        if reduce == "mean":
            outputs.append(per_view.mean(axis=0))
        elif reduce == "median":
            outputs.append(np.median(per_view, axis=0))
        else:
            outputs.append(per_view)
        if batch_targets is not None:
            targets.append(batch_targets)
    if not outputs:
        raise ValueError("The data holds no samples.")
    predictions = np.concatenate(outputs, axis=0 if reduce else 1)
    return predictions, (np.concatenate(targets) if targets else None)

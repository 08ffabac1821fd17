"""Inference utilities: test-time augmentation and the view transforms it draws.

* `transforms`: `Flip`, `Rotation`, `Shift`, `Zoom` (`ViewTransform`), `sample_views`, `apply_views`,
  `undo_views` (per-pixel predictions warped back); images and volumes, geometry from `modeling.geometry`.
* `tta`: `predict_tta` (views through the model in one pass, maps warped back, reduced per image).
* `batches`: reading inputs and targets batch by batch from arrays or a `tf.data.Dataset`.

The Keras callback that runs `predict_tta` during ``fit`` is `callbacks.TestTimeAugmentation`.
"""

from modeling.inference.transforms import (
    DEFAULT_TRANSFORMS,
    Flip,
    Rotation,
    Shift,
    ViewTransform,
    Zoom,
    apply_views,
    sample_views,
    undo_views,
)
from modeling.inference.tta import OUTPUTS, REDUCTIONS, predict_tta

__all__ = [
    "DEFAULT_TRANSFORMS",
    "OUTPUTS",
    "REDUCTIONS",
    "Flip",
    "Rotation",
    "Shift",
    "ViewTransform",
    "Zoom",
    "apply_views",
    "predict_tta",
    "sample_views",
    "undo_views",
]

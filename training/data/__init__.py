"""Data utilities shared by the systems' input pipelines.

* `tables`: row-by-row table reading with errors naming the file and line (`DataError`,
  `RowProblem`, `TableReport`, `check_rows`, `check_image_file`).
* `images`: PNG/JPEG decoding inside `tf.data` (`read_grey_image`, `decode_image`).
* `volumes`: NIfTI volumes read, resized and scaled to [0, 1] (`read_volume`, `load_volume`, `load_volumes`).
* `augmentation`: random affine warps of images or volumes (and their masks), brightness and contrast
  inside `tf.data` (`Augmentation`).
"""

from training.data.augmentation import Augmentation
from training.data.images import decode_image, read_grey_image
from training.data.tables import DataError, RowProblem, TableReport, check_image_file, check_rows, read_csv_as_text
from training.data.volumes import load_volume, load_volumes, read_volume

__all__ = [
    "Augmentation",
    "DataError",
    "RowProblem",
    "TableReport",
    "check_image_file",
    "check_rows",
    "decode_image",
    "read_csv_as_text",
    "read_grey_image",
]
__all__ += ["load_volume", "load_volumes", "read_volume"]

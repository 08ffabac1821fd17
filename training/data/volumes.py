"""Reading 3D volumes (NIfTI, with nibabel) into channels-last arrays at a model's size, scaled to [0, 1].

The steps of MONAI's ``LoadImage -> EnsureChannelFirst -> Resize -> ScaleIntensity``, channels last:
`read_volume` accepts a 3D volume, or a 4D one with a single channel (first or last axis), and
returns ``(D, H, W, 1)``; `resize_volume` resamples to the model size (linear, as
`scipy.ndimage.zoom` with ``order=1``; MONAI's default for ``Resize`` is area averaging);
`scale_intensity` maps each volume's min..max to [0, 1]. `load_volumes` does all three for a list of
files, with errors naming the file.
"""

from pathlib import Path

import numpy as np
from scipy import ndimage

from training.data.tables import RowProblem

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def read_volume(path):
    """The volume in a NIfTI file as float32 ``(D, H, W, 1)`` (the file's voxel axes in order).

    Raises:
        RowProblem: missing or unreadable file, or not 3D / single-channel 4D (the message names the file).

    Example:

    >>> import nibabel, tempfile
    >>> path = Path(tempfile.mkdtemp()) / "v.nii.gz"
    >>> nibabel.save(nibabel.Nifti1Image(np.zeros((4, 5, 6), "float32"), np.eye(4)), path)
    >>> read_volume(path).shape
    (4, 5, 6, 1)
    """
    import nibabel

    path = Path(path)
    if not path.is_file():
        raise RowProblem("missing volume", f"volume not found: {path}")
    try:
        data = np.asarray(nibabel.load(path).get_fdata(dtype=np.float32))
    except Exception as error:  # nibabel raises many types for broken files
        raise RowProblem("unreadable volume", f"unreadable NIfTI file {path}: {error}") from None
    if data.ndim == 4 and 1 in (data.shape[0], data.shape[-1]):
        data = data[0] if data.shape[0] == 1 and data.shape[-1] != 1 else data[..., 0]
    if data.ndim != 3:
        raise RowProblem(
            "not a 3D volume", f"{path} has shape {data.shape}; expected a 3D volume or a 4D one with one channel"
        )
    if not np.isfinite(data).all():
        raise RowProblem("unreadable volume", f"{path} holds NaN or infinite values")
    return data[..., None]


def resize_volume(volume, size):
    """Resample ``(D, H, W, C)`` to ``size`` (an int or ``(D, H, W)``) with linear interpolation.

    Example:

    >>> resize_volume(np.ones((8, 8, 4, 1), "float32"), 4).shape
    (4, 4, 4, 1)
    """
    size = (size,) * 3 if np.isscalar(size) else tuple(size)
    if tuple(volume.shape[:3]) == size:
        return volume.astype("float32")
    factors = [new / old for new, old in zip(size, volume.shape[:3], strict=True)] + [1.0]
    return ndimage.zoom(volume, factors, order=1, mode="nearest", grid_mode=True).astype("float32")


def scale_intensity(volume):
    """Map the volume's min..max to [0, 1] (a constant volume becomes zeros).

    Example:

    >>> scale_intensity(np.array([2.0, 4.0, 6.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    low, high = float(volume.min()), float(volume.max())
    return np.zeros_like(volume) if high == low else (volume - low) / (high - low)


def load_volume(path, size):
    """`read_volume`, `resize_volume` and `scale_intensity` of one file: float32 ``(*size, 1)`` in [0, 1]."""
    return scale_intensity(resize_volume(read_volume(path), size)).astype("float32")


def load_volumes(paths, size):
    """Every file of ``paths`` as one float32 array ``(N, *size, 1)``.

    Raises:
        RowProblem: for the first file that cannot be used.
    """
    size = (size,) * 3 if np.isscalar(size) else tuple(size)
    out = np.empty((len(paths), *size, 1), "float32")
    for index, path in enumerate(paths):
        out[index] = load_volume(path, size)
    return out

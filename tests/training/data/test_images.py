"""Reading image files inside `tf.data`: grey values and the file's own size, PNG or JPEG by content."""

import numpy as np
from PIL import Image

from training.data.images import read_grey_image


def test_read_grey_image_keeps_size_and_values_whatever_the_extension(tmp_path):
    pixels = (np.arange(15, dtype=np.uint8) * 17).reshape(3, 5)
    Image.fromarray(pixels).save(tmp_path / "ramp.png")
    image = np.asarray(read_grey_image(str(tmp_path / "ramp.png")))
    assert image.shape == (3, 5, 1) and image.dtype == np.float32
    np.testing.assert_array_equal(image[..., 0], pixels.astype(np.float32))
    # a JPEG saved under a .png name is still decoded (the decoder is chosen by the bytes)
    Image.fromarray(np.full((6, 4), 200, np.uint8)).save(tmp_path / "flat.png", format="JPEG", quality=100)
    flat = np.asarray(read_grey_image(str(tmp_path / "flat.png")))
    assert flat.shape == (6, 4, 1)
    np.testing.assert_allclose(flat, 200.0, atol=1.0)

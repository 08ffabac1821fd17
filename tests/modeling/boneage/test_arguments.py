"""Builder arguments: NumPy integers are accepted as widths (as Python ints)."""

import numpy as np
import pytest

from modeling.boneage import sex_model


def test_numpy_integer_widths_are_accepted():
    model = sex_model(
        (32, 32, 3), backbone="mobilenet_v2", weights=None, dense_units=np.int64(12), gender_units=np.int32(4)
    )
    assert model.get_layer("sex_dense_1").units == 4 and isinstance(model.get_layer("sex_dense_1").units, int)
    with pytest.raises(ValueError, match="`dense_units` must be a positive integer"):
        sex_model((32, 32, 3), backbone="mobilenet_v2", weights=None, dense_units=np.float64(12.0))

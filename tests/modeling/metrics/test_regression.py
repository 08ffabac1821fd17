"""The months metric against hand-computed values."""

import keras
import numpy as np
import pytest

from modeling.metrics import MAEMonths, mae_months
from tests.checkers import run_serialization_test

pytestmark = pytest.mark.multibackend


def test_mae_months_and_metric():
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(mae_months([[1.0], [-1.0]], [[0.5], [0.0]], boneage_mean=130.0, boneage_std=28.0)),
        [14.0, 28.0],
    )
    metric = MAEMonths(boneage_mean=130.0, boneage_std=28.0)
    metric.update_state([[1.0], [-1.0]], [[0.5], [0.0]])
    metric.update_state([[0.0]], [[0.0]])
    assert float(metric.result()) == pytest.approx((14 + 28 + 0) / 3)
    revived = run_serialization_test(metric)
    assert (revived.boneage_mean, revived.boneage_std) == (130.0, 28.0)
    with pytest.raises(ValueError, match="boneage_std"):
        MAEMonths(130.0, 0.0)

"""Weight compatibility: the original Keras 2 weight files load and predict the same."""

import json
from pathlib import Path

import numpy as np
import pytest

from modeling.boneage import attn_sex_model, attn_sex_model_improved

pytestmark = pytest.mark.multibackend

# Written by the original Keras 2 code (copied from the project's shared fixtures; see its README.md).
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "boneage" / "original_keras2"
CASES = {
    "attn_sex_model__mobilenet_v2__128": attn_sex_model,
    "attn_sex_model_improved__mobilenet_v2__128": attn_sex_model_improved,
}


@pytest.fixture(scope="module")
def summary():
    return json.loads((FIXTURES / "summary.json").read_text())


@pytest.mark.parametrize("stem", sorted(CASES))
def test_original_weights_reproduce_original_predictions(stem, summary):
    model = CASES[stem]((128, 128, 3), None, ["mae"], backbone="mobilenet_v2", weights=None)
    assert model.count_params() == summary[stem]["params_total"]
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == summary[stem]["params_trainable"]
    assert len(model.weights) == summary[stem]["n_weight_arrays"]

    model.load_weights(FIXTURES / f"{stem}.h5")
    data = np.load(FIXTURES / f"{stem}_io.npz")
    predicted = model.predict([data["image"], data["male"]], verbose=0)
    assert np.abs(predicted - data["expected"]).max() <= 1e-4
    # The fixture is informative: predictions vary across the six inputs.
    assert np.isclose(data["expected"].std(), summary[stem]["expected_std"], rtol=1e-5)

"""The TestTimeAugmentation callback: metrics at the chosen epochs equal `predict_tta`'s (images and volumes)."""

import math

import keras
import numpy as np
import pytest

from callbacks import TestTimeAugmentation
from modeling.inference import Flip, Rotation, Zoom, predict_tta
from tests.modeling.inference.test_tta import inputs, two_input_model

pytestmark = pytest.mark.multibackend


def test_bad_reduction_fails():
    with pytest.raises(ValueError, match="reduce"):
        TestTimeAugmentation((inputs(), np.zeros((7, 1))), reduce=None)


def test_callback_reports_tta_metrics_at_chosen_epochs_and_at_the_end():
    model = two_input_model("flatten")
    model.compile(optimizer="sgd", loss="mae")
    x, targets = inputs(), np.random.default_rng(1).normal(size=(7, 1)).astype("float32")
    tta = TestTimeAugmentation((x, targets), epochs=[1], n=3, seed=2, boneage_mean=120.0, boneage_std=30.0)
    history = model.fit(x, targets, epochs=2, batch_size=7, verbose=0, callbacks=[tta])
    mae = history.history["val_tta_mae"]
    assert math.isnan(mae[0]) and not math.isnan(mae[1])
    expected = np.abs(predict_tta(model, x, n=3, seed=2) - targets).mean()
    assert mae[1] == pytest.approx(expected, rel=1e-5)
    assert history.history["val_tta_mae_months"][1] == pytest.approx(30.0 * expected, rel=1e-5)
    assert tta.results["final"] == tta.results[1]


def test_callback_needs_targets():
    model = two_input_model("flatten")
    model.compile(optimizer="sgd", loss="mae")
    x = inputs()
    with pytest.raises(ValueError, match="needs targets"):
        model.fit(x, np.zeros((7, 1)), epochs=1, verbose=0, callbacks=[TestTimeAugmentation(x)])


def test_callback_evaluates_volume_models_with_3d_views():
    volume = keras.Input((4, 8, 8, 1), name="image")
    model = keras.Model(volume, keras.layers.Dense(1)(keras.layers.Flatten()(volume)))
    model.compile(optimizer="sgd", loss="mae")
    x = np.random.default_rng(2).random((5, 4, 8, 8, 1)).astype("float32")
    targets = np.random.default_rng(3).normal(size=(5, 1)).astype("float32")
    transforms = (Flip(depth=True), Rotation(10.0, all_axes=True), Zoom(0.1))
    tta = TestTimeAugmentation((x, targets), epochs=[0], transforms=transforms, n=3, seed=4)
    model.fit(x, targets, epochs=1, batch_size=5, verbose=0, callbacks=[tta])
    expected = np.abs(predict_tta(model, x, transforms=transforms, n=3, seed=4) - targets).mean()
    assert tta.results[0]["val_tta_mae"] == pytest.approx(expected, rel=1e-5)
    assert abs(expected - np.abs(model.predict(x, verbose=0) - targets).mean()) > 1e-4  # the views mattered

"""Shared pytest set-up: every test starts from the same random state."""

import keras
import pytest


@pytest.fixture(autouse=True)
def fixed_random_state():
    keras.utils.set_random_seed(1234)
    yield

"""Shared pytest set-up: every test starts from the same random state and fresh layer names."""

import keras
import pytest


@pytest.fixture(autouse=True)
def fixed_random_state():
    # auto-generated names (conv2d, conv2d_1, ...) restart per test; no gc pass, it costs seconds
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    yield

"""Shared pytest set-up: every test starts from the same random state and fresh layer names; the
`eager_tensorflow` fixture runs TensorFlow functions eagerly (cheaper than tracing for one-step fits)."""

import keras
import pytest


@pytest.fixture(autouse=True)
def fixed_random_state():
    # auto-generated names (conv2d, conv2d_1, ...) restart per test; no gc pass, it costs seconds
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def eager_tensorflow():
    """TensorFlow functions run eagerly: a 1-step fit costs less than tracing its train step (about half the time)."""
    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(False)

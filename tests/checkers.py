"""Reusable checks for layers and models (in the spirit of keras-hub's TestCase)."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def run_serialization_test(instance):
    """`get_config` -> `from_config` gives an equal config; Keras (de)serialisation round-trips."""
    config = instance.get_config()
    json.dumps(config)  # plain JSON types only
    revived = instance.__class__.from_config(config)
    assert revived.get_config() == config
    serialized = keras.saving.serialize_keras_object(instance)
    assert "medfusion" in serialized["registered_name"] or serialized["module"].startswith("keras")
    deserialized = keras.saving.deserialize_keras_object(serialized)
    assert type(deserialized) is type(instance)
    assert deserialized.get_config() == config
    return revived


def gradient_of(function, x):
    """d function(x) / dx of a scalar function of one array, computed on the backend."""
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.grad(function)(keras.ops.convert_to_tensor(x)))
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value_ = function(x)
    return tape.gradient(value_, x, unconnected_gradients=tf.UnconnectedGradients.ZERO).numpy()


def run_model_saving_test(model, inputs, tmp_path):
    """Save to `.keras`, reload with `safe_mode=True`; predictions must be identical."""
    path = tmp_path / f"{model.name}.keras"
    expected = model.predict(inputs, verbose=0)
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    keras.tree.map_structure(np.testing.assert_array_equal, reloaded.predict(inputs, verbose=0), expected)
    assert [w.shape for w in reloaded.weights] == [w.shape for w in model.weights]
    return reloaded


def assert_one_training_step_learns(model, inputs, targets, unchanged=()):
    """One `train_on_batch` changes every trainable weight and leaves frozen ones alone.

    Args:
        unchanged: path prefixes of trainable weights that get no gradient by design.
    """
    trainable_before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    frozen_before = [keras.ops.convert_to_numpy(w).copy() for w in model.non_trainable_weights]
    logs = model.train_on_batch(inputs, targets, return_dict=True)
    assert np.isfinite(logs["loss"])
    changed = [
        not np.array_equal(before, keras.ops.convert_to_numpy(w))
        for before, w in zip(trainable_before, model.trainable_weights, strict=False)
    ]
    for weight, did_change in zip(model.trainable_weights, changed, strict=False):
        expected = not weight.path.startswith(tuple(unchanged))
        assert did_change == expected, f"{weight.path}: changed={did_change}, expected {expected}"
    statistics = {  # a trainable BatchNorm's moving statistics follow the batch, by design
        id(variable)
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
        for variable in (layer.moving_mean, layer.moving_variance)
    }
    for before, w in zip(frozen_before, model.non_trainable_weights, strict=False):
        if id(w) in statistics:
            continue
        np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(w), err_msg=w.path)
    return logs


def tiny_backbone(include_top=False, weights=None, input_shape=(32, 32, 3)):
    """A small convolutional backbone with the `keras.applications` call signature.

    Random `keras.applications` networks give almost constant features at
    inference (their BatchNorm statistics are uncalibrated), which hides
    gradients; this one keeps feature variance and builds in milliseconds.
    Output: ``(H / 8, W / 8, 24)``.
    """
    del include_top, weights
    image = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(image)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(24, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(image, x, name="tiny_backbone")


# XLA:CPU's message when one logical device never joins an all-reduce (it then aborts the process)
STUCK_RENDEZVOUS = "Termination timeout for `all reduce"


def _run_from_repository(command, env, timeout, attempts=3):
    """Run ``[python, *command]``; a run that hangs is started again, up to ``attempts`` runs.

    The runs take 20-110 s. In whole-suite runs on 2 cores (2026-12-07) a JAX run on two logical
    devices sometimes never finished while the other test worker loaded the cores: once it hung
    until the 600 s limit (volume fusion), once XLA aborted it because device 1 never joined the
    first all-reduce (implant; XLA's stack: device 0 waiting in ``InProcessCommunicator::AllReduce``).
    Both tests pass alone (18 s for volume fusion). So a run killed after ``timeout`` s, or aborted by
    XLA for a stuck all-reduce, is a hang of the devices' runtime, not of the code under test, and is
    run again; any other failure fails at once, and ``attempts`` hangs fail with every run's output tail.
    """
    # CPU devices only: on a GPU host a strategy would take the GPU and find one replica
    env = {**env, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    hung = []
    for _ in range(attempts):
        try:
            completed = subprocess.run(
                [sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as expired:
            tail = (expired.stderr or b"")[-2000:]
            hung.append(tail.decode(errors="replace") if isinstance(tail, bytes) else tail)
            continue
        if completed.returncode != 0 and STUCK_RENDEZVOUS in completed.stderr:
            hung.append(completed.stderr[-2000:])
            continue
        assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
        if hung:  # shown in pytest's warnings summary
            warnings.warn(f"{command} passed after {len(hung)} hung run(s)", stacklevel=2)
        return completed
    raise AssertionError(f"{command} hung {attempts} times ({timeout} s each at most); stderr tails: {hung}")


def run_on_two_jax_cpu_devices(command, timeout=300):
    """Run ``[python, *command]`` from the repository under JAX with two logical CPU devices.

    Args:
        command: what follows the interpreter, e.g. ``["-m", "training.x.train", "--epochs", "1"]``.

    Returns:
        The completed process (it must have exited with 0; its output tails are the failure message).
    """
    env = {
        "KERAS_BACKEND": "jax",
        # the two devices' threads meet at every all-reduce; one that has not arrived after 90 s
        # (XLA's default is 40) is taken as stuck: XLA aborts the run and the checker starts it again
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2 --xla_cpu_collective_call_terminate_timeout_seconds=90",
    }
    return _run_from_repository(command, env, timeout)


_TWO_TF_CPUS = (
    "import runpy, sys; import tensorflow as tf; "
    "tf.config.set_logical_device_configuration(tf.config.list_physical_devices('CPU')[0], "
    "[tf.config.LogicalDeviceConfiguration()] * 2); "
    "module = sys.argv.pop(1); runpy.run_module(module, run_name='__main__', alter_sys=True)"
)


def run_on_two_tensorflow_cpu_devices(module, args, timeout=300):
    """Run ``python -m module *args`` from the repository under TensorFlow with two logical CPU devices.

    Args:
        module: e.g. ``"training.implant_dimensions.train"``.
        args: its command-line flags.

    Returns:
        The completed process (it must have exited with 0; its output tails are the failure message).
    """
    return _run_from_repository(["-c", _TWO_TF_CPUS, module, *args], {"KERAS_BACKEND": "tensorflow"}, timeout)

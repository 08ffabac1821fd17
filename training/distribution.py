"""Multi-device training and numeric precision for the training commands.

``--distribute mirrored`` runs ``fit`` under TensorFlow's `tf.distribute.MirroredStrategy` over the
local devices (the global batch is split across replicas); ``--mixed_precision`` computes in
bfloat16 on CPUs and float16 on GPUs while the model keeps float32 outputs and losses.
"""

import contextlib

import keras

DISTRIBUTE_CHOICES = ("none", "mirrored")


def check_distribute_flag(kind):
    """The backend must be able to serve ``kind``; returns an error message or ``None``."""
    if kind == "mirrored" and keras.backend.backend() != "tensorflow":
        return (
            f"--distribute mirrored needs the TensorFlow backend; KERAS_BACKEND is "
            f"'{keras.backend.backend()}'. Unset KERAS_BACKEND or use --distribute none."
        )
    return None


def make_strategy(kind, global_batch_size):
    """The `tf.distribute` strategy for ``kind`` (``None`` for ``"none"``).

    Raises:
        ValueError: when the global batch cannot be split evenly across the replicas.
    """
    if kind == "none":
        return None
    import tensorflow as tf  # only the TensorFlow backend gets here

    strategy = tf.distribute.MirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"--batch_size {global_batch_size} is the global batch; it must be divisible by the "
            f"{replicas} replicas of the MirroredStrategy."
        )
    return strategy


def strategy_scope(strategy):
    """``strategy.scope()``, or a no-op context without a strategy."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def mixed_precision_policy():
    """``"mixed_float16"`` when a GPU is visible to Keras, else ``"mixed_bfloat16"``."""
    devices = [device.lower() for device in keras.distribution.list_devices()]
    return "mixed_float16" if any(device.startswith("gpu") for device in devices) else "mixed_bfloat16"


@contextlib.contextmanager
def dtype_policy(name):
    """Set Keras' global dtype policy for the duration of a block (``None`` keeps it)."""
    previous = keras.config.dtype_policy()
    if name is not None:
        keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)

"""Multi-device and multi-process training, and numeric precision, for the training commands.

Two engines, both provided by Keras and its backends:

* ``--distribute mirrored`` (TensorFlow backend, one machine): ``fit`` under
  `tf.distribute.MirroredStrategy` over the local devices; the global batch is split across replicas.
* ``--distribute data_parallel`` (JAX backend, one or several machines):
  `keras.distribution.DataParallel` over every device of every process. With
  ``--coordinator HOST:PORT --num_processes N --process_id I`` each process first joins the others
  through `keras.distribution.initialize` (on CPUs with JAX's gloo collectives); each process then
  reads its own shard of the data (see `training.boneage.pipeline.make_dataset`) and feeds ``1/N`` of every
  global batch.

``--mixed_precision`` computes in bfloat16 on CPUs and float16 on GPUs while the model keeps float32
outputs and losses.
"""

import contextlib
import dataclasses
from pathlib import Path

import keras

DISTRIBUTE_CHOICES = ("none", "mirrored", "data_parallel")
_BACKEND_OF = {"mirrored": "tensorflow", "data_parallel": "jax"}


def check_distribute_flags(kind, coordinator=None, num_processes=1, process_id=0):
    """Whether the backend and the process flags can serve ``kind``; an error message or ``None``.

    Args:
        kind: one of `DISTRIBUTE_CHOICES`.
        coordinator: ``HOST:PORT`` of process 0 (multi-process ``data_parallel`` only).
        num_processes: processes taking part, all started with the same flags.
        process_id: this process's index in ``[0, num_processes)``.
    """
    needed = _BACKEND_OF.get(kind)
    if needed and keras.backend.backend() != needed:
        return (
            f"--distribute {kind} needs the {'TensorFlow' if needed == 'tensorflow' else 'JAX'} backend; "
            f"KERAS_BACKEND is '{keras.backend.backend()}'. Set KERAS_BACKEND={needed} or use --distribute none."
        )
    if num_processes < 1:
        return f"--num_processes must be >= 1; got {num_processes}"
    if num_processes > 1 and not coordinator:
        return f"--num_processes {num_processes} needs --coordinator HOST:PORT (the address of process 0)"
    if (coordinator or num_processes > 1) and kind != "data_parallel":
        return "--coordinator and --num_processes work with --distribute data_parallel only"
    if coordinator and (":" not in coordinator or not coordinator.rsplit(":", 1)[1].isdigit()):
        return f"--coordinator must be HOST:PORT; got {coordinator!r}"
    if not 0 <= process_id < num_processes:
        return f"--process_id must be in [0, {num_processes}); got {process_id}"
    return None


WORKER_DIR_PREFIX = "process_"  # a worker's run folder inside the chief's --output_dir


@dataclasses.dataclass(frozen=True)
class Distribution:
    """How one training process takes part in a run.

    Attributes:
        kind: one of `DISTRIBUTE_CHOICES`.
        replicas: model replicas over all processes (devices the global batch is split across).
        num_processes: processes of the run.
        process_id: index of this process; process 0 is the chief, which evaluates and reports.
        engine: the `tf.distribute.Strategy` or `keras.distribution.Distribution` (``None`` for none).
    """

    kind: str = "none"
    replicas: int = 1
    num_processes: int = 1
    process_id: int = 0
    engine: object = None

    @property
    def is_chief(self):
        return self.process_id == 0

    def scope(self):
        """The engine's scope (variables created and ``fit`` run inside it), or a no-op."""
        return self.engine.scope() if self.engine is not None else contextlib.nullcontext()

    def per_process_batch(self, global_batch_size):
        return global_batch_size // self.num_processes

    def facts(self):
        """What a run's results record of how it ran: backend, Keras version, distribution, processes."""
        return {
            "backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "distribute": self.kind,
            "replicas": self.replicas,
            "num_processes": self.num_processes,
            "process_id": self.process_id,
        }

    def output_dir(self, output_dir):
        """This process's run folder: ``output_dir`` for the chief, ``output_dir/process_<i>`` for worker i."""
        output_dir = Path(output_dir)
        return output_dir if self.is_chief else output_dir / f"{WORKER_DIR_PREFIX}{self.process_id}"


def make_distribution(kind, global_batch_size, coordinator=None, num_processes=1, process_id=0):
    """Start the engine for ``kind``; flags must have passed `check_distribute_flags`.

    Args:
        kind: one of `DISTRIBUTE_CHOICES`.
        global_batch_size: the batch of one optimizer step, summed over every replica.
        coordinator, num_processes, process_id: see `check_distribute_flags`.

    Returns:
        A `Distribution`.

    Raises:
        ValueError: when the global batch cannot be split evenly across the replicas.
    """
    if kind == "none":
        return Distribution()
    if kind == "mirrored":
        import tensorflow as tf  # only the TensorFlow backend gets here

        engine = tf.distribute.MirroredStrategy()
        replicas = engine.num_replicas_in_sync
        engine_name = "MirroredStrategy"
    else:
        if num_processes > 1:
            _join_processes(coordinator, num_processes, process_id)
        devices = keras.distribution.list_devices()
        engine = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
        replicas = len(devices)
        engine_name = f"DataParallel over {num_processes} process(es)"
    if global_batch_size % replicas:
        raise ValueError(
            f"--batch_size {global_batch_size} is the global batch; it must be divisible by the "
            f"{replicas} replicas of the {engine_name}."
        )
    return Distribution(kind, replicas, num_processes, process_id, engine)


def _join_processes(coordinator, num_processes, process_id):
    """`keras.distribution.initialize`, with gloo collectives for whatever runs on CPUs.

    Must run before anything else touches JAX's devices, so the CPU setting is made unconditionally
    (it does not affect GPU or TPU collectives).
    """
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(job_addresses=coordinator, num_processes=num_processes, process_id=process_id)


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

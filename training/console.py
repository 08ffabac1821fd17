"""A quiet console by default: the backend's start-up chatter hidden, progress bars and our messages kept.

TensorFlow prints screens of C++ log lines (oneDNN, CUDA probing, CPU features) to stderr when it is
imported and when it first looks for devices, before Python's logging is set up, so no log level
silences them. Importing `training` therefore imports TensorFlow and lists its devices with stderr
muted, and sets TensorFlow's own loggers to errors only. ``--verbose`` on the command line, or the
environment variable ``MEDFUSION_VERBOSE=1``, keeps everything.
"""

import contextlib
import logging
import os
import sys

VERBOSE_FLAG = "--verbose"


def verbose_requested(argv=None):
    """Whether the user asked for the backend's messages (``--verbose`` or ``MEDFUSION_VERBOSE=1``).

    Example:

    >>> verbose_requested(["train-boneage", "--verbose"])
    True
    """
    return VERBOSE_FLAG in (sys.argv if argv is None else argv) or os.environ.get("MEDFUSION_VERBOSE") == "1"


@contextlib.contextmanager
def muted_stderr():
    """Send file descriptor 2 to /dev/null inside the block (C++ writes included), then restore it."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_backend_quietly(verbose=None):
    """Import TensorFlow and initialise its devices without their log lines, unless ``verbose``.

    Args:
        verbose: keep every message; ``None`` decides by `verbose_requested`.
    """
    if verbose_requested() if verbose is None else verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ warnings after start-up
    with muted_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)

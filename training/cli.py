"""Conventions every system's commands share: a typed config per run, presets, flags, errors.

A command is a thin wrapper: its parser's flags are the fields of the system's config dataclass,
``--preset NAME`` picks the fields' defaults, the flags given override them, and the Python API
(``train(config)``) does the work. Mistakes in the data, the settings or the run folder end the
command with one message naming the file, row, flag or folder at fault.
"""

import argparse
import contextlib
import zipfile
from pathlib import Path

from training.console import VERBOSE_FLAG
from training.data.tables import DataError
from training.distribution import DISTRIBUTE_CHOICES
from training.run_directory import RunDirectoryError


class ConfigError(ValueError):
    """A setting that cannot work; the message names the setting (as its flag)."""


def load_saved_model(path, flag="--model"):
    """Load a ``.keras`` model with ``safe_mode=True``, or say which flag names an unusable file.

    Args:
        path: the model file.
        flag: the command-line flag that named it (for the message).

    Raises:
        ConfigError: the file is missing, or is not a readable Keras model (a corrupt or truncated
            ``.keras`` archive, another format, a model of unknown classes); Keras' reason is kept.

    Example:

    >>> import tempfile
    >>> broken = Path(tempfile.mkdtemp()) / "best.keras"
    >>> _ = broken.write_bytes(b"not a zip archive")
    >>> load_saved_model(broken)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    training.cli.ConfigError: --model .../best.keras is not a readable Keras model: not a .keras (zip) archive...
    """
    import keras

    if not Path(path).is_file():
        raise ConfigError(f"{flag} {path}: no such file")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" here
        raise ConfigError(
            f"{flag} {path} is not a readable Keras model: not a .keras (zip) archive; the file is corrupt, "
            "truncated or of another format."
        )
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (zipfile.BadZipFile, OSError, ValueError, TypeError, KeyError) as error:
        raise ConfigError(f"{flag} {path} is not a readable Keras model: {error}") from None


def add_preset_and_verbose_arguments(parser, presets):
    """``--preset`` (choices: ``presets``; default: the first) and ``--verbose``."""
    parser.add_argument(
        "--preset", choices=list(presets), default=next(iter(presets)), help="defaults that other flags override"
    )
    parser.add_argument(
        VERBOSE_FLAG, action="store_true", help="also show the backend's start-up and log messages (hidden by default)"
    )


def add_scale_out_arguments(parser):
    """The scale-out flags every training command shares, in a "scale and speed" group.

    ``--distribute``, ``--coordinator``, ``--num_processes``, ``--process_id``, ``--mixed_precision``
    and ``--jit_compile``; `training.distribution` turns them into an engine and a dtype policy.
    """
    scale = parser.add_argument_group("scale and speed")
    scale.add_argument(
        "--distribute",
        choices=DISTRIBUTE_CHOICES,
        help="mirrored: tf.distribute.MirroredStrategy over local devices (TensorFlow); "
        "data_parallel: keras.distribution.DataParallel over every device of every process (JAX)",
    )
    scale.add_argument("--coordinator", help="data_parallel with several processes: HOST:PORT of process 0")
    scale.add_argument("--num_processes", type=int, help="data_parallel: processes taking part (same flags)")
    scale.add_argument("--process_id", type=int, help="data_parallel: this process's index; 0 evaluates and reports")
    scale.add_argument(
        "--mixed_precision", action="store_true", help="bfloat16 on CPU, float16 on GPU; float32 outputs and losses"
    )
    scale.add_argument("--jit_compile", choices=("auto", "on", "off"), help="XLA compilation of the train step")


def annotate_presets(parser, preset_values):
    """Append to each flag's help the value every preset gives it, where the presets differ.

    Args:
        parser: an `argparse.ArgumentParser`.
        preset_values: ``{preset name: {field: value}}``, e.g. each preset's config as a dict.

    Example:

    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--img_size", type=int, help="square image side")
    >>> annotate_presets(parser, {"cpu": {"img_size": 96}, "original": {"img_size": 500}})
    >>> parser._option_string_actions["--img_size"].help
    'square image side [presets: cpu 96, original 500]'
    """
    for action in parser._actions:
        if action.dest == "preset" or any(action.dest not in values for values in preset_values.values()):
            continue
        values = {name: values[action.dest] for name, values in preset_values.items()}
        if len({repr(value) for value in values.values()}) > 1:
            shown = ", ".join(f"{name} {value}" for name, value in values.items())
            action.help = f"{action.help or ''} [presets: {shown.replace('%', '%%')}]".strip()


def parse_config(parser, config_class, argv=None):
    """Parse ``argv`` into a validated ``config_class``: preset defaults, then the flags given.

    The parser's flags must be ``config_class``'s fields (one per field, same names), and
    ``config_class`` must offer ``from_preset(name)``, ``to_dict()`` and ``validated()``. An
    invalid setting ends the command with the parser's usage and the message.
    """
    preset_parser = argparse.ArgumentParser(add_help=False)
    preset_parser.add_argument("--preset", default=parser.get_default("preset"))
    preset = preset_parser.parse_known_args(argv)[0].preset
    try:
        defaults = config_class.from_preset(preset).to_dict()
    except ConfigError as error:
        parser.error(str(error))
    parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    try:
        return config_class(**vars(args)).validated()
    except ConfigError as error:
        parser.error(str(error))


@contextlib.contextmanager
def exit_on_user_errors():
    """Turn a data, settings or run-folder error into ``SystemExit`` with its message.

    Example:

    >>> with exit_on_user_errors():
    ...     raise ConfigError("--lr must be positive; got 0")
    Traceback (most recent call last):
    SystemExit: --lr must be positive; got 0
    """
    try:
        yield
    except DataError as error:
        raise SystemExit(f"Data error: {error}") from None
    except (ConfigError, RunDirectoryError) as error:
        raise SystemExit(str(error)) from None

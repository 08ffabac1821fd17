"""CLI conventions: preset values in --help, config parsing, user errors, quiet backend start-up."""

import argparse
import dataclasses
import re
import subprocess
import sys

import pytest

from training.cli import ConfigError, annotate_presets, exit_on_user_errors, load_saved_model, parse_config
from training.data.tables import DataError
from training.run_directory import RunDirectoryError


@dataclasses.dataclass
class ToyConfig:
    preset: str = "small"
    size: int = 8
    name: str = "toy"

    @classmethod
    def from_preset(cls, preset="small", **overrides):
        sizes = {"small": 8, "large": 64}
        if preset not in sizes:
            raise ConfigError(f"Unknown preset {preset!r}")
        return cls(**{"preset": preset, "size": sizes[preset], **overrides})

    def to_dict(self):
        return dataclasses.asdict(self)

    def validated(self):
        if self.size < 1:
            raise ConfigError(f"--size must be positive; got {self.size}")
        return self


def toy_parser():
    parser = argparse.ArgumentParser(prog="toy")
    parser.add_argument("--preset", choices=("small", "large"), default="small")
    parser.add_argument("--size", type=int, help="side")
    parser.add_argument("--name")
    annotate_presets(parser, {name: ToyConfig.from_preset(name).to_dict() for name in ("small", "large")})
    return parser


def test_preset_values_then_flags_then_validation(capsys):
    assert parse_config(toy_parser(), ToyConfig, []) == ToyConfig("small", 8, "toy")
    assert parse_config(toy_parser(), ToyConfig, ["--preset", "large"]) == ToyConfig("large", 64, "toy")
    assert parse_config(toy_parser(), ToyConfig, ["--preset", "large", "--size", "3"]).size == 3
    with pytest.raises(SystemExit):
        parse_config(toy_parser(), ToyConfig, ["--size", "0"])
    assert "--size must be positive; got 0" in capsys.readouterr().err


def test_help_lists_each_presets_value_only_where_presets_differ(capsys):
    with pytest.raises(SystemExit):
        parse_config(toy_parser(), ToyConfig, ["--preset", "large", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--size SIZE side [presets: small 8, large 64]" in help_text
    assert "--name NAME\n" not in help_text and "presets: small toy" not in help_text


@pytest.mark.parametrize(
    "error, message",
    [
        (DataError("a.csv, line 3: bad age"), "Data error: a.csv, line 3: bad age"),
        (ConfigError("--lr must be positive"), "--lr must be positive"),
        (RunDirectoryError("runs/x is not empty"), "runs/x is not empty"),
    ],
)
def test_user_errors_become_one_message(error, message):
    with pytest.raises(SystemExit) as caught, exit_on_user_errors():
        raise error
    assert str(caught.value) == message


def test_other_errors_are_not_hidden():
    with pytest.raises(ZeroDivisionError), exit_on_user_errors():
        _ = 1 / 0


def test_importing_training_hides_the_backend_start_up_lines():
    code = "import training, tensorflow as tf; tf.zeros(1); print('ready')"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0 and completed.stdout == "ready\n"
    # absl/TF C++ log lines look like "I0000 00:00:1796148145.169931    3247 port.cc:153] ..."
    assert not re.search(r"^[IWEF]\d{4} ", completed.stderr, flags=re.M), completed.stderr
    assert "absl::InitializeLog" not in completed.stderr


def test_a_corrupt_model_file_is_named_as_such(tmp_path):
    import keras

    from training.boneage import predict

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.save(tmp_path / "good.keras")
    assert load_saved_model(tmp_path / "good.keras").count_params() == 3
    truncated = tmp_path / "best.keras"
    truncated.write_bytes((tmp_path / "good.keras").read_bytes()[:200])
    with pytest.raises(SystemExit, match=r"--model .*best.keras is not a readable Keras model: not a .keras \(zip\)"):
        predict.run(["--model", str(truncated), "--images", str(tmp_path), "--sex", "M"])
    with pytest.raises(ConfigError, match="no such file"):
        load_saved_model(tmp_path / "missing.keras")

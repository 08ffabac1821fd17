"""The base of every system's run settings: presets, a plain-dict view, and the scale-out fields.

A system's config is a dataclass that inherits `RunConfig`, sets ``PRESETS`` (preset name -> the
fields that differ from the defaults; the first preset is the defaults themselves) and adds its own
fields, each of which becomes a flag of its training command (see `training.cli.parse_config`).

Example:

>>> @dataclasses.dataclass
... class ToyConfig(RunConfig):
...     PRESETS: ClassVar[dict] = {"cpu": {}, "original": {"epochs": 100}}
...     epochs: int = 2
>>> ToyConfig.from_preset("original").epochs
100
>>> ToyConfig(num_processes=0).check_scale_out()
Traceback (most recent call last):
training.cli.ConfigError: --num_processes must be >= 1; got 0
"""

import dataclasses
from typing import ClassVar

from training.cli import ConfigError
from training.distribution import check_distribute_flags, make_distribution


@dataclasses.dataclass
class RunConfig:
    """Fields every training command has: the preset's name and the shared scale-out flags.

    Args:
        preset: the name of the preset the other fields started from.
        distribute, coordinator, num_processes, process_id: see `training.distribution`.
        mixed_precision: bfloat16 on CPU, float16 on GPU, float32 outputs and losses.
        jit_compile: "auto", "on" or "off": XLA compilation of the train step.
    """

    PRESETS: ClassVar[dict] = {"cpu": {}}

    preset: str = "cpu"
    # scale and speed
    distribute: str = "none"
    coordinator: str | None = None
    num_processes: int = 1
    process_id: int = 0
    mixed_precision: bool = False
    jit_compile: str = "auto"

    @classmethod
    def from_preset(cls, name="cpu", **overrides):
        """The preset's settings with ``overrides`` on top.

        Raises:
            ConfigError: for an unknown preset or field name.
        """
        if name not in cls.PRESETS:
            raise ConfigError(f"Unknown preset {name!r}; choose one of {', '.join(cls.PRESETS)}.")
        unknown = sorted(set(overrides) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"Unknown setting(s) {unknown} for {cls.__name__}.")
        return cls(**{"preset": name, **cls.PRESETS[name], **overrides})

    def to_dict(self):
        """The settings as a plain dict."""
        return dataclasses.asdict(self)

    def check_scale_out(self):
        """Raise `ConfigError` when the backend or the process flags cannot serve ``distribute``."""
        problem = check_distribute_flags(self.distribute, self.coordinator, self.num_processes, self.process_id)
        if problem:
            raise ConfigError(problem)

    def start_distribution(self, global_batch_size):
        """`training.distribution.make_distribution` for these flags.

        Raises:
            ConfigError: when ``global_batch_size`` cannot be split evenly across the replicas.
        """
        try:
            return make_distribution(
                self.distribute, global_batch_size, self.coordinator, self.num_processes, self.process_id
            )
        except ValueError as error:
            raise ConfigError(str(error)) from None

    @property
    def jit_compile_argument(self):
        """``jit_compile`` as `Model.compile` takes it ("auto", True or False)."""
        return {"auto": "auto", "on": True, "off": False}[self.jit_compile]

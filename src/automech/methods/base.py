"""What a design method is: something that turns a setting into a mechanism.

A method declares its options with defaults (one documented place), says whether it
applies to a setting, and ``fit``s a mechanism, writing whatever it logs into the run
directory it is given.  Training loops, LPs and closed forms all fit this shape.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting
from automech.runs import Run


class Method(ABC):
    """Base class of every design method (registered in :data:`automech.methods.METHODS`)."""

    name: ClassVar[str]
    #: Option names and their defaults; ``--set key=value`` may override any of them.
    defaults: ClassVar[dict[str, Any]] = {}

    def applicable(self, setting: Setting) -> str | None:
        """None if the method applies to ``setting``, else the reason it does not."""
        return None

    def resolve(self, setting: Setting, options: dict[str, Any]) -> dict[str, Any]:
        """Options with setting-dependent choices made (e.g. an ``auto`` recipe), before
        they are written to the run's config; by default unchanged."""
        return options

    @abstractmethod
    def fit(self, setting: Setting, options: dict[str, Any], seed: int, run: Run,
            progress: bool = False) -> Mechanism:
        """Design a mechanism for ``setting``; may resume from ``run``'s checkpoint."""


class Classical(Method):
    """A closed-form mechanism as a method: fitting only tunes its prices or reserves."""

    def __init__(self, mechanism: type[Mechanism]) -> None:
        self.mechanism = mechanism
        self.name = mechanism.name  # type: ignore[misc]

    def applicable(self, setting: Setting) -> str | None:
        return self.mechanism.applicable(setting)

    def fit(self, setting, options, seed, run, progress=False) -> Mechanism:
        return self.mechanism(setting)

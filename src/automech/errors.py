"""Errors raised at the package boundary, each naming the offending input."""

from __future__ import annotations


class AutomechError(Exception):
    """Base class of every error automech raises on purpose."""


class SettingError(AutomechError, ValueError):
    """A setting (named, TOML file or dict) is malformed; the message names the field."""

    def __init__(self, field: str, problem: str, source: str | None = None) -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}field '{field}': {problem}")
        self.field = field
        self.problem = problem


class BidError(AutomechError, ValueError):
    """Bids given to a mechanism have the wrong shape or invalid values."""


class NotApplicableError(AutomechError):
    """A mechanism or method does not apply to the given setting."""


class RunError(AutomechError):
    """A run directory or checkpoint is missing or unreadable."""


class OptionError(AutomechError, ValueError):
    """A method option that is unknown, of the wrong type or out of its range."""


class EvaluationError(AutomechError, ValueError):
    """An evaluation that cannot be made as asked (sample counts, a setting of another
    shape or kind than the mechanism's, something that is not a mechanism)."""

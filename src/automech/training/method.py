"""What a design method is, and the explicit state of one fit.

A :class:`Method` is a stateless description in the scikit-learn sense: a name, an options
dataclass (:class:`~automech.training.options.Options`), the mechanism class it produces,
and ``fit(ctx)``.  Nothing about a run is stored on the method: every run gets a fresh
:class:`FitContext` from :func:`automech.experiment.train`, which every hook receives.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from automech.training import options as _options
from automech.training.options import Options

if TYPE_CHECKING:  # annotations only: no import at run time
    import torch

    from automech.mechanisms.base import Design
    from automech.runs import Run

#: ``nested(method, options, out)``: train ``method`` with ``options`` on the context's
#: setting and seed into run directory ``out``; returns the fitted mechanism.
Nested = Callable[[str, dict[str, Any], Any], Any]


@dataclass
class FitContext:
    """Everything one fit knows and changes, passed to every hook of a method.

    Attributes
    ----------
    setting
        The problem (a :class:`~automech.problems.Setting` or a dynamic environment).
    options
        The method's resolved options (an instance of ``Method.Options``).
    seed
        The run's seed; every generator of the run derives from it.
    run
        The run directory (:class:`~automech.runs.Run`): logs, checkpoints, side files.
    progress
        Show progress bars.
    nested
        Trains another registered method into a sub-run (e.g. GemNet's AMA start),
        without the method importing the experiment module; see :meth:`fit_nested`.
    rng
        The run's NumPy generator of training profiles (saved in checkpoints).
    step, temperature, lr
        The trainer's current step (0-based, the one being taken), softmax temperature
        and learning rate.
    indices
        Rows of the current chunk of the batch in the method's own pool of profiles
        (``None`` when the batch is fresh prior draws).  The trainer cuts the batch and
        these indices together, so a method that caches per-profile state (misreports,
        Langevin chains) indexes exactly the profiles it is given.
    state
        The method's own run state (built by ``GradientMethod.start``).
    best
        What ``keep_best`` keeps: step, validation objective and parameters.
    stopping
        The trainer's stopping rule (:class:`~automech.training.trainer.Stopping`), or None.
    notify
        Where :meth:`say` sends a line for the user (the CLI prints it on stderr).
    """

    setting: Any
    options: Any  # an instance of the method's Options dataclass
    seed: int
    run: Run
    progress: bool = False
    nested: Nested | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    step: int = 0
    temperature: float = math.nan
    lr: float = math.nan
    indices: torch.Tensor | None = None
    state: Any = None
    best: dict[str, Any] | None = None
    stopping: Any = None
    notify: Callable[[str], None] | None = None

    def say(self, line: str) -> None:
        """Tell the user something about the run (resuming, reusing a finished run)."""
        if self.notify is not None:
            self.notify(line)

    def fit_nested(self, method: str, options: dict[str, Any], name: str) -> Design:
        """Train ``method`` on this context's setting and seed into ``RUN/name``."""
        if self.nested is None:
            raise RuntimeError("this fit context cannot train nested methods")
        return self.nested(method, options, self.run.path / name)


@dataclass(frozen=True)
class NoOptions(Options):
    """A method without options."""


class Method(ABC):
    """Base class of every design method (registered in :mod:`automech.methods`).

    Subclasses set :attr:`name`, :attr:`Options` (a frozen dataclass of
    :class:`~automech.training.options.Options`), :attr:`mechanism` (the class of what
    ``fit`` returns, which :func:`automech.load` rebuilds) and implement :meth:`fit`.
    """

    name: ClassVar[str]
    Options: ClassVar[type[_options.Options]] = NoOptions
    #: The mechanism class ``fit`` returns (``None``: several, each registered elsewhere).
    mechanism: ClassVar[type | None] = None
    #: ``"static"`` (a :class:`~automech.problems.Setting`) or ``"dynamic"`` (an MDP).
    kind: ClassVar[str] = "static"
    #: One line for ``automech methods`` (default: the docstring's first line).
    summary: ClassVar[str] = ""

    def applicable(self, setting: Any) -> str | None:
        """None if the method applies to ``setting``, else the reason it does not."""
        return None

    def refusal(self, setting: Any) -> str | None:
        """Why the method cannot design for ``setting``, None if it can: a setting of the
        other kind (static / dynamic) first, then :meth:`applicable`'s reason."""
        kind = getattr(setting, "kind", "static")
        if kind != self.kind:
            return f"it designs {self.kind} mechanisms and the setting is {kind}"
        return self.applicable(setting)

    def conflict(self, setting: Any, options: Any) -> str | None:
        """Why these (resolved) ``options`` cannot design for ``setting`` although the
        method applies to it (GemNet's price adjustment needs two bidders), None if they
        can; checked before any training."""
        return None

    def resolve(self, setting: Any, options: Any) -> Any:
        """Options with setting-dependent choices made (an ``auto`` recipe), before they
        are written to the run's config; by default unchanged."""
        return options

    @abstractmethod
    def fit(self, ctx: FitContext) -> Design:
        """Design a mechanism for ``ctx.setting``; may resume from ``ctx.run``."""

    def describe(self) -> str:
        """One line for ``automech methods``: the first sentence of the class docstring."""
        return self.summary or first_sentence(type(self).__doc__)


def first_sentence(doc: str | None) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    head, dot, _ = paragraph.partition(". ")
    sentence = head + "." if dot else paragraph
    return sentence[:-1] + "." if sentence.endswith(":") else sentence


class Classical(Method):
    """A closed-form mechanism as a method: fitting only tunes its prices or reserves."""

    def __init__(self, mechanism: Any) -> None:
        # the configuration (which closed form), not run state
        self.mechanism = mechanism  # type: ignore[misc]
        self.name = mechanism.name  # type: ignore[misc]

    def applicable(self, setting: Any) -> str | None:
        return self.mechanism.applicable(setting)  # type: ignore[union-attr]

    def fit(self, ctx: FitContext) -> Design:
        return self.mechanism(ctx.setting)  # type: ignore[misc]

    def describe(self) -> str:
        return f"classical: {first_sentence(self.mechanism.__doc__) or self.name}"

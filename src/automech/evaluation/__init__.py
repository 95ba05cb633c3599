"""One evaluation entry point for every mechanism: :func:`evaluate`.

It hands over to the protocol of the setting's type (:data:`PROTOCOLS`): the shared
static protocol (:mod:`~automech.evaluation.protocol`: revenue, welfare, IR,
feasibility, regret by misreport search) for a :class:`~automech.problems.Setting`, the
exact dynamic one (:mod:`~automech.evaluation.dynamic`) for an MDP environment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from automech.errors import AutomechError, EvaluationError
from automech.evaluation import dynamic, protocol
from automech.evaluation.dynamic import DEFAULT_SEARCH, DynamicEvaluation, evaluate_dynamic
from automech.evaluation.ladder import Ladder, LadderResult, converged_regret
from automech.evaluation.protocol import TEST_PROFILES, TEST_SEED, Evaluation
from automech.evaluation.regret import THOROUGH, RegretSearch, best_misreport_utility
from automech.problems.dynamic import DynamicEnv
from automech.problems.setting import Setting

#: Setting type -> its evaluation protocol (same signature as :func:`evaluate`).
PROTOCOLS: dict[type, Callable[..., Any]] = {
    Setting: protocol.evaluate,
    DynamicEnv: dynamic.evaluate,
}


def check_samples(samples: Any, name: str) -> None:
    """Refuse a profile count that is not an integer >= 1, naming it as ``name``."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise EvaluationError(f"{name} must be an integer >= 1, got {samples!r}")


def protocol_for(setting: Any) -> Callable[..., Any]:
    """The evaluation protocol of ``setting``'s type (the nearest registered base)."""
    for cls in type(setting).__mro__:
        if cls in PROTOCOLS:
            return PROTOCOLS[cls]
    raise AutomechError(f"no evaluation protocol for a {type(setting).__name__}")


def evaluate(
    mechanism: Any,
    setting: Any = None,
    samples: int = TEST_PROFILES,
    seed: int = TEST_SEED,
    search: RegretSearch | None = DEFAULT_SEARCH,
    thorough: bool = False,
    progress: bool = False,
    ladder: Ladder | bool | None = None,
) -> Evaluation | DynamicEvaluation:
    """Score ``mechanism`` on ``setting`` (its own by default) with the protocol of the
    setting's type.

    Args:
        samples: test profiles.
        seed: seed of the test profiles and of the random misreports.
        search: misreport search budget; None skips regret (for a dynamic setting: the
            IC check on ``search.profiles`` profiles).
        thorough: use the papers' budget :data:`THOROUGH` (overrides ``search``).
        progress: show a Rich progress bar.
        ladder: search regret with the budget ladder (:func:`converged_regret`, True for
            the default :class:`Ladder`) instead of the fixed budget ``search``; static
            settings only (a dynamic setting's IC check keeps its fixed budget).

    Raises:
        AutomechError: when the setting is of another kind than the mechanism's (a
            dynamic AMA on a static setting, or the reverse).
    """
    own = getattr(mechanism, "setting", None)
    if own is None or not callable(getattr(mechanism, "outcome", None)):
        raise EvaluationError(
            f"evaluate needs an automech mechanism (with .setting and .outcome), "
            f"got a {type(mechanism).__name__}"
        )
    check_samples(samples, "the number of test profiles")
    setting = own if setting is None else setting
    score = protocol_for(setting)
    if protocol_for(own) is not score:
        raise EvaluationError(
            f"cannot evaluate {mechanism.name!r}, designed for "
            f"{own.name or 'a setting'!r}, on {setting.name or 'a setting'!r}: "
            "the settings are of different kinds (static / dynamic)"
        )
    shape = getattr(setting, "shape", None)
    if shape is not None and shape != own.shape:
        raise EvaluationError(
            f"{mechanism.name!r} was designed for {own.shape[0]} bidder(s) x {own.shape[1]} "
            f"item(s); {setting.name or 'the setting'!r} has {shape[0]} x {shape[1]}"
        )
    static = score is protocol.evaluate
    return score(
        mechanism,
        setting,
        samples=samples,
        seed=seed,
        search=search,
        thorough=thorough,
        progress=progress,
        **({"ladder": ladder} if ladder and static else {}),
    )


__all__ = [
    "Evaluation",
    "DynamicEvaluation",
    "evaluate",
    "evaluate_dynamic",
    "PROTOCOLS",
    "protocol_for",
    "RegretSearch",
    "THOROUGH",
    "TEST_PROFILES",
    "TEST_SEED",
    "best_misreport_utility",
    "Ladder",
    "LadderResult",
    "converged_regret",
]

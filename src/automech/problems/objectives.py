"""The designer's objective: what a mechanism is scored on, per profile.

Each objective maps valuations v (B, n, m), allocation x (B, n, m) and payments p (B, n)
to a (B,) tensor.  Registered in :data:`OBJECTIVES` by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from automech.errors import SettingError


@dataclass(frozen=True)
class Objective:
    """Base objective: subclasses implement :meth:`value`."""

    name: ClassVar[str]
    params: dict[str, float] = field(default_factory=dict)

    def value(self, values: torch.Tensor, alloc: torch.Tensor, pay: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.name, **self.params}


class Revenue(Objective):
    """Revenue ``sum_i p_i``."""

    name = "revenue"

    def value(self, values, alloc, pay):
        return pay.sum(dim=-1)


class Welfare(Objective):
    """Social welfare ``sum_i sum_j v_ij x_ij``."""

    name = "welfare"

    def value(self, values, alloc, pay):
        return (values * alloc).sum(dim=(-1, -2))


@dataclass(frozen=True)
class RevenueMinusCost(Objective):
    """Principal utility of the TEDI paper (Section 2):
    ``sum_i p_i - sum_j (c_p max_i x_ij + c_d sum_i x_ij)``."""

    name: ClassVar[str] = "revenue-minus-cost"
    params: dict[str, float] = field(
        default_factory=lambda: {"production_cost": 0.0, "duplication_cost": 0.0}
    )

    def cost(self, alloc: torch.Tensor) -> torch.Tensor:
        c_p = self.params["production_cost"]
        c_d = self.params["duplication_cost"]
        return (c_p * alloc.amax(dim=-2) + c_d * alloc.sum(dim=-2)).sum(dim=-1)

    def value(self, values, alloc, pay):
        return pay.sum(dim=-1) - self.cost(alloc)


OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (Revenue, Welfare, RevenueMinusCost)
}

_PARAMS: dict[str, set[str]] = {
    "revenue": set(),
    "welfare": set(),
    "revenue-minus-cost": {"production_cost", "duplication_cost"},
}


def objective_from_spec(spec: str | dict[str, Any], source: str | None = None) -> Objective:
    """``"revenue"`` or ``{kind = "revenue-minus-cost", production_cost = 1.0}``."""
    if not isinstance(spec, (str, dict)):
        raise SettingError("objective", f"must be a name or a table, got {spec!r}", source)
    table = {"kind": spec} if isinstance(spec, str) else dict(spec)
    kind = table.pop("kind", None)
    if not isinstance(kind, str) or kind not in OBJECTIVES:
        raise SettingError(
            "objective", f"unknown objective {kind!r}; known: {', '.join(OBJECTIVES)}", source
        )
    for key, val in table.items():
        if key not in _PARAMS[kind]:
            raise SettingError(f"objective.{key}", f"unknown key for objective '{kind}'", source)
        if isinstance(val, bool) or not isinstance(val, (int, float)) or val < 0:
            raise SettingError(f"objective.{key}", f"must be a number >= 0, got {val!r}", source)
    cls = OBJECTIVES[kind]
    if not _PARAMS[kind]:
        return cls()
    defaults = cls().params
    return cls({**defaults, **{k: float(v) for k, v in table.items()}})

"""Reference revenues: known optima, closed-form baselines and published results.

The numbers of ``shared/reference/benchmarks.md`` ship with the package as data
(``automech/data/reference.json``), one record per (setting, method)::

    {"setting": "2x2-uniform", "method": "RegretNet", "revenue": 0.878, "regret": null,
     "kind": "published", "source": "Curry, Sandholm & Dickerson (2023) ..., Table 2"}

``kind`` is ``exact`` (closed form or numerical integration) or ``published`` (the number
printed in the paper named by ``source``).  :func:`references` finds the records of a
setting by its registry name or, for a setting built from a file or dict, by its
contents (same bidders, items, valuation, supply, objective and prior).
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from automech.errors import AutomechError
from automech.problems.setting import Setting

if TYPE_CHECKING:  # annotations only
    from automech.problems.dynamic import DynamicEnv

KINDS = ("exact", "published")


@dataclass(frozen=True)
class Reference:
    """One reference number.  ``regret`` is None when the source gives none (or a bound,
    which ``note`` then states)."""

    setting: str
    method: str
    revenue: float
    kind: str
    source: str
    regret: float | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.lru_cache(maxsize=1)
def all_references() -> tuple[Reference, ...]:
    """Every record of the packaged reference table."""
    text = resources.files("automech").joinpath("data/reference.json").read_text()
    rows = json.loads(text)["references"]
    out = []
    for row in rows:
        if row.get("kind") not in KINDS:
            raise AutomechError(
                f"reference.json: kind must be one of {KINDS}, got "
                f"{row.get('kind')!r} ({row.get('setting')}, {row.get('method')})"
            )
        out.append(Reference(**row))
    return tuple(out)


def reference_settings() -> list[str]:
    """The setting names that have reference numbers, in table order."""
    return list(dict.fromkeys(r.setting for r in all_references()))


def _content(setting: Setting | DynamicEnv) -> dict[str, Any]:
    d = setting.to_dict()
    d.pop("name", None)
    return d


@functools.cache
def _content_key(name: str) -> str:
    from automech.problems import get_setting

    return json.dumps(_content(get_setting(name)), sort_keys=True)


def matching_setting(setting: Setting | str) -> str | None:
    """The reference table's name for ``setting`` (by name, else by contents), or None."""
    names = reference_settings()
    if isinstance(setting, str):
        return setting if setting in names else None
    if setting.name in names:
        return setting.name
    key = json.dumps(_content(setting), sort_keys=True)
    for name in names:
        if _content_key(name) == key:
            return name
    return None


def references(setting: Setting | str) -> list[Reference]:
    """The reference records of ``setting`` (empty when none apply)."""
    name = matching_setting(setting)
    return [r for r in all_references() if r.setting == name] if name else []


def best_exact(setting: Setting | str) -> Reference | None:
    """The highest exact reference revenue of ``setting`` (the optimum where known)."""
    exact = [r for r in references(setting) if r.kind == "exact"]
    return max(exact, key=lambda r: r.revenue) if exact else None


__all__ = [
    "Reference",
    "all_references",
    "references",
    "reference_settings",
    "matching_setting",
    "best_exact",
]

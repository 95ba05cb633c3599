"""The registry of named settings.

Every named setting is stored as the same dict a TOML file would hold, so a named
setting and a file go through one constructor (:meth:`Setting.from_dict`).  Families of
names (``{n}x1-uniform``, ...) are registered once with a pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from automech.errors import SettingError
from automech.problems import tedi_settings
from automech.problems.setting import Setting


@dataclass(frozen=True)
class Family:
    """Names matching ``pattern``; ``build(match)`` gives the setting dict."""

    pattern: re.Pattern[str]
    build: Callable[[re.Match[str]], dict[str, Any]]
    listed: tuple[str, ...]  # the names `automech settings` shows


_NAMED: dict[str, dict[str, Any]] = {}
_FAMILIES: list[Family] = []


def register(name: str, spec: dict[str, Any]) -> None:
    """Register one named setting by its dict form."""
    _NAMED[name] = spec


def register_family(pattern: str, build: Callable[[re.Match[str]], dict[str, Any]],
                    listed: list[str]) -> None:
    """Register every name matching ``pattern`` (a full-match regex)."""
    _FAMILIES.append(Family(re.compile(pattern), build, tuple(listed)))


def setting_names() -> list[str]:
    """Names shown by ``automech settings`` (families show their listed members)."""
    return [*_NAMED, *(n for fam in _FAMILIES for n in fam.listed)]


def get_setting(name_or_path: str | Path) -> Setting:
    """A setting by registered name (``"2x2-uniform"``) or TOML file path."""
    key = str(name_or_path)
    if key in _NAMED:
        return Setting.from_dict({"name": key, **_NAMED[key]})
    for fam in _FAMILIES:
        match = fam.pattern.fullmatch(key)
        if match:
            return Setting.from_dict({"name": key, **fam.build(match)})
    if key.endswith(".toml") or Path(key).is_file():
        return Setting.from_toml(key)
    raise SettingError("setting", f"unknown setting {key!r}: neither a registered name "
                       "(see `automech settings`) nor an existing .toml file")


def setting_from_dict(spec: dict[str, Any], source: str | None = None) -> Setting:
    """The setting a run's ``config.json`` or checkpoint records (its dict form)."""
    return Setting.from_dict(spec, source=source)


# ------------------------------------------------------------------ the built-in settings


def _uniform(n: int, m: int, valuation: str = "additive", low: Any = 0.0,
             high: Any = 1.0) -> dict[str, Any]:
    return {"bidders": n, "items": m, "valuation": valuation,
            "prior": {"kind": "uniform", "low": low, "high": high}}


for _n, _m in [(1, 2), (2, 2), (2, 3), (2, 5), (3, 10), (5, 10), (1, 10)]:
    register(f"{_n}x{_m}-uniform", _uniform(_n, _m))
for _n, _m in [(1, 2), (2, 2), (2, 3)]:
    register(f"{_n}x{_m}-unit-uniform", _uniform(_n, _m, "unit-demand"))

# Asymmetric priors used in the differentiable-economics literature.
register("1x2-asym-uniform", _uniform(1, 2, low=[4.0, 4.0], high=[16.0, 7.0]))
register("3x10-asym-uniform", _uniform(3, 10, high=[[1.0] * 10, [2.0] * 10, [3.0] * 10]))
register("2x4-unit-spherical", {"bidders": 2, "items": 4, "valuation": "unit-demand",
                                "prior": {"kind": "spherical", "points": 5, "ratio": 3.0,
                                          "scale": 8.0, "construction_seed": 264}})
register("3x10-correlated", {"bidders": 3, "items": 10,
                             "prior": {"kind": "correlated"}})

register_family(
    r"(?P<n>[1-9]|10)x1-uniform",
    lambda mt: _uniform(int(mt["n"]), 1),
    [f"{n}x1-uniform" for n in range(1, 11)],
)
register_family(
    r"(?P<n>[1-9]|10)x1-asym-uniform",
    lambda mt: _uniform(int(mt["n"]), 1, high=[[float(i + 1)] for i in range(int(mt["n"]))]),
    ["2x1-asym-uniform", "3x1-asym-uniform"],
)
register_family(
    r"(?P<n>[1-9]|10)x1-exponential",
    lambda mt: {"bidders": int(mt["n"]), "items": 1,
                "prior": {"kind": "exponential", "mean": 1.0}},
    ["1x1-exponential", "3x1-exponential"],
)
register_family(tedi_settings.PATTERN, tedi_settings.tedi_setting, tedi_settings.TABLE1)

"""The registry of named settings, static and dynamic.

Every named static setting is stored as the same dict a TOML file would hold, so a named
setting and a file go through one constructor (:meth:`Setting.from_dict`).  Families of
names (``{n}x1-uniform``, ...) are registered once with a pattern.  Dynamic settings (MDP
environments, :mod:`automech.problems.dynamic`) are named by their own families
(``seq-sales-3x2``...); :func:`get_setting` and :func:`setting_from_dict` serve both kinds,
told apart by the dict form's ``kind`` (absent: ``"static"``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automech.errors import SettingError
from automech.problems import tedi_settings
from automech.problems.dynamic import (
    DynamicEnv,
    dynamic_from_dict,
    dynamic_setting_names,
    get_dynamic_setting,
    is_dynamic,
)
from automech.problems.setting import Setting

#: What :func:`get_setting` returns: a static setting or a dynamic environment.
AnySetting = Setting | DynamicEnv


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


def register_family(
    pattern: str, build: Callable[[re.Match[str]], dict[str, Any]], listed: list[str]
) -> None:
    """Register every name matching ``pattern`` (a full-match regex)."""
    _FAMILIES.append(Family(re.compile(pattern), build, tuple(listed)))


def _static_names() -> list[str]:
    return [*_NAMED, *(n for fam in _FAMILIES for n in fam.listed)]


def _static_summary(s: Setting) -> dict[str, str]:
    return {
        "name": s.name or "",
        "n": str(s.num_bidders),
        "m": str(s.num_items),
        "valuation": s.valuation,
        "supply": s.supply,
        "prior": s.prior.describe(),
    }


@dataclass(frozen=True)
class Kind:
    """One kind of setting: its listed names, how its dict form is rebuilt, and its row
    and table title in ``automech settings``."""

    title: str
    names: Callable[[], list[str]]
    from_dict: Callable[..., Any]
    summary: Callable[[Any], dict[str, str]]


#: Setting kinds, keyed by the ``kind`` of their dict form (static dicts have none).
KINDS: dict[str, Kind] = {
    "static": Kind(
        "named settings (or pass a .toml file)", _static_names, Setting.from_dict, _static_summary
    ),
    "dynamic": Kind(
        "dynamic settings (MDPs; any n, m of a family)",
        dynamic_setting_names,
        dynamic_from_dict,
        DynamicEnv.summary,
    ),
}


def setting_names(kind: str | None = None) -> list[str]:
    """Names shown by ``automech settings`` (families show their listed members): every
    kind, or only ``kind`` (``"static"``, ``"dynamic"``)."""
    return [n for key, k in KINDS.items() if kind in (None, key) for n in k.names()]


def setting_tables() -> list[tuple[str, list[dict[str, str]]]]:
    """Per kind, a title and one row (column -> text) per listed setting."""
    return [(k.title, [k.summary(get_setting(n)) for n in k.names()]) for k in KINDS.values()]


def get_setting(name_or_path: str | Path) -> AnySetting:
    """A setting by registered name (``"2x2-uniform"``, ``"seq-sales-3x2"``) or TOML file
    path."""
    key = str(name_or_path)
    if key in _NAMED:
        return Setting.from_dict({"name": key, **_NAMED[key]})
    for fam in _FAMILIES:
        match = fam.pattern.fullmatch(key)
        if match:
            return Setting.from_dict({"name": key, **fam.build(match)})
    if is_dynamic(key):
        return get_dynamic_setting(key)
    if key.endswith(".toml") or Path(key).is_file():
        return Setting.from_toml(key)
    raise SettingError(
        "setting",
        f"unknown setting {key!r}: neither a registered name "
        "(see `automech settings`) nor an existing .toml file",
    )


def setting_from_dict(spec: dict[str, Any], source: str | None = None) -> AnySetting:
    """The setting a run's ``config.json`` or checkpoint records (its dict form): a
    static setting, or a dynamic one (``{"kind": "dynamic", "name": ...}``)."""
    kind = spec.get("kind", "static") if isinstance(spec, dict) else "static"
    if kind not in KINDS:
        raise SettingError(
            "kind", f"unknown setting kind {kind!r}; known: {', '.join(KINDS)}", source
        )
    return KINDS[kind].from_dict(spec, source=source)


# ------------------------------------------------------------------ the built-in settings


def _uniform(
    n: int, m: int, valuation: str = "additive", low: Any = 0.0, high: Any = 1.0
) -> dict[str, Any]:
    return {
        "bidders": n,
        "items": m,
        "valuation": valuation,
        "prior": {"kind": "uniform", "low": low, "high": high},
    }


for _n, _m in [(1, 2), (2, 2), (2, 3), (2, 5), (3, 10), (5, 10), (1, 10)]:
    register(f"{_n}x{_m}-uniform", _uniform(_n, _m))
for _n, _m in [(1, 2), (2, 2), (2, 3)]:
    register(f"{_n}x{_m}-unit-uniform", _uniform(_n, _m, "unit-demand"))

# Asymmetric priors used in the differentiable-economics literature.
register("1x2-asym-uniform", _uniform(1, 2, low=[4.0, 4.0], high=[16.0, 7.0]))
register("3x10-asym-uniform", _uniform(3, 10, high=[[1.0] * 10, [2.0] * 10, [3.0] * 10]))
register(
    "2x4-unit-spherical",
    {
        "bidders": 2,
        "items": 4,
        "valuation": "unit-demand",
        "prior": {
            "kind": "spherical",
            "points": 5,
            "ratio": 3.0,
            "scale": 8.0,
            "construction_seed": 264,
        },
    },
)
register("3x10-correlated", {"bidders": 3, "items": 10, "prior": {"kind": "correlated"}})

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
    lambda mt: {"bidders": int(mt["n"]), "items": 1, "prior": {"kind": "exponential", "mean": 1.0}},
    ["1x1-exponential", "3x1-exponential"],
)
register_family(tedi_settings.PATTERN, tedi_settings.tedi_setting, tedi_settings.TABLE1)

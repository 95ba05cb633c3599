"""Named dynamic settings: ``automech train seq-sales-3x2 --method zeroth-order``.

:func:`automech.problems.get_setting` looks names up here too, so a dynamic setting is
named, listed and rebuilt from a run's ``config.json`` like a static one.

Names follow the paper's ``n agents x m`` convention (m: items, tasks, or grid side):

==========================  =====================================================
``seq-sales-{n}x{m}``       sequential sales, values U[0, 1] (Table 1)
``seq-sales-asym-{n}x{m}``  sequential sales, values U[0, i], weights tuned (our issue)
``seq-sales-asym-inv-{n}x{m}`` values U[0, 1/i], weights tuned (the paper's Table 2)
``scheduling-{n}x{m}``      task scheduling, times U[0, 3], makespan (Table 3)
``scheduling-asym-{n}x{m}`` task scheduling, times U[0, 3 i], weights tuned (Table 4)
``gridworld-{n}x{m}``       m x m gridworld, discount 0.9, revenue (Table 5)
==========================  =====================================================
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from automech.errors import SettingError
from automech.problems.dynamic.envs import DynamicEnv, Gridworld, SequentialSales, TaskScheduling

#: (pattern, builder, names listed by ``automech settings``); n and m from the name.
_FAMILIES: list[tuple[re.Pattern[str], Callable[[int, int, str], DynamicEnv], list[str]]] = [
    (
        re.compile(r"seq-sales-(?P<n>\d+)x(?P<m>\d+)"),
        lambda n, m, name: SequentialSales(n, m, name=name),
        [f"seq-sales-{n}x{m}" for m in (2, 3) for n in (2, 3, 4, 5)],
    ),
    (
        re.compile(r"seq-sales-asym-(?P<n>\d+)x(?P<m>\d+)"),
        lambda n, m, name: SequentialSales(n, m, asymmetric="increasing", name=name),
        [f"seq-sales-asym-{n}x{m}" for m in (2, 3) for n in (2, 3, 4, 5)],
    ),
    (
        re.compile(r"seq-sales-asym-inv-(?P<n>\d+)x(?P<m>\d+)"),
        lambda n, m, name: SequentialSales(n, m, asymmetric="decreasing", name=name),
        [f"seq-sales-asym-inv-{n}x{m}" for m in (2, 3) for n in (2, 3, 4, 5)],
    ),
    (
        re.compile(r"scheduling-(?P<n>\d+)x(?P<m>\d+)"),
        lambda n, m, name: TaskScheduling(n, m, name=name),
        [f"scheduling-{n}x{m}" for n in (2, 3) for m in (4, 5)],
    ),
    (
        re.compile(r"scheduling-asym-(?P<n>\d+)x(?P<m>\d+)"),
        lambda n, m, name: TaskScheduling(n, m, asymmetric=True, name=name),
        [f"scheduling-asym-{n}x{m}" for n in (2, 3) for m in (4, 5)],
    ),
    (
        re.compile(r"gridworld-(?P<n>\d+)x(?P<m>\d+)"),
        lambda n, m, name: Gridworld(n, m, name=name),
        [f"gridworld-{n}x{m}" for m in (3, 4) for n in (2, 3, 4, 5)],
    ),
]

#: Largest tree MDPs built by name (states grow like (n+1)^(m-1)).
MAX_STATES = 20_000


def is_dynamic(name: object) -> bool:
    """True when ``name`` names a dynamic setting (one of the families below)."""
    return isinstance(name, str) and any(p.fullmatch(name) for p, _, _ in _FAMILIES)


def dynamic_setting_names() -> list[str]:
    """The names ``automech settings`` lists (every n, m of a family is accepted)."""
    return [name for _, _, listed in _FAMILIES for name in listed]


@functools.lru_cache(maxsize=64)
def get_dynamic_setting(name: str) -> DynamicEnv:
    """The environment registered under ``name`` (built once, then cached)."""
    for pattern, build, _ in _FAMILIES:
        match = pattern.fullmatch(name)
        if match:
            n, m = int(match["n"]), int(match["m"])
            size = _states(pattern.pattern, n, m)
            if size > MAX_STATES:
                raise SettingError(
                    "setting", f"{name!r} would have {size} states (more than {MAX_STATES})"
                )
            return build(n, m, name)
    raise SettingError(
        "setting",
        f"unknown dynamic setting {name!r}; known families: "
        "seq-sales-NxM, seq-sales-asym-NxM, seq-sales-asym-inv-NxM, scheduling-NxM, "
        "scheduling-asym-NxM, gridworld-NxM",
    )


def dynamic_from_dict(spec: dict, source: str | None = None) -> DynamicEnv:
    """The environment a run recorded (:meth:`DynamicEnv.to_dict`): rebuilt by its name."""
    name = spec.get("name") if isinstance(spec, dict) else None
    if not is_dynamic(name):
        raise SettingError(
            "name",
            "a dynamic setting is rebuilt by its registered "
            f"name (seq-sales-NxM, scheduling-NxM, gridworld-NxM...), "
            f"got {name!r}",
            source,
        )
    return get_dynamic_setting(name)


def _states(pattern: str, n: int, m: int) -> int:
    if pattern.startswith("gridworld"):
        return m * m
    branching = n + 1 if pattern.startswith("seq-sales") else n
    return sum(branching**k for k in range(max(m, 1)))

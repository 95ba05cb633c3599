"""A mechanism design problem: bidders, items, valuations, prior, supply and objective.

Valuations are linear in the (possibly randomised) allocation: bidder i's value for
allocation x_i in [0, 1]^m is ``v_i . x_i``.

* ``additive``: any x_i in [0, 1]^m;
* ``unit-demand``: the bidder wants at most one item, so ``sum_j x_ij <= 1`` (a lottery
  over single items; its value is the expectation ``v_i . x_i``).

Supply ``unit`` means ``sum_i x_ij <= 1`` for every item j; ``unlimited`` drops that
constraint (digital goods; costs enter through the objective).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from automech.errors import SettingError
from automech.problems.objectives import Objective, Revenue, objective_from_spec
from automech.problems.priors import Prior, prior_from_dict

VALUATIONS = ("additive", "unit-demand")
SUPPLIES = ("unit", "unlimited")
#: Most values (bidders x items) one profile may have.
MAX_PROFILE_ENTRIES = 100_000


def memory_bytes() -> int:
    """Physical memory of this machine (0 when it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_sample_size(num: int, entries: int) -> None:
    """Refuse ``num`` profiles of ``entries`` float64 values that cannot fit in half of
    the machine's memory, before allocating them."""
    if num < 0:
        raise SettingError("samples", f"must be >= 0, got {num}")
    need, have = 8 * num * entries, memory_bytes() // 2
    if have and need > have:
        raise SettingError(
            "samples",
            f"{num:,} profiles of {entries:,} values need {need / 2**30:.1f} GiB; this "
            f"machine has {2 * have / 2**30:.1f} GiB (use fewer profiles)",
        )


_TOP_KEYS = {"name", "bidders", "items", "valuation", "supply", "objective", "prior"}


@dataclass
class Setting:
    """A static selling problem: bidders, items, valuations, a prior, supply, objective.

    Build one with :func:`automech.get_setting` (a registered name or a TOML file),
    :meth:`from_toml` or :meth:`from_dict`.

    Attributes
    ----------
    num_bidders, num_items
        n bidders and m items; a valuation profile is an (n, m) array.
    prior
        The joint law of profiles (:mod:`automech.problems.priors`).
    valuation
        ``"additive"`` (a bundle is worth the sum of its items) or ``"unit-demand"``
        (worth its best item).
    supply
        ``"unit"`` (one copy of each item: ``sum_i x_ij <= 1``) or ``"unlimited"``.
    objective
        What a design maximises: revenue, welfare or revenue minus production and
        duplication costs (:mod:`automech.problems.objectives`).
    name
        The registered name, if any.

    Examples
    --------
    >>> import automech
    >>> s = automech.get_setting("2x2-uniform")
    >>> s.shape, s.sample(3, seed=0).shape
    ((2, 2), (3, 2, 2))
    """

    num_bidders: int
    num_items: int
    prior: Prior
    valuation: str = "additive"
    supply: str = "unit"
    objective: Objective = field(default_factory=Revenue)
    name: str | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.num_bidders, self.num_items

    @property
    def unit_demand(self) -> bool:
        return self.valuation == "unit-demand"

    @property
    def unit_supply(self) -> bool:
        return self.supply == "unit"

    @cached_property
    def value_unit(self) -> float:
        """The values' unit: the largest width ``high - low`` of the prior's support box
        (its largest upper end where every width is 0; 1 where that is 0 too), an
        unbounded law's box cut at its 0.99 quantile.  Learned
        mechanisms keep their prices, boosts and softmax inputs in this unit, so values
        multiplied by c train along the same path and end with c times the prices
        (revenue is homogeneous of degree one in values), and a support far from 0
        (U[4, 5]) is resolved at its own width, not at its distance from 0."""
        low, high = self.prior.support()
        if self.prior.independent:  # unbounded laws: their bulk, not the 1e-4 tail
            n, m = self.shape
            laws = [[self.prior.marginal(i, j) for j in range(m)] for i in range(n)]
            high = np.array([[law.typical_high() for law in row if law] for row in laws])
        for top in (float(np.max(high - low)), float(np.max(high))):
            if top > 0 and np.isfinite(top):
                return top
        return 1.0

    @cached_property
    def value_floor(self) -> np.ndarray:
        """The lowest value of each item over bidders (m,), the lower corner of the
        support box: every bidder values a bundle x at least ``value_floor . x``, so
        menus price ``value_floor . x`` plus a learned surplus price in
        :attr:`value_unit` (an exact reparametrisation that starts prices at the support
        instead of at 0)."""
        return np.asarray(self.prior.support()[0], dtype=np.float64).min(axis=0)

    def sample(self, num: int, seed: int | np.random.Generator) -> np.ndarray:
        """``num`` valuation profiles (num, n, m) drawn from the prior.

        Raises
        ------
        SettingError
            when ``num`` is negative or the profiles would not fit in half of this
            machine's memory (checked before anything is allocated).
        """
        check_sample_size(num, self.num_bidders * self.num_items)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return self.prior.sample(num, rng)

    def test_profiles(self, num: int, seed: int) -> np.ndarray:
        """The profiles an evaluation scores: ``num`` prior draws, or a data prior's
        held-out profiles (:meth:`Prior.test_profiles`)."""
        return self.prior.test_profiles(num, seed)

    # ---- quantities of an outcome (torch, batched) -------------------------------------

    @staticmethod
    def values(valuations: torch.Tensor, alloc: torch.Tensor) -> torch.Tensor:
        """Each bidder's value for its allocation, ``v_i . x_i``: (B, n)."""
        return (valuations * alloc).sum(dim=-1)

    def utilities(
        self, valuations: torch.Tensor, alloc: torch.Tensor, pay: torch.Tensor
    ) -> torch.Tensor:
        """Quasi-linear utilities ``v_i . x_i - p_i``: (B, n)."""
        return self.values(valuations, alloc) - pay

    def infeasibility(self, alloc: torch.Tensor) -> torch.Tensor:
        """Largest violation of the allocation constraints per profile: (B,), 0 if feasible.

        Checks 0 <= x <= 1, unit supply (``sum_i x_ij <= 1``) and unit demand
        (``sum_j x_ij <= 1``) where they apply.
        """
        worst = torch.maximum((-alloc).amax(dim=(-1, -2)), (alloc - 1).amax(dim=(-1, -2)))
        if self.unit_supply:
            worst = torch.maximum(worst, (alloc.sum(dim=-2) - 1).amax(dim=-1))
        if self.unit_demand:
            worst = torch.maximum(worst, (alloc.sum(dim=-1) - 1).amax(dim=-1))
        return worst.clamp_min(0)

    # ---- serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        out.update(
            bidders=self.num_bidders,
            items=self.num_items,
            valuation=self.valuation,
            supply=self.supply,
            objective=self.objective.to_dict(),
            prior=self.prior.to_dict(),
        )
        return out

    @classmethod
    def from_dict(cls, spec: dict[str, Any], source: str | None = None) -> Setting:
        """Build and validate a setting from its dict (TOML) form, naming any bad field."""
        if not isinstance(spec, dict):
            raise SettingError("<top>", "a setting must be a table of keys", source)
        for key in spec:
            if key not in _TOP_KEYS:
                raise SettingError(
                    key, f"unknown key; allowed: {', '.join(sorted(_TOP_KEYS))}", source
                )
        n = _count(spec, "bidders", source)
        m = _count(spec, "items", source)
        if n * m > MAX_PROFILE_ENTRIES:
            raise SettingError(
                "bidders",
                f"{n} bidders x {m} items = {n * m:,} values per profile; automech handles "
                f"at most {MAX_PROFILE_ENTRIES:,} (a batch of profiles must fit in memory)",
                source,
            )
        valuation = spec.get("valuation", "additive")
        if valuation not in VALUATIONS:
            raise SettingError(
                "valuation", f"must be one of {VALUATIONS}, got {valuation!r}", source
            )
        supply = spec.get("supply", "unit")
        if supply not in SUPPLIES:
            raise SettingError("supply", f"must be one of {SUPPLIES}, got {supply!r}", source)
        if "prior" not in spec:
            raise SettingError("prior", "missing", source)
        prior = prior_from_dict(spec["prior"], n, m, source)
        objective = objective_from_spec(spec.get("objective", "revenue"), source)
        name = spec.get("name")
        if name is not None and not isinstance(name, str):
            raise SettingError("name", "must be a string", source)
        return cls(n, m, prior, valuation, supply, objective, name)

    @classmethod
    def from_toml(cls, path: str | Path) -> Setting:
        path = Path(path)
        if not path.is_file():
            raise SettingError("<file>", f"setting file {str(path)!r} does not exist")
        try:
            spec = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise SettingError("<file>", f"not valid TOML: {err}", str(path)) from None
        spec.setdefault("name", path.stem)
        return cls.from_dict(spec, source=str(path))

    def describe(self) -> str:
        extra = [] if self.objective.name == "revenue" else [f"objective {self.objective.name}"]
        if self.supply != "unit":
            extra.append(f"{self.supply} supply")
        tail = f", {', '.join(extra)}" if extra else ""
        return (
            f"{self.num_bidders} bidder(s) x {self.num_items} item(s), {self.valuation}, "
            f"{self.prior.describe()}{tail}"
        )


def _count(spec: dict, key: str, source: str | None) -> int:
    if key not in spec:
        raise SettingError(key, "missing", source)
    val = spec[key]
    if isinstance(val, bool) or not isinstance(val, int):
        raise SettingError(key, f"must be a positive integer, got {val!r}", source)
    if val < 1:
        raise SettingError(key, f"must be a positive integer, got {val}", source)
    return val


def cost_problem(setting: Setting) -> str | None:
    """Why the unlimited-supply/cost baselines and TEDI do not apply to ``setting`` (None
    if they do)."""
    if setting.unit_supply:
        return "needs unlimited supply (the TEDI problem class)"
    if setting.unit_demand:
        return "needs additive bidders"
    if setting.objective.name not in ("revenue", "revenue-minus-cost"):
        return "maximises revenue minus production/duplication costs only"
    return None

"""Automated mechanism design as a linear program (Conitzer and Sandholm 2002-2004).

On a finite type space (:mod:`automech.problems.finite_types`: a discrete prior as it is,
or a continuous one on a ``grid``), with profiles t of probability P(t), the variables
are the allocation probabilities x_ij(t) in [0, 1] and payments p_i(t) (free) at every
profile of the type product.  With u_i(s; t) = s . x_i(t) - p_i(t) the utility of type
s for the outcome at t, and (a, t_-i) the profile t with bidder i's type replaced by a:

    maximise   sum_t P(t) g(t)        g = sum_i p_i (revenue), sum_ij t_ij x_ij (welfare),
                                      or sum_i p_i - sum_j (c_d sum_i x_ij + c_p z_j)
                                      with z_j(t) >= x_ij(t) (revenue-minus-cost)
    subject to
      DSIC   u_i(t_i; (a, t_-i)) <= u_i(t_i; t)                   every i, t, a != t_i
      BIC    sum_{t_-i} P(t_-i | c) [u_i(c; (a, t_-i)) - u_i(c; (c, t_-i))] <= 0
                                                                  every i, c, a != c
      IR     u_i(t_i; t) >= 0 every i, t (ex-post), or
             sum_{t_-i} P(t_-i | c) u_i(c; (c, t_-i)) >= 0 every i, c (interim)
      supply sum_i x_ij(t) <= 1 (unit supply),  demand sum_j x_ij(t) <= 1 (unit-demand).

DSIC holds against every report of the others on the type product (dominant strategies,
also at profiles of probability 0 of a listed correlated prior); BIC uses the conditional
P(t_-i | c) = P(c, t_-i) / P_i(c), so correlated listed priors are handled as well.
The constraint matrix is built as sparse COO triplets by index arithmetic; HiGHS solves
it (``scipy.optimize.linprog``).  Size: with k_i types per bidder and T = prod k_i
profiles, T n (m + 1) variables and T sum_i (k_i - 1) DSIC rows of 2 (m + 1) nonzeros;
one bidder on a k-point grid of m items has k^m types and about k^(2m) rows, which is
where the LP stops scaling.  The mechanism on bids off the grid is
:class:`automech.mechanisms.learned.lp_table.LPTable`.  The run directory gets ``lp.json``: LP
size, build and solve seconds, status, the optimum on the grid and the largest dual
values (shadow prices, revenue per unit of relaxation) of the binding IC constraints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from automech.errors import AutomechError
from automech.mechanisms.learned.lp_table import LPTable
from automech.problems.finite_types import POINTS, FiniteTypes, finite_types
from automech.problems.setting import Setting
from automech.training import FitContext, Method, Options, option

IC_CHOICES = ("dsic", "bic")
IR_CHOICES = ("ex-post", "interim")
SOLVERS = ("highs", "highs-ds", "highs-ipm")
OBJECTIVES = ("revenue", "welfare", "revenue-minus-cost")
#: IC constraints reported with their duals in ``lp.json`` (the largest ones).
TOP_DUALS = 20
#: A dual value above this counts the IC constraint as binding.
BINDING = 1e-9


@dataclass
class _Rows:
    """Accumulates ``A_ub v <= b_ub`` as COO triplets, block by block."""

    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)
    rhs: list[np.ndarray] = field(default_factory=list)
    count: int = 0

    def block(self, size: int, rhs: float = 0.0) -> int:
        """Open ``size`` new rows with right-hand side ``rhs``; returns the first row."""
        first = self.count
        self.count += size
        self.rhs.append(np.full(size, rhs))
        return first

    def add(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray | float) -> None:
        rows, cols, vals = np.broadcast_arrays(rows, cols, vals)
        self.rows.append(rows.ravel())
        self.cols.append(cols.ravel())
        self.vals.append(vals.ravel())

    def matrix(self, num_vars: int) -> tuple[sp.csr_matrix, np.ndarray]:
        a = sp.coo_matrix(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(self.count, num_vars),
        )
        return a.tocsr(), np.concatenate(self.rhs)


class _Layout:
    """Variable indices: x (T, n, m), then p (T, n), then z (T, m) when costs need it."""

    def __init__(self, num_profiles: int, n: int, m: int, with_z: bool) -> None:
        self.T, self.n, self.m = num_profiles, n, m
        self.p0 = num_profiles * n * m
        self.z0 = self.p0 + num_profiles * n
        self.size = self.z0 + (num_profiles * m if with_z else 0)

    def x(self, t: np.ndarray, i: int) -> np.ndarray:
        """Columns of x_i(t) for profiles ``t`` (R,): (R, m)."""
        return ((t * self.n + i) * self.m)[:, None] + np.arange(self.m)

    def p(self, t: np.ndarray, i: int) -> np.ndarray:
        return self.p0 + t * self.n + i


def _add_utility(
    acc: _Rows,
    lay: _Layout,
    rows: np.ndarray,
    t: np.ndarray,
    bidder: int,
    values: np.ndarray,
    weight: np.ndarray,
) -> None:
    """Add ``weight * u_bidder(values; outcome at t)`` to ``rows`` (all arrays length R)."""
    acc.add(rows[:, None], lay.x(t, bidder), weight[:, None] * values)
    acc.add(rows, lay.p(t, bidder), -weight)


@dataclass
class LinearProgram:
    """The LP ``min c.v s.t. A v <= b, bounds`` plus what is needed to read its solution."""

    c: np.ndarray
    a: sp.csr_matrix
    b: np.ndarray
    bounds: np.ndarray
    layout: _Layout
    ic_rows: dict[str, np.ndarray]  # bidder, true type, reported type, profile (-1 for BIC)


def build(setting: Setting, ft: FiniteTypes, ic: str, ir: str) -> LinearProgram:
    """The LP of ``setting`` on the finite types ``ft`` (see the module docstring)."""
    n, m = setting.shape
    costs = setting.objective.params if setting.objective.name == "revenue-minus-cost" else {}
    lay = _Layout(ft.num_profiles, n, m, with_z=costs.get("production_cost", 0.0) > 0)
    acc = _Rows()
    blocks = [_ic_rows(acc, lay, ft, i, ic) for i in range(n)]
    ic_rows = {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}
    for i in range(n):
        _ir_rows(acc, lay, ft, i, ir)
    _feasibility_rows(acc, lay, setting)
    bounds = np.zeros((lay.size, 2))
    bounds[:, 1] = 1.0
    bounds[lay.p0 : lay.z0] = (-np.inf, np.inf)
    a_ub, b_ub = acc.matrix(lay.size)
    return LinearProgram(_objective(setting, ft, lay, costs), a_ub, b_ub, bounds, lay, ic_rows)


def _conditional(ft: FiniteTypes, bidder: int) -> np.ndarray:
    """P(t_-i | t_i) at every profile t, (T,)."""
    return ft.joint.ravel() / ft.marginal(bidder)[ft.profile_indices()[:, bidder]]


def _ic_rows(acc: _Rows, lay: _Layout, ft: FiniteTypes, i: int, ic: str) -> dict[str, np.ndarray]:
    """Bidder i's DSIC or BIC rows; returns (bidder, true, report, profile) per row."""
    k = ft.sizes[i]
    own = ft.profile_indices()[:, i]
    values = ft.types[i][own]  # (T, m)
    t, a = np.nonzero(np.arange(k)[None, :] != own[:, None])  # truthful report excluded
    deviated = t + (a - own[t]) * ft.strides()[i]  # profile (a, t_-i)
    if ic == "dsic":
        rows = acc.block(len(t)) + np.arange(len(t))
        weight = np.ones(len(t))
        true, report, at = own[t], a, t
    else:
        cond = _conditional(ft, i)
        pairs = np.flatnonzero(np.arange(k)[None, :] != np.arange(k)[:, None])  # c k + a
        row_of = np.full(k * k, -1)
        row_of[pairs] = acc.block(len(pairs)) + np.arange(len(pairs))
        live = cond[t] > 0
        t, a, deviated = t[live], a[live], deviated[live]
        rows, weight = row_of[own[t] * k + a], cond[t]
        true, report, at = pairs // k, pairs % k, np.full(len(pairs), -1)
    _add_utility(acc, lay, rows, deviated, i, values[t], weight)
    _add_utility(acc, lay, rows, t, i, values[t], -weight)
    return {"bidder": np.full(len(true), i), "true": true, "report": report, "profile": at}


def _ir_rows(acc: _Rows, lay: _Layout, ft: FiniteTypes, i: int, ir: str) -> None:
    """Bidder i's ex-post (one per profile) or interim (one per type) IR rows."""
    own = ft.profile_indices()[:, i]
    values = ft.types[i][own]
    profiles = np.arange(ft.num_profiles)
    if ir == "ex-post":
        rows = acc.block(len(profiles)) + profiles
        _add_utility(acc, lay, rows, profiles, i, values, -np.ones(len(profiles)))
    else:
        first = acc.block(ft.sizes[i])
        cond = _conditional(ft, i)
        live = np.flatnonzero(cond > 0)
        _add_utility(acc, lay, first + own[live], live, i, values[live], -cond[live])


def _feasibility_rows(acc: _Rows, lay: _Layout, setting: Setting) -> None:
    """Unit supply, unit demand and the cost epigraph rows x_ij(t) - z_j(t) <= 0."""
    num, n, m = lay.T, lay.n, lay.m
    profiles = np.arange(num)
    if setting.unit_supply and n > 1:  # sum_i x_ij(t) <= 1
        rows = acc.block(num * m, 1.0) + np.arange(num * m).reshape(num, m)
        for i in range(n):
            acc.add(rows, lay.x(profiles, i), 1.0)
    if setting.unit_demand and m > 1:  # sum_j x_ij(t) <= 1
        rows = acc.block(num * n, 1.0) + np.arange(num * n).reshape(num, n)
        for i in range(n):
            acc.add(rows[:, i : i + 1], lay.x(profiles, i), 1.0)
    if lay.size > lay.z0:
        zcols = lay.z0 + profiles[:, None] * m + np.arange(m)
        for i in range(n):
            rows = acc.block(num * m) + np.arange(num * m).reshape(num, m)
            acc.add(rows, lay.x(profiles, i), 1.0)
            acc.add(rows, zcols, -1.0)


def _objective(
    setting: Setting, ft: FiniteTypes, lay: _Layout, costs: dict[str, float]
) -> np.ndarray:
    """Cost vector c = -(expected gain coefficients); linprog minimises."""
    n, m = lay.n, lay.m
    probs = ft.joint.ravel()
    c = np.zeros(lay.size)
    if setting.objective.name == "welfare":
        c[: lay.p0] = -(probs[:, None, None] * ft.profile_values()).ravel()
        return c
    c[lay.p0 : lay.z0] = -np.repeat(probs, n)
    c[: lay.p0] = np.repeat(probs, n * m) * costs.get("duplication_cost", 0.0)
    if lay.size > lay.z0:
        c[lay.z0 :] = np.repeat(probs, m) * costs["production_cost"]
    return c


@dataclass(frozen=True)
class LPOptions(Options):
    """The LP's options."""

    method = "lp"
    ic: Literal["dsic", "bic"] = option(
        "dsic", "incentive constraint: dominant strategy or Bayesian"
    )
    ir: Literal["ex-post", "interim"] = option("ex-post", "individual rationality")
    grid: int = option(
        0, "points per dimension for continuous laws (0: a discrete prior as it is)", low=0
    )
    points: Literal["mid", "low"] = option("mid", "grid cell midpoint or lower end")
    time_limit: float = option(600.0, "HiGHS time limit, seconds", low=0, low_open=True)
    solver: Literal["highs", "highs-ds", "highs-ipm"] = option(
        "highs", "HiGHS algorithm (highs-ipm: faster on large grids)"
    )
    max_nonzeros: int = option(60_000_000, "refuse larger LPs before building them", low=1)


class LinearProgramMethod(Method):
    """Optimal randomized mechanism on a finite (or discretised) type space, by LP."""

    name = "lp"
    Options = LPOptions
    mechanism = LPTable

    def applicable(self, setting: Setting) -> str | None:
        if setting.objective.name not in OBJECTIVES:
            return f"objective {setting.objective.name!r} is not linear in the outcome"
        return None

    def fit(self, ctx: FitContext) -> LPTable:
        mechanism, report = solve(ctx.setting, **ctx.options.to_dict())
        ctx.run.write_json("lp.json", report)
        return mechanism


def _check_options(
    ic: str, ir: str, grid: int, points: str, time_limit: float, solver: str
) -> None:
    for key, value, allowed in (
        ("ic", ic, IC_CHOICES),
        ("ir", ir, IR_CHOICES),
        ("points", points, POINTS),
        ("solver", solver, SOLVERS),
    ):
        if value not in allowed:
            raise AutomechError(
                f"option {key!r} of method 'lp' must be one of {', '.join(allowed)}; got {value!r}"
            )
    if grid < 0:
        raise AutomechError(f"option 'grid' must be >= 0, got {grid}")
    if not time_limit > 0:
        raise AutomechError(f"option 'time_limit' must be > 0 seconds, got {time_limit}")


def _estimated_nonzeros(setting: Setting, ft: FiniteTypes, ic: str) -> int:
    """Nonzeros of the IC block (it dominates): 2 (m + 1) per (profile, bidder, report),
    profiles of probability 0 left out under BIC."""
    profiles = ft.num_profiles if ic == "dsic" else int(np.count_nonzero(ft.joint))
    return 2 * (setting.num_items + 1) * sum(profiles * (k - 1) for k in ft.sizes)


def solve(
    setting: Setting,
    ic: str = "dsic",
    ir: str = "ex-post",
    grid: int = 0,
    points: str = "mid",
    time_limit: float = 600.0,
    solver: str = "highs",
    max_nonzeros: int = 60_000_000,
) -> tuple[LPTable, dict[str, Any]]:
    """Build and solve the LP of ``setting``; the table mechanism and the ``lp.json`` report."""
    _check_options(ic, ir, grid, points, time_limit, solver)
    problem = LinearProgramMethod().applicable(setting)
    if problem:
        raise AutomechError(f"method 'lp': {problem}")
    start = time.perf_counter()
    ft = finite_types(setting.prior, grid, points)
    estimate = _estimated_nonzeros(setting, ft, ic)
    if estimate > max_nonzeros:
        raise AutomechError(
            f"the LP would have about {estimate:,} nonzeros "
            f"({ft.num_profiles:,} profiles); the limit is option "
            f"max_nonzeros={max_nonzeros:,} (use a coarser grid)"
        )
    lp = build(setting, ft, ic, ir)
    built = time.perf_counter()
    res = linprog(
        lp.c,
        A_ub=lp.a,
        b_ub=lp.b,
        bounds=lp.bounds,
        method=solver,
        options={"time_limit": float(time_limit), "presolve": True},
    )
    solved = time.perf_counter()
    if res.status != 0 or res.x is None:
        raise AutomechError(
            f"HiGHS did not solve the LP ({lp.a.shape[1]:,} variables, "
            f"{lp.a.shape[0]:,} constraints): {res.message}"
        )
    mechanism = _mechanism(setting, ft, lp.layout, res.x, ir)
    report = {
        "ic": ic,
        "ir": ir,
        "grid": grid,
        "points": points,
        "solver": solver,
        "types_per_bidder": list(ft.sizes),
        "profiles": ft.num_profiles,
        "variables": int(lp.a.shape[1]),
        "constraints": int(lp.a.shape[0]),
        "ic_constraints": int(len(lp.ic_rows["bidder"])),
        "nonzeros": int(lp.a.nnz),
        "build_seconds": built - start,
        "solve_seconds": solved - built,
        "status": int(res.status),
        "message": res.message,
        "objective": -float(res.fun),
        **_ic_duals(ft, lp, res),
    }
    return mechanism, report


def _ic_duals(ft: FiniteTypes, lp: LinearProgram, res) -> dict[str, Any]:
    """Shadow prices of the IC rows (>= 0: objective gain per unit of relaxation)."""
    meta = lp.ic_rows
    shadow = -res.ineqlin.marginals[: len(meta["bidder"])]
    binding = np.flatnonzero(shadow > BINDING)
    top = binding[np.argsort(-shadow[binding])[:TOP_DUALS]]
    index = ft.profile_indices()
    entries = []
    for r in top:
        i = int(meta["bidder"][r])
        entry = {
            "dual": float(shadow[r]),
            "bidder": i,
            "true_type": ft.types[i][meta["true"][r]].tolist(),
            "reported_type": ft.types[i][meta["report"][r]].tolist(),
        }
        if meta["profile"][r] >= 0 and len(ft.types) > 1:
            others = index[meta["profile"][r]]
            entry["others_types"] = [
                ft.types[j][others[j]].tolist() for j in range(len(ft.types)) if j != i
            ]
        entries.append(entry)
    return {
        "binding_ic": int(len(binding)),
        "ic_dual_sum": float(shadow[binding].sum()),
        "ic_duals_top": entries,
    }


def _mechanism(setting: Setting, ft: FiniteTypes, lay: _Layout, x: np.ndarray, ir: str) -> LPTable:
    """The table mechanism of an LP solution, cleaned of solver round-off.

    Allocations are clipped to [0, 1] and scaled down where a supply or demand sum exceeds
    1 by the solver's tolerance; with ex-post IR, payments are capped at the value so
    that grid types never pay more than their value.
    """
    n, m, num = setting.num_bidders, setting.num_items, ft.num_profiles
    alloc = np.clip(x[: lay.p0].reshape(num, n, m), 0.0, 1.0)
    pay = x[lay.p0 : lay.z0].reshape(num, n).copy()
    if setting.unit_supply:
        alloc /= np.maximum(alloc.sum(axis=1, keepdims=True), 1.0)
    if setting.unit_demand:
        alloc /= np.maximum(alloc.sum(axis=2, keepdims=True), 1.0)
    if ir == "ex-post":
        pay = np.minimum(pay, (ft.profile_values() * alloc).sum(axis=-1))
    types = np.zeros((n, max(ft.sizes), m))
    for i, t in enumerate(ft.types):
        types[i, : len(t)] = t
    return LPTable(
        setting,
        list(ft.sizes),
        null_if_negative=ir == "ex-post",
        types=types,
        alloc=alloc,
        pay=pay,
        probabilities=ft.joint.ravel(),
    )

"""Exact regret certificates for piecewise-linear RegretNet networks, by MILP (HiGHS).

Curry, Chiang, Goldstein and Dickerson, "Certifying Strategyproof Auction Networks"
(NeurIPS 2020): a RegretNet whose layers are ReLUs and whose allocation is a sparsemax is
a piecewise-linear function of the bids, so the best misreport of bidder i at a profile v,

    U_i(v) = max_{b_i in [L_i, H_i]}  u_i(v_i; (b_i, v_-i)) = z_i(b) . v_i - p_i(b),

is a mixed-integer linear program, and ``U_i(v) - u_i(v_i; v)`` is the bidder's exact
regret ``rgt_i(v)``, not a sampled lower bound of it. The networks are those of
:class:`~automech.mechanisms.learned.regretnet.RegretNetMechanism` with
``activation="relu"`` and ``allocation="sparsemax"`` (their payment
``p_i = min(c_i |t_i|, sum_j g_ij)`` with the piecewise-linear IR cap g is defined
there; Curry et al. used Gurobi and, for fractional payments, its non-convex quadratic
mode; every piece here is linear, so HiGHS solves it).

Encoding (every piece exact; ``[l, u]`` are proven bounds on the piece's input):

* inputs ``x_i = (b_i - shift_i) / scale_i`` in the box; the other bidders' fixed inputs
  are folded into the first layer's bias. Only x, the ambiguous ReLUs and the sparsemax
  thresholds are columns: every other quantity is kept as an affine expression of them,
  so a unit that is stable on the cell costs nothing (and its bounds are symbolic
  intervals);
* a ReLU ``y = max(h, 0)`` with ``l < 0 < u`` takes one binary d:
  ``y >= h, y >= 0, y <= h - l (1 - d), y <= u d`` (Tjeng, Xiao and Tedrake, ICLR 2019);
  a unit with ``l >= 0`` is the identity and one with ``u <= 0`` is 0;
* sparsemax of the d scores s of one item (or one unit-demand bidder):
  ``z_k = max(s_k - tau, 0)``, ``sum_k z_k = 1``, tau free in
  ``[max_k l_k - 1, max_k u_k - 1/d]``: the threshold solving ``sum_k (s_k - tau)_+ = 1``
  is unique, so this is the projection itself (Curry et al. state the same KKT system
  with SOS1 complementarity; here each ``(.)_+`` is a ReLU as above). The scores enter
  less the dummy's (sparsemax is shift invariant), whose bounds are much tighter;
* ``min(a, b) = a - (a - b)_+`` (the unit-demand allocation);
* the payment ``p = min(A, G)``: since ``u = v.z - min(A, G) = max(v.z - A, v.z - G)``,
  ``U_i(v)`` is the larger of two programs, one per term, and in each the payment term is
  pushed down by the objective, so its convex pieces need no binary: ``y >= (t)_+`` in
  ``A = c (2 (t)_+ - t)``, ``y_j >= every term`` of the cap's max over knots
  ``G = sum_j max_k [q_k z_j - (q_k - b_j)_+]`` (whose ``(q_k - b_j)_+`` are exact ReLUs,
  ambiguous only for a knot inside the cell).

Search: branch and bound on the misreport box (the bidder's m inputs), best bound
first, per program. A cell's bound is the LP relaxation of its program (each ambiguous
ReLU as its triangle, the convex hull) with the layer bounds of *that* cell: interval
arithmetic tightened by linear back-substitution through the ReLU relaxations (CROWN,
Zhang et al., NeurIPS 2018, with the adaptive lower slope). Small cells have few
ambiguous units and tight big-M constants. A cell bounded within :data:`TOLERANCE` of
the best utility attained so far is closed; one with at most :data:`LEAF_BINARIES`
binaries is solved as a MILP by HiGHS (cut off at the incumbent); others are halved
along their widest side. Every LP and MILP solution is put back into the network
(float64) as a candidate misreport; the first incumbent is the best of the truth and a
few hundred box points.

Certificate: the largest of the closed cells' bounds (HiGHS's dual bounds), the bounds of
the cells still open and the incumbent is ``B >= U_i(v)``; the certified regret is
``B - u_i(v_i; v)``. The incumbent misreport attains ``A <= U_i(v)`` in the network
itself; the gap ``B - A`` is how far from exact the certificate is (0 up to the solver's
tolerances when the search completes; a time limit leaves a valid bound with a positive
gap).
"""

from __future__ import annotations

import contextlib
import copy
import heapq
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import sparse

from automech.errors import EvaluationError
from automech.mechanisms.learned.regretnet import RegretNetMechanism, sparsemax

#: Seconds one (profile, bidder) certificate may take by default.
TIME_LIMIT = 60.0
#: Misreports tried (network forward passes) to give HiGHS its first incumbent.
START_CANDIDATES = 256
#: Relative padding of every computed bound, against floating-point rounding.
PAD = 1e-9


class CertificationError(EvaluationError):
    """The mechanism cannot be certified (not a piecewise-linear RegretNet network)."""


def refusal(mechanism: Any) -> str | None:
    """Why ``mechanism`` has no exact MILP certificate here, or None when it has one."""
    name = getattr(mechanism, "name", type(mechanism).__name__)
    if not isinstance(mechanism, RegretNetMechanism):
        return (
            f"certify needs a ReLU RegretNet network (regretnet or algnet), got mechanism {name!r}"
        )
    if not mechanism.piecewise_linear:
        return (
            f"certify needs a piecewise-linear {name} network (options activation=relu and "
            f"allocation=sparsemax); this one has activation={mechanism.activation} and "
            f"allocation={mechanism.allocation_map}"
        )
    return None


def check_certifiable(mechanism: Any) -> RegretNetMechanism:
    """``mechanism`` itself; raise :class:`CertificationError` (one line) unless it can be
    certified."""
    problem = refusal(mechanism)
    if problem:
        raise CertificationError(problem)
    return mechanism


# ------------------------------------------------------------------ bounds


def _linears(net: torch.nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (weight, bias) of every Linear of ``net`` (ReLU between consecutive ones)."""
    return [
        (m.weight.detach().double().cpu().numpy(), m.bias.detach().double().cpu().numpy())
        for m in net
        if isinstance(m, torch.nn.Linear)
    ]


def _pad(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lo - PAD * (1 + np.abs(lo)), hi + PAD * (1 + np.abs(hi))


def layer_bounds(
    layers: list[tuple[np.ndarray, np.ndarray]], low: np.ndarray, high: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Bounds ``(l_k, u_k)`` of every layer's pre-activation ``h_k = W_k relu(h_{k-1}) + c_k``
    (``h_0 = W_0 x + c_0``) over the input box ``[low, high]``: the tighter of interval
    arithmetic and CROWN back-substitution (ReLU upper relaxation ``u (h - l) / (u - l)``,
    lower ``alpha h`` with alpha = 1 when ``u > -l``, else 0)."""
    mid, rad = (high + low) / 2, (high - low) / 2
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for k, (w, c) in enumerate(layers):
        if k == 0:
            a_lo, a_hi = low, high
        else:
            a_lo, a_hi = np.maximum(out[-1][0], 0), np.maximum(out[-1][1], 0)
        centre, radius = w @ ((a_hi + a_lo) / 2) + c, np.abs(w) @ ((a_hi - a_lo) / 2)
        lo, hi = centre - radius, centre + radius
        if k > 0:
            bounds = []
            for upper in (False, True):
                lam, off = w.copy(), c.copy()
                for j in range(k - 1, -1, -1):
                    lj, uj = out[j]
                    amb = (lj < 0) & (uj > 0)
                    su = np.where(
                        uj <= 0, 0.0, np.where(lj >= 0, 1.0, uj / np.where(amb, uj - lj, 1))
                    )
                    bu = np.where(amb, -su * lj, 0.0)
                    sl = np.where(uj <= 0, 0.0, np.where(lj >= 0, 1.0, (uj > -lj).astype(float)))
                    pos = lam >= 0
                    use_up = pos if upper else ~pos
                    slope = np.where(use_up, su, sl)
                    off = off + (lam * np.where(use_up, bu, 0.0)).sum(axis=1)
                    lam = lam * slope
                    wj, cj = layers[j]
                    off, lam = off + lam @ cj, lam @ wj
                sign = 1.0 if upper else -1.0
                bounds.append(lam @ mid + off + sign * (np.abs(lam) @ rad))
            lo, hi = np.maximum(lo, bounds[0]), np.minimum(hi, bounds[1])
        out.append(_pad(lo, hi))
    return out


# ------------------------------------------------------------------ the MILP


@dataclass
class _Expr:
    """k affine functions ``A @ col + c`` of the model's columns (A is (k, width); columns
    added later have coefficient 0), with proven bounds and their value at the start."""

    A: np.ndarray
    c: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    start: np.ndarray

    def __len__(self) -> int:
        return len(self.c)

    def wide(self, width: int) -> np.ndarray:
        if self.A.shape[1] == width:
            return self.A
        return np.hstack([self.A, np.zeros((len(self.A), width - self.A.shape[1]))])

    def __getitem__(self, rows: Any) -> _Expr:
        rows = np.atleast_1d(np.arange(len(self))[rows])
        return _Expr(
            self.A[rows], self.c[rows], self.lower[rows], self.upper[rows], self.start[rows]
        )


class _Milp:
    """A MILP under construction with the encodings above. Columns are only the bidder's
    inputs, the outputs and binaries of ambiguous ReLUs and the sparsemax thresholds;
    every other quantity of the network is an affine expression of them (:class:`_Expr`),
    so a unit that is stable on the cell costs nothing. Every column has a start value:
    the network's own at the start misreport, a feasible point."""

    def __init__(self, relaxed: bool = False) -> None:
        #: the LP relaxation only: each ambiguous ReLU as its triangle (no binary)
        self.relaxed = relaxed
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.start: list[float] = []
        self.integer: list[bool] = []
        self.rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # blocks (A, lo, hi)
        self.binaries = 0
        self.ambiguous = 0  # ReLUs needing a binary (relaxed or not)
        self.objective: _Expr | None = None

    @property
    def n_col(self) -> int:
        return len(self.lower)

    def add(self, lower: Any, upper: Any, start: Any, integer: bool = False) -> _Expr:
        """New columns with these bounds and start values (broadcast to one length)."""
        lower, upper, start = np.broadcast_arrays(
            *(np.atleast_1d(np.asarray(a, dtype=float)).ravel() for a in (lower, upper, start))
        )
        k, first = len(lower), self.n_col
        start = np.clip(start, lower, upper)
        self.lower += lower.tolist()
        self.upper += upper.tolist()
        self.start += start.tolist()
        self.integer += [integer] * k
        self.binaries += k if integer else 0
        eye = np.zeros((k, self.n_col))
        eye[np.arange(k), first + np.arange(k)] = 1.0
        return _Expr(eye, np.zeros(k), lower.copy(), upper.copy(), start)

    def constant(self, value: Any) -> _Expr:
        value = np.atleast_1d(np.asarray(value, dtype=float))
        return _Expr(np.zeros((len(value), 0)), value, value.copy(), value.copy(), value.copy())

    def _expr(
        self,
        A: np.ndarray,
        c: np.ndarray,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> _Expr:
        """``A @ col + c`` bounded by interval arithmetic over the columns' bounds (symbolic
        intervals) and by ``lower``/``upper`` where given; checks the start lies inside."""
        width = A.shape[1]
        lo_col, hi_col = np.array(self.lower[:width]), np.array(self.upper[:width])
        centre = A @ ((lo_col + hi_col) / 2) + c
        radius = np.abs(A) @ ((hi_col - lo_col) / 2)
        lo, hi = _pad(centre - radius, centre + radius)
        if lower is not None and upper is not None:
            lo, hi = np.maximum(lo, lower), np.minimum(hi, upper)
        start = A @ np.array(self.start[:width]) + c
        slack = 1e-6 * (1 + np.maximum(np.abs(lo), np.abs(hi)))
        if np.any(start < lo - slack) or np.any(start > hi + slack):
            # the bounds are proven; a start outside them is a bug, never a result
            raise RuntimeError("certify: a computed bound excludes the network's own value")
        return _Expr(A, c, lo, np.maximum(hi, lo), start)

    def affine(
        self,
        weight: np.ndarray,
        inputs: _Expr,
        const: np.ndarray,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> _Expr:
        """``weight @ inputs + const`` (no new column)."""
        weight = np.atleast_2d(weight)
        return self._expr(weight @ inputs.A, weight @ inputs.c + const, lower, upper)

    def concat(self, *parts: _Expr) -> _Expr:
        width = self.n_col
        return _Expr(
            np.vstack([p.wide(width) for p in parts]),
            np.concatenate([p.c for p in parts]),
            np.concatenate([p.lower for p in parts]),
            np.concatenate([p.upper for p in parts]),
            np.concatenate([p.start for p in parts]),
        )

    def constrain(self, e: _Expr, lower: Any, upper: Any) -> None:
        """Rows ``lower <= e <= upper``."""
        if len(e):
            self.rows.append((e.A, lower - e.c, upper - e.c))

    def _relu_columns(self, e: _Expr, top: np.ndarray, binary: bool) -> _Expr:
        """Columns y (and binaries d) for the rows of ``e`` with ``l < 0 < u``; the rows
        ``y >= e`` and, when ``binary``, ``y <= e - l (1 - d)`` and ``y <= top d``; when
        relaxed instead, the triangle's ``y <= u (e - l) / (u - l)``."""
        k = len(e)
        lo, hi = e.lower, e.upper
        y = self.add(np.zeros(k), top, np.maximum(e.start, 0.0))
        width = self.n_col
        self.constrain(self._raw(y.wide(width) - e.wide(width), -e.c), 0.0, math.inf)
        if not binary:
            if self.relaxed:  # with y >= h and y >= 0: the convex hull of the ReLU
                slope = hi / (hi - lo)
                self.constrain(
                    self._raw(y.wide(width) - slope[:, None] * e.wide(width), -slope * e.c),
                    -math.inf,
                    -slope * lo,
                )
            return y
        d = self.add(np.zeros(k), 1.0, (e.start > 0).astype(float), integer=True)
        width = self.n_col
        # y <= h - l (1 - d)  <=>  y - h - l d <= -l ;  y <= top d
        self.constrain(
            self._raw(y.wide(width) - e.wide(width) - lo[:, None] * d.wide(width), -e.c),
            -math.inf,
            -lo,
        )
        self.constrain(self._raw(y.wide(width) - top[:, None] * d.wide(width), 0.0), -math.inf, 0.0)
        return y

    @staticmethod
    def _raw(A: np.ndarray, c: Any) -> _Expr:
        """An expression used only as a row (no bounds)."""
        c = np.broadcast_to(np.asarray(c, dtype=float), (len(A),)).copy()
        nan = np.full(len(A), np.nan)
        return _Expr(A, c, nan, nan, nan)

    def _assemble(self, h: _Expr, pieces: dict[str, tuple[np.ndarray, _Expr]]) -> _Expr:
        """Rows of ``h`` replaced, mask by mask, by the pieces' rows (in order)."""
        width = self.n_col
        A, c = h.wide(width).copy(), h.c.copy()
        lo, hi, st = h.lower.copy(), h.upper.copy(), h.start.copy()
        for mask, e in pieces.values():
            if mask.any():
                A[mask], c[mask] = e.wide(width), e.c
                lo[mask], hi[mask], st[mask] = e.lower, e.upper, e.start
        return _Expr(A, c, lo, hi, st)

    def relu(self, h: _Expr, cap: float = math.inf) -> _Expr:
        """``y = max(h, 0)`` (and ``y <= cap``, a valid bound the caller knows)."""
        lo, hi = h.lower, h.upper
        dead, amb = hi <= 0, (lo < 0) & (hi > 0)
        over = (lo >= 0) & (hi > cap)
        if over.any():  # a stable unit above the cap: the cap as a row
            self.constrain(h[over], -math.inf, cap)
            h = _Expr(h.A, h.c, h.lower, np.where(over, cap, h.upper), h.start)
        pieces = {"dead": (dead, self.constant(np.zeros(int(dead.sum()))))}
        if amb.any():
            self.ambiguous += int(amb.sum())
            top = np.minimum(hi[amb], cap)
            pieces["amb"] = (amb, self._relu_columns(h[amb], top, binary=not self.relaxed))
        return self._assemble(h, pieces)

    def relu_above(self, h: _Expr) -> _Expr:
        """``y >= max(h, 0)`` (no binary): exact for a quantity the objective only pushes
        down -- it appears nowhere else, with a negative weight -- since the optimum then
        has ``y = max(h, 0)``."""
        lo, hi = h.lower, h.upper
        dead, amb = hi <= 0, (lo < 0) & (hi > 0)
        pieces = {"dead": (dead, self.constant(np.zeros(int(dead.sum()))))}
        if amb.any():
            relaxed, self.relaxed = self.relaxed, False
            pieces["amb"] = (amb, self._relu_columns(h[amb], hi[amb], binary=False))
            self.relaxed = relaxed
        return self._assemble(h, pieces)

    def maximum_above(self, terms: _Expr) -> _Expr:
        """One column ``y >= max_k terms_k`` (no binary): exact for a quantity the objective
        only pushes down, as :meth:`relu_above`."""
        y = self.add(terms.lower.max(), terms.upper.max(), terms.start.max())
        width = self.n_col
        self.constrain(
            self._raw(np.repeat(y.wide(width), len(terms), 0) - terms.wide(width), -terms.c),
            0.0,
            math.inf,
        )
        return y

    def sparsemax(self, s: _Expr) -> _Expr:
        """Sparsemax of the scores ``s`` (one simplex), exactly."""
        d = len(s)
        z_start = sparsemax(torch.as_tensor(s.start).view(1, d), dim=1).view(d).numpy()
        support = z_start > 0
        tau_start = float(np.mean(s.start[support] - z_start[support]))
        tau = self.add(s.lower.max() - 1, s.upper.max() - 1 / d, tau_start)
        width = self.n_col
        w = self._expr(s.wide(width) - tau.wide(width), s.c.copy())
        z = self.relu(w, cap=1.0)
        total = self._expr(z.wide(self.n_col).sum(0, keepdims=True), np.array([z.c.sum()]))
        self.constrain(total, 1.0, 1.0)
        return z

    def minimum(self, a: _Expr, b: _Expr) -> _Expr:
        """``min(a, b) = a - (a - b)_+`` elementwise."""
        width = self.n_col
        gap = self.relu(self._expr(a.wide(width) - b.wide(width), a.c - b.c))
        width = self.n_col
        return self._expr(a.wide(width) - gap.wide(width), a.c - gap.c)

    def interval_bound(self) -> float:
        """The objective's interval upper bound: free, sometimes enough to close a cell."""
        assert self.objective is not None
        return float(self.objective.upper[0])

    def solve(
        self,
        time_limit: float,
        seed: int,
        relax: bool = False,
        cutoff: float | None = None,
    ) -> tuple[str, float, np.ndarray, int, float]:
        """Maximise the objective: (status, upper bound, solution, nodes, seconds).
        ``relax``: the LP relaxation only (its optimum bounds the MILP's); ``cutoff``: a
        utility already attained elsewhere (the search may prune below it)."""
        import highspy

        assert self.objective is not None
        n_col = self.n_col
        lower, upper = np.array(self.lower), np.array(self.upper)
        start = np.array(self.start)
        blocks = [(A, lo, hi) for A, lo, hi in self.rows if len(A)]
        dense = (
            np.vstack(
                [np.hstack([A, np.zeros((len(A), n_col - A.shape[1]))]) for A, _, _ in blocks]
            )
            if blocks
            else np.zeros((0, n_col))
        )
        n_row = len(dense)
        a = sparse.csc_matrix(dense)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n_col, n_row
        lp.col_cost_ = -self.objective.wide(n_col)[0]  # HiGHS minimises
        lp.offset_ = -float(self.objective.c[0])
        lp.col_lower_, lp.col_upper_ = lower, upper
        lp.row_lower_ = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros(0)
        lp.row_upper_ = np.concatenate([b[2] for b in blocks]) if blocks else np.zeros(0)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_ = a.indptr, a.indices
        lp.a_matrix_.value_ = a.data
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n_col, n_row
        mip = not relax and self.binaries > 0
        if mip:
            lp.integrality_ = [
                highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                for i in self.integer
            ]
        h = _highs()
        for key, value in (
            ("output_flag", False),
            ("threads", 1),
            ("random_seed", seed),
            ("time_limit", max(float(time_limit), 1e-3)),
            ("mip_rel_gap", 1e-9),
            ("mip_abs_gap", 1e-9),
            ("mip_feasibility_tolerance", 1e-9),
            ("primal_feasibility_tolerance", 1e-9),
            # the start is near-optimal already: large-neighbourhood heuristics and
            # restarts cost most of the time of these small MILPs and find nothing
            ("mip_heuristic_run_rins", False),
            ("mip_heuristic_run_rens", False),
            ("mip_heuristic_run_root_reduced_cost", False),
            ("mip_allow_restart", False),
        ):
            h.setOptionValue(key, value)
        if not mip:
            h.setOptionValue("presolve", "off")
            h.setOptionValue("simplex_strategy", 1)  # dual simplex
        elif cutoff is not None:
            h.setOptionValue("objective_bound", -float(cutoff))
        h.passModel(lp)
        if mip:
            sol = highspy.HighsSolution()
            sol.col_value = start.copy()
            sol.value_valid = True
            h.setSolution(sol)
        tic = time.perf_counter()
        h.run()
        seconds = time.perf_counter() - tic
        status = h.modelStatusToString(h.getModelStatus())
        info = h.getInfo()
        solution = np.asarray(h.getSolution().col_value, dtype=float)
        if len(solution) != n_col:
            solution = start.copy()
        if not mip:
            bound = -float(info.objective_function_value) if status == "Optimal" else math.inf
            return status, bound, solution, 0, seconds
        return status, -float(info.mip_dual_bound), solution, int(info.mip_node_count), seconds


_BANNER_SHOWN = False


def _highs() -> Any:
    """A HiGHS instance; the banner its first construction prints on the C-level standard
    output is discarded (it would corrupt ``--json`` output)."""
    import highspy

    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        return highspy.Highs()
    with _quiet_stdout():
        h = highspy.Highs()
    _BANNER_SHOWN = True
    return h


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            try:
                yield
            finally:
                os.dup2(saved, 1)
    finally:
        os.close(saved)


# ------------------------------------------------------------------ one bidder, one profile


@dataclass(frozen=True)
class Certificate:
    """The exact best misreport of one bidder at one profile.

    Attributes:
        bidder: the bidder i.
        truthful: ``u_i(v_i; v)``.
        bound: HiGHS's dual bound on ``max_b u_i(v_i; (b, v_-i))`` (>= the maximum).
        attained: the network's utility (float64) at :attr:`misreport`, HiGHS's incumbent
            (<= the maximum).
        misreport: (m,) the incumbent misreport.
        status: HiGHS's model status ("Optimal", "Time limit reached", ...).
        nodes: branch-and-bound nodes.
        binaries: binary variables (ambiguous ReLU units) in the MILP.
        seconds: wall time, bounds, models and HiGHS together.
        cells: cells of the input branch and bound (1: one MILP over the box).
    """

    bidder: int
    truthful: float
    bound: float
    attained: float
    misreport: np.ndarray
    status: str
    nodes: int
    binaries: int
    seconds: float
    cells: int = 1

    @property
    def regret(self) -> float:
        """Certified regret ``max(0, bound - truthful)`` (an upper bound, exact at gap 0)."""
        return max(0.0, self.bound - self.truthful)

    @property
    def attained_regret(self) -> float:
        """Regret of the incumbent misreport (a lower bound)."""
        return max(0.0, self.attained - self.truthful)

    @property
    def gap(self) -> float:
        """``bound - attained`` >= 0 (up to tolerances): what is left unproven."""
        return max(0.0, self.bound - self.attained)


def _utility(
    mech: RegretNetMechanism, values: np.ndarray, bidder: int, bids: np.ndarray
) -> np.ndarray:
    """``u_bidder(v; (b, v_-bidder))`` for misreports ``bids`` (C, m), float64: (C,)."""
    c = len(bids)
    profile = np.repeat(values[None], c, axis=0)
    profile[:, bidder] = bids
    with torch.no_grad():
        alloc, pay = mech(torch.as_tensor(profile, dtype=torch.float64))
    own = (alloc[:, bidder] * torch.as_tensor(values[bidder], dtype=torch.float64)).sum(-1)
    return (own - pay[:, bidder]).numpy()


def _start(
    mech: RegretNetMechanism, values: np.ndarray, bidder: int, count: int, seed: int
) -> np.ndarray:
    """The best of the truth, ``count`` uniform box points and a 9^m grid (up to 729
    points): HiGHS's first incumbent."""
    low, high = (np.asarray(a, dtype=float)[bidder] for a in mech.setting.prior.support())
    m = len(low)
    rng = np.random.default_rng([seed, bidder])
    parts = [values[bidder][None], low + (high - low) * rng.random((count, m))]
    if 9**m <= 729:
        axes = np.meshgrid(*[np.linspace(0, 1, 9)] * m, indexing="ij")
        parts.append(low + (high - low) * np.stack([a.ravel() for a in axes], axis=1))
    cands = np.concatenate(parts)
    return cands[int(np.argmax(_utility(mech, values, bidder, cands)))]


def _build(
    mech: RegretNetMechanism,
    values: np.ndarray,
    bidder: int,
    cell_low: np.ndarray,
    cell_high: np.ndarray,
    start: np.ndarray,
    branch: int,
    relaxed: bool = False,
) -> tuple[_Milp, np.ndarray]:
    """The MILP of ``max v_i . z_i(b) - A_i(b)`` (``branch`` :data:`AMOUNT`) or of
    ``max v_i . z_i(b) - G_i(b)`` (:data:`CAP`), whose larger optimum is
    ``max u_bidder(v; (b, v_-bidder))`` since ``p = min(A, G)``, over the cell
    ``[cell_low, cell_high]`` of misreports (float64 network ``mech``), started at
    ``start``; returns it and the columns of the bidder's inputs x (b = shift + scale x)."""
    n, m = mech.setting.shape
    shift, scale = (t.cpu().numpy() for t in (mech.shift, mech.scale))
    low, high = (t.cpu().numpy()[bidder] for t in (mech.low, mech.high))
    x_fixed = ((values - shift) / scale).reshape(-1)
    own = bidder * m + np.arange(m)
    rest = np.setdiff1d(np.arange(n * m), own)
    x_low, x_high = x_fixed.copy(), x_fixed.copy()
    x_low[own] = (cell_low - shift[bidder]) / scale[bidder]
    x_high[own] = (cell_high - shift[bidder]) / scale[bidder]

    model = _Milp(relaxed)
    x = model.add(x_low[own], x_high[own], (start - shift[bidder]) / scale[bidder])

    def network(net: torch.nn.Sequential, outputs: np.ndarray, minus: np.ndarray | None = None):
        """The rows ``outputs`` of ``net``'s last layer, less the rows ``minus`` (the same
        length) where given."""
        layers = _linears(net)
        w, c = layers[-1]
        w, c = w[outputs], c[outputs]
        if minus is not None:
            w, c = w - layers[-1][0][minus], c - layers[-1][1][minus]
        layers[-1] = (w, c)
        bounds = layer_bounds(layers, x_low, x_high)
        w0, c0 = layers[0]
        h = model.affine(w0[:, own], x, c0 + w0[:, rest] @ x_fixed[rest], *bounds[0])
        for k in range(1, len(layers)):
            h = model.affine(layers[k][0], model.relu(h), layers[k][1], *bounds[k])
        return h

    # allocation: item j's column sparsemax over the n bidders + dummy (scores r * m + j).
    # Sparsemax is invariant to adding a constant to all its scores, so each score enters
    # less the dummy's: bounds of the differences (back-substituted as one linear output)
    # are much tighter than differences of bounds.
    zero = model.constant(0.0)
    cols = np.arange(m)[None, :] + m * np.arange(n)[:, None]  # (n, m) bidders' scores
    scores = network(mech.allocation, cols.ravel(), np.tile(n * m + np.arange(m), n))
    z = model.concat(*(model.sparsemax(model.concat(scores[j::m], zero))[bidder] for j in range(m)))
    if mech.setting.unit_demand:  # and bidder i's row sparsemax over the m items + dummy
        first = (n + 1) * m + bidder * (m + 1)
        row = network(mech.allocation, first + np.arange(m), np.full(m, first + m))
        z = model.minimum(z, model.sparsemax(model.concat(row, zero))[:m])

    # u = v . z - min(A, G) = max(v . z - A, v . z - G): one branch per term, and in each
    # the payment term is one the objective pushes down (relu_above, no binary)
    v = values[bidder]
    if branch == AMOUNT:  # A = c |t| = c (2 relu(t) - t)
        t = network(mech.payment, np.array([bidder]))
        unit = float(scale[bidder].sum())
        parts = model.concat(z, model.relu_above(t), t)
        weights = np.concatenate([v, [-2.0 * unit, unit]])
    else:  # G = sum_j max_k [q_jk z_j - (q_jk - b_j)_+],  knots q,  b = shift + scale x
        knots = low[:, None] + (high - low)[:, None] * mech._grid.cpu().numpy()[None, :]
        zx = model.concat(z, x)
        caps = []
        for j in range(m):
            q = knots[j]
            k = len(q)
            b_j = np.zeros((1, 2 * m))
            b_j[0, m + j] = scale[bidder, j]
            # (q_k - b_j)_+ enters the cap with a minus sign: exact (binary where ambiguous)
            gap = model.relu(model.affine(-np.repeat(b_j, k, 0), zx, q - shift[bidder, j]))
            coef = np.zeros((k, 2 * m))
            coef[:, j] = q
            terms = model.affine(np.hstack([coef, -np.eye(k)]), model.concat(zx, gap), np.zeros(k))
            caps.append(model.maximum_above(terms))  # pushed down by the objective: no binary
        parts = model.concat(z, *caps)
        weights = np.concatenate([v, -np.ones(m)])
    model.objective = model.affine(weights[None], parts, np.zeros(1))
    return model, np.arange(m)


#: The two terms of the payment ``p = min(A, G)``: the network's amount, the IR cap.
AMOUNT, CAP = 0, 1
#: A cell whose program has at most this many binaries is solved as a MILP, others split.
LEAF_BINARIES = 40
#: Utility differences below this are ties (a cell bounded within it of the incumbent
#: cannot hold a better misreport).
TOLERANCE = 1e-7


def max_utility(
    mechanism: RegretNetMechanism,
    values: np.ndarray,
    bidder: int,
    time_limit: float = TIME_LIMIT,
    start: np.ndarray | None = None,
    seed: int = 0,
    split: bool = True,
    leaf_binaries: int = LEAF_BINARIES,
) -> Certificate:
    """Certify ``max_{b} u_bidder(v; (b, v_-bidder))`` over the support box at profile
    ``values`` (n, m) (module docstring).

    With ``split`` (the default) the box of misreports is searched by branch and bound on
    the inputs: a cell's bound is the LP relaxation of its MILP (whose layer bounds, and
    so whose big-M constants, shrink with the cell); a cell whose bound is within
    :data:`TOLERANCE` of the best utility attained so far is closed, a cell whose MILP
    has at most ``leaf_binaries`` binaries is solved exactly by HiGHS, others are halved
    along their widest side. The bound returned is the largest over the solved cells,
    the cells still open and the incumbent, so it is valid whenever the search stops.
    Without ``split``: one MILP over the whole box.

    Args:
        time_limit: seconds in all; on reaching it the bound is still valid.
        start: a misreport (m,) to start from (default: the best of a few hundred
            candidates).
        seed: HiGHS's random seed and the candidates' (same seed, same certificate).

    Raises:
        CertificationError: for a network that is not piecewise linear.
    """
    check_certifiable(mechanism)
    tic = time.perf_counter()
    deadline = tic + float(time_limit)
    mech = copy.deepcopy(mechanism).double().cpu().eval()
    n, m = mech.setting.shape
    values = np.asarray(values, dtype=float).reshape(n, m)
    if not 0 <= bidder < n:
        raise EvaluationError(f"certify: bidder must be in 0..{n - 1}, got {bidder}")
    low, high = (np.asarray(a, dtype=float)[bidder] for a in mech.setting.prior.support())
    if start is None:
        start = _start(mech, values, bidder, START_CANDIDATES, seed)
    start = np.clip(np.asarray(start, dtype=float), low, high)
    truthful, best = _utility(mech, values, bidder, np.stack([values[bidder], start]))
    best_b = start
    width = np.where(high > low, high - low, 1.0)

    def consider(points: np.ndarray) -> None:
        nonlocal best, best_b
        points = np.clip(points, low, high)
        u = _utility(mech, values, bidder, points)
        k = int(np.argmax(u))
        if u[k] > best:
            best, best_b = float(u[k]), points[k]

    def inside(cell_low: np.ndarray, cell_high: np.ndarray) -> np.ndarray:
        """The best of the cell's centre, corners and the incumbent clipped into it."""
        corners = np.array(np.meshgrid(*zip(cell_low, cell_high), indexing="ij")).reshape(m, -1).T
        pts = np.concatenate(
            [[np.clip(best_b, cell_low, cell_high)], [(cell_low + cell_high) / 2], corners]
        )
        u = _utility(mech, values, bidder, pts)
        k = int(np.argmax(u))
        if u[k] > best:
            consider(pts[k : k + 1])
        return pts[k]

    def point(sol: np.ndarray, x: np.ndarray) -> np.ndarray:
        return (shift + scale * sol[x])[None]

    shift, scale = mech.shift[bidder].numpy(), mech.scale[bidder].numpy()
    nodes = binaries = 0
    solved = -math.inf  # the largest bound of a cell solved as a MILP
    closed = -math.inf  # the largest bound of a cell closed within TOLERANCE
    statuses: set[str] = set()
    # (-bound, tie-break, cell low, cell high, branch, binaries): best bound first
    heap: list[tuple[float, int, np.ndarray, np.ndarray, int, int]] = []
    counter = 0

    def open_cell(cell_low: np.ndarray, cell_high: np.ndarray, branch: int) -> None:
        """Bound the branch on the cell (interval bound, else LP relaxation) and queue it
        unless the bound is within TOLERANCE of the incumbent."""
        nonlocal counter, binaries, closed
        model, x = _build(
            mech, values, bidder, cell_low, cell_high, inside(cell_low, cell_high), branch, True
        )
        binaries = max(binaries, model.ambiguous)
        bound = model.interval_bound()
        if bound > best + TOLERANCE and split:
            status, bound, sol, _, _ = model.solve(deadline - time.perf_counter(), seed, True)
            if status == "Optimal":
                consider(point(sol, x))
            else:
                bound = math.inf
        if bound > best + TOLERANCE or not split:
            heapq.heappush(heap, (-bound, counter, cell_low, cell_high, branch, model.ambiguous))
            counter += 1
        else:
            closed = max(closed, bound)

    for branch in (AMOUNT, CAP):
        open_cell(low, high, branch)
    while heap:
        bound, _, cell_low, cell_high, branch, ambiguous = heap[0]
        if -bound <= best + TOLERANCE or time.perf_counter() >= deadline:
            break
        heapq.heappop(heap)
        small = np.all((cell_high - cell_low) <= 1e-6 * width)
        if not split or ambiguous <= leaf_binaries or small:
            start = inside(cell_low, cell_high)
            model, x = _build(mech, values, bidder, cell_low, cell_high, start, branch)
            status, cell_bound, sol, k, _ = model.solve(
                deadline - time.perf_counter(), seed, cutoff=best if split else None
            )
            nodes += k
            statuses.add(status)
            consider(point(sol, x))
            if status in ("Optimal", "Time limit reached", "Interrupted by user"):
                solved = max(solved, cell_bound)
            elif status not in ("Infeasible", "Objective bound"):
                solved = math.inf  # HiGHS gave no bound: nothing is certified
            continue
        axis = int(np.argmax((cell_high - cell_low) / width))
        cut = (cell_low[axis] + cell_high[axis]) / 2
        for half in (0, 1):
            lo_c, hi_c = cell_low.copy(), cell_high.copy()
            (hi_c if half == 0 else lo_c)[axis] = cut
            open_cell(lo_c, hi_c, branch)
    open_bound = max((-b for b, *_ in heap), default=-math.inf)
    bound = max(best, solved, closed, open_bound)
    if heap and open_bound > best + TOLERANCE:
        status = "Time limit reached"
    elif statuses <= {"Optimal", "Infeasible", "Objective bound"}:
        status = "Optimal"
    else:
        status = ", ".join(sorted(statuses))
    return Certificate(
        bidder=bidder,
        truthful=float(truthful),
        bound=bound,
        attained=float(best),
        misreport=best_b,
        status=status,
        nodes=nodes,
        binaries=binaries,
        seconds=time.perf_counter() - tic,
        cells=counter,
    )


# ------------------------------------------------------------------ many profiles


@dataclass
class CertifyReport:
    """Certificates on P profiles, next to the sampled search's regret on the same ones.

    Attributes:
        values: (P, n, m) the profiles.
        certified: (P, n) certified regret (upper bound, exact at gap 0).
        attained: (P, n) regret of the MILP's incumbent misreports (lower bound).
        gap: (P, n) ``bound - attained`` in utility units.
        seconds: (P, n) HiGHS time per MILP.
        status: (P, n) HiGHS statuses.
        searched: (P, n) the sampled search's regret, or None.
    """

    values: np.ndarray
    certificates: list[list[Certificate]]
    searched: np.ndarray | None = None
    mechanism: str = ""
    setting: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def _grid(self, key: str) -> np.ndarray:
        return np.array([[getattr(c, key) for c in row] for row in self.certificates])

    @property
    def certified(self) -> np.ndarray:
        return self._grid("regret")

    @property
    def attained(self) -> np.ndarray:
        return self._grid("attained_regret")

    @property
    def gap(self) -> np.ndarray:
        return self._grid("gap")

    @property
    def seconds(self) -> np.ndarray:
        return self._grid("seconds")

    @property
    def proven(self) -> bool:
        """Every MILP solved to optimality."""
        return all(c.status == "Optimal" for row in self.certificates for c in row)

    def to_dict(self) -> dict[str, Any]:
        """Per profile the bidders' maxima (certified, gap, searched, missed) and the
        aggregates; means are over profiles and bidders, as the protocol's regret_mean."""
        cert, gap, secs = self.certified, self.gap, self.seconds
        rows = []
        for p, row in enumerate(self.certificates):
            entry: dict[str, Any] = {
                "profile": p,
                "certified_regret": float(cert[p].max()),
                "gap": float(gap[p].max()),
                "seconds": float(secs[p].sum()),
                "status": sorted({c.status for c in row}),
                "per_bidder": [
                    {
                        "bidder": c.bidder,
                        "certified_regret": c.regret,
                        "attained_regret": c.attained_regret,
                        "gap": c.gap,
                        "misreport": c.misreport.tolist(),
                        "status": c.status,
                        "nodes": c.nodes,
                        "binaries": c.binaries,
                        "seconds": c.seconds,
                    }
                    for c in row
                ],
            }
            if self.searched is not None:
                entry["searched_regret"] = float(self.searched[p].max())
                entry["missed"] = float((cert[p] - self.searched[p]).max())
            rows.append(entry)
        out: dict[str, Any] = {
            "mechanism": self.mechanism,
            "setting": self.setting,
            "profiles": len(self.certificates),
            "proven": self.proven,
            "certified_regret_mean": float(cert.mean()),
            "certified_regret_max": float(cert.max()),
            "gap_max": float(gap.max()),
            "seconds_total": float(secs.sum()),
            "seconds_per_profile": float(secs.sum(axis=1).mean()),
        }
        if self.searched is not None:
            missed = cert - self.searched
            out.update(
                searched_regret_mean=float(self.searched.mean()),
                searched_regret_max=float(self.searched.max()),
                missed_mean=float(missed.mean()),
                missed_max=float(missed.max()),
                search_below_certificate=bool((self.searched <= cert + 1e-6).all()),
            )
        out.update(self.extra)
        out["per_profile"] = rows
        return out


def _certify_share(
    args: tuple[RegretNetMechanism, np.ndarray, float, int],
) -> list[list[Certificate]]:
    """One worker's profiles (a top-level function: it is pickled to the worker)."""
    mechanism, values, time_limit, seed = args
    torch.set_num_threads(1)
    n = mechanism.setting.num_bidders
    return [
        [max_utility(mechanism, v, i, time_limit=time_limit, seed=seed) for i in range(n)]
        for v in values
    ]


def certify(
    mechanism: RegretNetMechanism,
    values: np.ndarray,
    time_limit: float = TIME_LIMIT,
    searched: np.ndarray | None = None,
    seed: int = 0,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> CertifyReport:
    """Certify every bidder's regret at each profile of ``values`` (P, n, m): one
    :func:`max_utility` per (profile, bidder), each with ``time_limit`` seconds.

    Args:
        searched: (P, n) regrets found by a sampled search on the same profiles, reported
            next to the certificates.
        workers: processes (each one thread) sharing the profiles; the certificates do
            not depend on it.
        progress: called with (done, total) as profiles are certified.
    """
    check_certifiable(mechanism)
    values = np.asarray(values, dtype=float)
    if values.ndim != 3 or values.shape[1:] != tuple(mechanism.setting.shape):
        raise EvaluationError(
            f"certify: profiles must be (P, {mechanism.setting.shape[0]}, "
            f"{mechanism.setting.shape[1]}), got {values.shape}"
        )
    if searched is not None and np.shape(searched) != values.shape[:2]:
        raise EvaluationError(
            f"certify: searched regrets must be {values.shape[:2]}, got {np.shape(searched)}"
        )
    mech = copy.deepcopy(mechanism).double().cpu().eval()
    certs: list[list[Certificate]] = []
    if workers <= 1 or len(values) <= 1:
        for v in values:
            certs += _certify_share((mech, v[None], time_limit, seed))
            if progress is not None:
                progress(len(certs), len(values))
    else:
        import concurrent.futures
        import multiprocessing

        shares = np.array_split(np.arange(len(values)), min(workers, len(values)))
        # small pieces in order, so that progress moves and the shares stay balanced
        pieces = [p for share in shares for p in np.array_split(share, max(1, len(share) // 4))]
        context = multiprocessing.get_context("spawn")  # no fork of a threaded torch
        with concurrent.futures.ProcessPoolExecutor(len(shares), mp_context=context) as pool:
            jobs = [(mech, values[p], time_limit, seed) for p in pieces if len(p)]
            for done in pool.map(_certify_share, jobs):
                certs += done
                if progress is not None:
                    progress(len(certs), len(values))
    return CertifyReport(
        values=values,
        certificates=certs,
        searched=None if searched is None else np.asarray(searched, dtype=float),
        mechanism=mechanism.name,
        setting=mechanism.setting.name or "",
    )


__all__ = [
    "Certificate",
    "CertificationError",
    "CertifyReport",
    "certify",
    "check_certifiable",
    "layer_bounds",
    "max_utility",
    "refusal",
]

"""GemNet's post-training price adjustment: make independent menu choices compatible.

Survey Section 5.3 (Wang, Jiang and Parkes 2024).  Two bidders, unit supply.  The
adjusted mechanism (:class:`~automech.mechanisms.learned.gemnet.GemNetMechanism` with
``adjusted=True``) splits each bidder's support box into ``G^m`` cells; bidder i's menu on
the cell ``c`` holding the other bid is the network's menu at the centre of ``c``
(allocations within ``snap`` of 0 or 1 rounded), plus price shifts ``delta[i, c]``.

**Candidates.**  On the box ``E`` of bidder i's own cell ``e`` (its lower faces moved to
0 when ``e`` touches the lower end of the support, since low bids land in that cell), the
utility of entry k, ``u_k(v) = v . a_k - p_k``, is linear in ``v``.  Entry k is
*dominated* when some entry l has ``u_l - u_k >= eps`` at every corner of ``E``, hence on
all of ``E`` (a linear function's minimum over a box is at a corner: this is the exact
Lipschitz extension in the own-bid direction, with constant ``|a_l - a_k|_1`` times the
half-width).  A dominated entry is never chosen for a bid in ``E``; the undominated ones are
the *candidates* ``S_i(c, e)``.

**Certificate.**  For every pair of cells (``e_1`` of bidder 1's bid, ``e_2`` of bidder
2's) and every pair of candidates ``k_1 in S_1(e_2, e_1)``, ``k_2 in S_2(e_1, e_2)``:
``a_1k1 + a_2k2 <= 1 + 1e-9`` item by item.  :func:`certify` checks this for all
``G^(2m)`` cell pairs.  **What it proves:** for every bid profile in ``R_+^(2 x m)`` (bids
above the support are capped before the choice, bids below it fall in the first cells,
whose boxes reach down to 0), the two independent choices allocate no item more than once
(up to 1e-9 in the sum of the two probabilities), in exact arithmetic; the float64 margin
``eps`` between a dominated entry and its dominator (1e-9 by default, against rounding of
order 1e-15) covers floating point.  Together with DSIC and IR by construction, the
adjusted mechanism is feasible, DSIC and IR on the whole bid domain.  Nothing is claimed
about the unadjusted network, whose menus vary continuously with ``v_-i``: its global
Lipschitz bound (reported by :func:`lipschitz_bound`) is far too loose to extend a grid
check between grid points, which is why the adjusted menus are constant on opponent
cells -- there the network's Lipschitz constant does not enter at all.

**Adjustment.**  Entries that no bid chooses on a fine grid of own values, in any menu,
leave the menus first (a trained network uses a handful of its K entries).  Bidder 1's
cells ``c`` are independent given bidder 2's menus, so each violating ``c`` gets one
MILP (HiGHS through :func:`scipy.optimize.milp`) over the price shifts ``d_k`` of its
entries (null entry fixed at 0), minimising ``sum_k max(d_k, 0) + DOWN_COST max(-d_k, 0)``:

* own cells ``e`` with no incompatible candidate keep their structure: every entry
  incompatible with one of bidder 2's candidates stays dominated by the candidate that
  dominates it most now (one linear row per entry pair, at its tightest cell);
* own cells with an incompatible candidate get binaries ``z_el`` over compatible entries l:
  exactly one of them must dominate every incompatible entry (big-M rows).

Keeping the compatible cells' structure is the paper's speed-up: binaries exist only for
violating cells, and a menu with no violating cell needs no MILP at all.  Raising every
non-null price by the largest utility is always feasible for a full pass (everyone falls
back to the null entry where needed; kept cells only keep their current margins), so
each full-pass MILP has a solution; a trimming MILP may not (keeping one of i's own
candidates can clash with another cell), and is then skipped.  Passes (:data:`PASSES`): first
each bidder only *trims* -- fixes the cells where one of its current candidates is
compatible, by keeping that candidate (moving its own decision boundary out of the cell,
a small price change) -- then full passes fix whatever remains, until the certificate
holds.
"""

from __future__ import annotations

import copy
import itertools
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import scipy.optimize
import scipy.sparse
import torch

from automech.errors import AutomechError
from automech.mechanisms.learned.gemnet import GemNetMechanism

#: Two probabilities summing above 1 by more than this over-allocate.
SUPPLY_TOL = 1e-9
#: Domination margin the certificate requires (float64 rounding is ~1e-15).
CERTIFY_EPS = 1e-9
#: Margin the MILP asks for (above HiGHS's 1e-7 feasibility tolerance).
MILP_EPS = 1e-5
#: Cost of lowering a price, per unit, relative to raising it (lowering loses revenue on
#: every bid that keeps the entry).
DOWN_COST = 4.0
#: The adjustment passes: (bidder, trim only); see :func:`adjust_bidder`.
PASSES = ((0, True), (1, True), (0, False), (1, False), (0, False), (1, False))
#: Price of an entry no bid can choose, in units of (1 + the largest value sum): it is
#: removed from the menu (and from the MILPs).
REMOVED_PRICE = 10.0
#: Opponent cells per bidder the automatic grid aims at.
AUTO_CELLS = 1600


def adjustable(setting) -> str | None:
    """None if :func:`adjust` handles ``setting``, else why not."""
    if setting.num_bidders != 2:
        return (
            f"GemNet's price adjustment is implemented for two bidders (this setting has "
            f"{setting.num_bidders}); train with --set adjust=false to keep the unadjusted "
            "network, whose over-allocation the evaluator reports"
        )
    low, high = setting.prior.support()
    if not np.allclose(low[0], low[1]) or not np.allclose(high[0], high[1]):
        return "GemNet's price adjustment needs both bidders on the same support box"
    return None


def auto_grid(setting) -> int:
    """Cells per coordinate giving about :data:`AUTO_CELLS` cells of the other bid."""
    return max(2, int(round(AUTO_CELLS ** (1 / setting.num_items))))


@dataclass
class AdjustmentReport:
    grid: int
    entries_used: int
    menu_size: int
    cells_per_bidder: int
    cell_pairs: int
    violating_pairs_before: int
    violating_pairs_after: int
    milps: int
    trims_skipped: int
    binaries: int
    binaries_without_speedup: int
    rows: int
    price_shift_max: float
    price_shift_mean: float
    seconds_tables: float
    seconds_milp: float
    seconds_certify: float
    lipschitz: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------- geometry


def own_boxes(low: np.ndarray, high: np.ndarray, grid: int) -> np.ndarray:
    """Corners (cells, 2^m, m) of the own-bid box of each cell (row-major cell order);
    the first cell along each coordinate reaches down to 0."""
    m = len(low)
    width = (high - low) / grid
    boxes = []
    for digits in itertools.product(range(grid), repeat=m):
        d = np.asarray(digits)
        lower = np.where(d == 0, np.minimum(low, 0.0), low + d * width)
        upper = low + (d + 1) * width
        boxes.append(
            [
                np.where(np.asarray(bits) == 1, upper, lower)
                for bits in itertools.product((0, 1), repeat=m)
            ]
        )
    return np.asarray(boxes)


def margins(alloc: np.ndarray, price: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """``min over corners of (u_l - u_k)`` for menus (M, K+1, m)/(M, K+1) over boxes
    (E, 2^m, m): array (M, E, K+1 [k], K+1 [l])."""
    util = np.einsum("ecj,mkj->meck", corners, alloc) - price[:, None, None, :]
    return (util[:, :, :, None, :] - util[:, :, :, :, None]).min(axis=2)


def candidates(
    alloc: np.ndarray, price: np.ndarray, corners: np.ndarray, eps: float = CERTIFY_EPS
) -> np.ndarray:
    """Undominated entries (M, E, K+1) of each menu on each box (see the module doc)."""
    return np.asarray(~(margins(alloc, price, corners) >= eps).any(axis=-1))


def incompatible(a_i: np.ndarray, a_j: np.ndarray) -> np.ndarray:
    """Pairs of entries over-allocating some item: a_i (K+1, m) with each menu of a_j
    (E, K+1, m) -> (E, K+1 [k_i], K+1 [k_j])."""
    return (a_i[None, :, None, :] + a_j[:, None, :, :] > 1 + SUPPLY_TOL).any(axis=-1)


# ---------------------------------------------------------------------- tables


def menu_tables(network: GemNetMechanism, snap: float) -> tuple[np.ndarray, np.ndarray]:
    """The network's menus at every opponent cell centre of its grid (float64),
    allocations within ``snap`` of 0 or 1 rounded: (n, cells, K+1, m) and (n, cells, K+1)."""
    plain = network.network().double()
    centres = plain.cell_centres()
    n = network.setting.num_bidders
    with torch.no_grad():
        features = centres[:, None, :].expand(len(centres), n, centres.shape[1])
        menu_alloc, menu_price = plain.network_menus(features.contiguous())
    alloc = menu_alloc.transpose(0, 1).numpy().copy()
    price = menu_price.transpose(0, 1).numpy().copy()
    alloc[alloc < snap] = 0.0
    alloc[alloc > 1 - snap] = 1.0
    return alloc, price


# ---------------------------------------------------------------------- certificate


def violations(
    alloc: np.ndarray, price: np.ndarray, corners: np.ndarray, i: int, c: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For bidder i's menu on opponent cell c, over bidder i's own cells e:
    ``(bad, disallowed, own_margins)`` -- ``bad`` (E,) whether some candidate of i is
    incompatible with some candidate of j; ``disallowed`` (E, K+1) the entries of i
    incompatible with a candidate of j; ``own_margins`` (E, K+1, K+1) from :func:`margins`."""
    j = 1 - i
    own = margins(alloc[i, c : c + 1], price[i, c : c + 1], corners)[0]
    cand_i = ~(own >= CERTIFY_EPS).any(axis=-1)  # (E, K+1)
    cand_j = candidates(alloc[j], price[j], corners[c : c + 1])[:, 0]  # (E, K+1)
    clash = incompatible(alloc[i, c], alloc[j])  # (E, K+1, K+1)
    disallowed = (clash & cand_j[:, None, :]).any(axis=-1)
    return (cand_i & disallowed).any(axis=-1), disallowed, own


def used_entries(
    alloc: np.ndarray,
    price: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    grid: int,
    chunk: int = 64,
) -> np.ndarray:
    """Indices of the entries (null first) some bidder chooses at some point of a grid of
    ``2 grid + 1`` own values per coordinate, in some menu.  The others leave the menu;
    removing an entry never breaks DSIC, IR or the certificate (which is computed
    without it), it only forgoes the rare bids that would have chosen it."""
    axes = [np.linspace(min(lo, 0.0), hi, 2 * grid + 1) for lo, hi in zip(low, high)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(low))
    used = np.zeros(price.shape[-1], dtype=bool)
    used[0] = True
    for i in range(price.shape[0]):
        for s in range(0, price.shape[1], chunk):
            util = (
                np.einsum("pj,ckj->cpk", points, alloc[i, s : s + chunk])
                - price[i, s : s + chunk, None, :]
            )
            used[np.unique(util.argmax(axis=-1))] = True
    return np.nonzero(used)[0]


def certify(alloc: np.ndarray, price: np.ndarray, corners: np.ndarray) -> int:
    """Number of cell pairs (of ``cells^2``) where the candidates may over-allocate."""
    return int(sum(violations(alloc, price, corners, 0, c)[0].sum() for c in range(alloc.shape[1])))


# ---------------------------------------------------------------------- the MILP


def _shift_menu(
    own: np.ndarray,
    keep: np.ndarray,
    forced: np.ndarray,
    disallowed: np.ndarray,
    choices: np.ndarray,
    bound: float,
) -> tuple[np.ndarray | None, int, int]:
    """Solve one menu's MILP (see the module doc); returns the price shifts (K+1,) (null
    first, always 0), the number of binaries and of rows.

    ``own`` (E, K+1, K+1) margins on the own cells; ``keep`` (E,) cells whose structure is
    kept; ``forced`` (E,) cells that must become compatible, by one of the entries
    ``choices`` (E, K+1) dominating every ``disallowed`` (E, K+1) one.  Variables: shifts
    ``d_1..d_K``, then ``up_k >= d_k`` and ``down_k >= -d_k`` (both >= 0), then binaries;
    the cost is ``sum_k up_k + DOWN_COST * down_k``.
    """
    k = own.shape[1] - 1
    rows: list[tuple[dict[int, float], float, float]] = []  # (coefs, lower, upper)

    def dominate(by: int, kk: int, lower: float, extra: dict[int, float] | None = None) -> None:
        """Row ``d_kk - d_by (+ extra) >= lower`` (the null entry has no shift)."""
        coefs = {kk - 1: 1.0, **(extra or {})}
        if by:
            coefs[by - 1] = -1.0
        rows.append((coefs, lower, np.inf))

    # kept cells: each disallowed entry stays dominated by its current best dominator,
    # one row per (dominator, entry) pair at its tightest cell; rows the bounds imply go
    tight: dict[tuple[int, int], float] = {}
    for e in np.nonzero(keep)[0]:
        for kept in np.nonzero(disallowed[e])[0]:
            best = int(np.argmax(own[e, kept]))
            gap = float(own[e, kept, best])
            if gap < 2 * bound + MILP_EPS and gap < tight.get((best, int(kept)), np.inf):
                tight[(best, int(kept))] = gap
    for (best, entry), gap in tight.items():  # keep the margin, up to MILP_EPS
        dominate(best, entry, min(MILP_EPS, gap) - gap)
    # forced cells: exactly one of ``choices`` dominates every disallowed entry (big M)
    cells = np.nonzero(forced)[0]
    big = 2 * bound + float(np.abs(own[cells]).max(initial=0.0)) + 1.0
    binaries = 0
    for e in cells:
        allowed = np.nonzero(choices[e])[0]
        first = 3 * k + binaries
        binaries += len(allowed)
        rows.append(({first + a: 1.0 for a in range(len(allowed))}, 1.0, 1.0))
        for kk in np.nonzero(disallowed[e])[0]:
            for a, dominator in enumerate(allowed):
                dominate(
                    int(dominator),
                    int(kk),
                    MILP_EPS - float(own[e, kk, dominator]) - big,
                    {first + a: -big},
                )
    for q in range(k):  # up >= d, down >= -d
        rows.append(({k + q: 1.0, q: -1.0}, 0.0, np.inf))
        rows.append(({2 * k + q: 1.0, q: 1.0}, 0.0, np.inf))
    r_idx = [r for r, (coefs, _, _) in enumerate(rows) for _ in coefs]
    c_idx = [col for coefs, _, _ in rows for col in coefs]
    v_idx = [val for coefs, _, _ in rows for val in coefs.values()]
    n_var = 3 * k + binaries
    matrix = scipy.sparse.csr_array((v_idx, (r_idx, c_idx)), shape=(len(rows), n_var))
    cost = np.r_[np.zeros(k), np.ones(k), np.full(k, DOWN_COST), np.zeros(binaries)]
    integrality = np.r_[np.zeros(3 * k), np.ones(binaries)]
    bounds = scipy.optimize.Bounds(
        np.r_[np.full(k, -bound), np.zeros(2 * k + binaries)],
        np.r_[np.full(3 * k, 2 * bound), np.ones(binaries)],
    )
    constraint = scipy.optimize.LinearConstraint(matrix, [r[1] for r in rows], [r[2] for r in rows])
    result = scipy.optimize.milp(
        cost,
        constraints=constraint,
        integrality=integrality,
        bounds=bounds,
        options={"mip_rel_gap": 1e-4},
    )
    if result.x is None:
        return None, binaries, len(rows)
    return np.r_[0.0, result.x[:k]], binaries, len(rows)


def adjust_bidder(
    alloc: np.ndarray,
    price: np.ndarray,
    corners: np.ndarray,
    i: int,
    trim: bool,
    stats: dict[str, int],
) -> int:
    """Adjust bidder i's prices (in place) on every opponent cell that violates; returns
    how many cell pairs still violate (a pair violates from either bidder's side alike).

    ``trim``: only cells where some current candidate of i is compatible are fixed, by
    keeping one of those candidates (shifting i's own decision boundary out of the cell,
    usually a small price change); cells where every candidate of i clashes are left to
    the other bidder's pass.  Otherwise every violating cell is fixed, by any compatible
    entry (the null entry always is)."""
    cells, k1 = price.shape[1], price.shape[2]
    bound = (
        float(
            max(
                0.0,
                (
                    corners.max(axis=1) @ alloc[i].reshape(-1, alloc.shape[-1]).T
                    - price[i].reshape(-1)
                ).max(),
            )
        )
        + 1.0
    )
    remaining = 0
    for c in range(cells):
        bad, disallowed, own = violations(alloc, price, corners, i, c)
        cand = ~(own >= CERTIFY_EPS).any(axis=-1)
        choices = ~disallowed & cand if trim else ~disallowed
        forced = bad & choices.any(axis=-1)
        if not forced.any():
            remaining += int(bad.sum())
            continue
        shift, binaries, rows = _shift_menu(own, ~bad, forced, disallowed, choices, bound)
        if shift is None:
            if trim:  # keeping i's own candidates can clash: leave it to later passes
                stats["trims_skipped"] += 1
                remaining += int(bad.sum())
                continue
            raise AutomechError(
                f"price adjustment MILP of bidder {i}, opponent cell {c} "
                "is infeasible (raising every price is feasible in exact "
                "arithmetic: a numerical failure)"
            )
        price[i, c] += shift
        stats["milps"] += 1
        stats["binaries"] += binaries
        stats["binaries_without_speedup"] += cells * k1
        stats["rows"] += rows
        remaining += int(violations(alloc, price, corners, i, c)[0].sum())
    return remaining


def lipschitz_bound(mech: GemNetMechanism) -> dict[str, Any]:
    """Upper bounds on the Lipschitz constants (l2 in the other bids, per unit of value) of
    each bidder's menu prices and allocations: products of the layers' spectral norms
    (ReLU and sigmoid are 1- and 1/4-Lipschitz), with the input scaling."""
    low, high = (cast(torch.Tensor, t) for t in (mech.low, mech.high))
    scale = float((1 / (high - low)).max())
    k, w = mech.menu_size, mech.width
    out: dict[str, list[float]] = {"price": [], "allocation": []}
    with torch.no_grad():
        for i in range(mech.setting.num_bidders):
            body = scale
            for weight in mech.weights[:-1]:
                body *= float(torch.linalg.matrix_norm(weight[i].double(), ord=2))
            last = mech.weights[-1][i].double()
            allocation = body * 0.25 * float(torch.linalg.matrix_norm(last[:, : k * w], ord=2))
            surplus = body * mech.top * float(torch.linalg.matrix_norm(last[:, k * w :], ord=2))
            # the price's floor term low_i . x moves with the allocation
            out["price"].append(surplus + float(low[i].double().norm()) * allocation)
            out["allocation"].append(allocation)
    return out


def make_compatible(
    alloc: np.ndarray, price: np.ndarray, low: np.ndarray, high: np.ndarray, grid: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Certified menu tables from menu tables (n, cells, K+1, m) / (n, cells, K+1) on
    ``grid`` cells per coordinate of the common support box ``[low, high]``: unused
    entries leave the menus, the MILP passes fix every violating cell pair, and the
    certificate is checked.  Returns the new tables (inputs untouched) and the counts
    and timings of :class:`AdjustmentReport` that do not depend on a network."""
    corners = own_boxes(low.astype(np.float64), high.astype(np.float64), grid)
    full_alloc, full_price = alloc.copy(), price.copy()
    active = used_entries(alloc, price, low, high, grid)
    alloc, price = alloc[:, :, active].copy(), price[:, :, active].copy()

    started = time.perf_counter()
    before = certify(alloc, price, corners)
    base = price.copy()
    stats = {
        "milps": 0,
        "binaries": 0,
        "binaries_without_speedup": 0,
        "rows": 0,
        "trims_skipped": 0,
    }
    remaining = before
    for i, trim in PASSES:
        if remaining == 0:
            break
        remaining = adjust_bidder(alloc, price, corners, i, trim, stats)
    milp_s = time.perf_counter() - started
    started = time.perf_counter()
    after = certify(alloc, price, corners)
    certify_s = time.perf_counter() - started
    if after:
        raise AutomechError(
            f"price adjustment left {after} of {price.shape[1] ** 2} cell pairs uncertified"
        )
    shift = price - base
    # entries no bid can choose leave the menu: zero allocation, a price above any value
    removed = np.ones(full_price.shape[-1], dtype=bool)
    removed[active] = False
    full_alloc[:, :, removed] = 0.0
    full_price[:, :, removed] = out_of_reach(high)
    full_price[:, :, active] = price
    report = dict(
        grid=grid,
        entries_used=int(active.size - 1),
        cells_per_bidder=price.shape[1],
        cell_pairs=price.shape[1] ** 2,
        violating_pairs_before=before,
        violating_pairs_after=after,
        **stats,
        price_shift_max=float(np.abs(shift).max()),
        price_shift_mean=float(np.abs(shift).mean()),
        seconds_milp=milp_s,
        seconds_certify=certify_s,
    )
    return full_alloc, full_price, report


def adjust(
    mech: GemNetMechanism, grid: int = 0, snap: float = 0.01
) -> tuple[GemNetMechanism, AdjustmentReport]:
    """The adjusted, certified mechanism built from the trained network ``mech``."""
    setting = mech.setting
    problem = adjustable(setting)
    if problem:
        raise AutomechError(problem)
    if mech.grid and grid and grid != mech.grid:
        raise AutomechError(
            f"the network was trained on a grid of {mech.grid} cells per "
            f"coordinate; it cannot be adjusted on {grid}"
        )
    network = mech.network(mech.grid or grid or auto_grid(setting))
    started = time.perf_counter()
    alloc, price = menu_tables(network, snap)
    tables_s = time.perf_counter() - started
    low, high = setting.prior.support()
    alloc, price, stats = make_compatible(alloc, price, low[0], high[0], network.grid)
    report = AdjustmentReport(
        **stats, menu_size=mech.menu_size, seconds_tables=tables_s, lipschitz=lipschitz_bound(mech)
    )
    return network.with_tables(alloc, price, snap), report


def affine_maximizer_tables(ama, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """An affine maximizer's menus (``AffineMaximizer.menus``) at the opponent cell
    centres of a ``grid`` (two bidders), as GemNet menu tables: entry d + 1 of bidder i
    is its d-th distinct non-null share among the AMA's allocations, at the cheapest AMA
    price of an allocation giving that share; the null entry is free.  Returns
    (n, cells, K+1, m) and (n, cells, K+1) in float64 (K the largest number of shares),
    e.g. to measure what constant-per-cell menus and the adjustment cost an AMA
    (``bench/gemnet_grid.py``)."""
    setting = ama.setting
    n, m = setting.shape
    ama64 = copy.deepcopy(ama).double()
    alloc = ama64.table()[0].detach().round(decimals=6)
    shares = [sorted({tuple(row) for row in alloc[:, i].tolist() if any(row)}) for i in range(n)]
    k = max(len(s) for s in shares)
    plain = GemNetMechanism(setting, menu_size=k, hidden=(1,), grid=grid)
    low, high = (torch.as_tensor(a, dtype=torch.float64) for a in setting.prior.support())
    centres = plain.cell_centres()
    cells = len(centres)
    table_alloc = np.zeros((n, cells, k + 1, m))
    table_price = np.full((n, cells, k + 1), out_of_reach(high.max(dim=0).values.numpy()))
    table_price[:, :, 0] = 0.0
    for i in range(n):
        bids = torch.zeros(cells, n, m, dtype=torch.float64)
        bids[:, 1 - i] = low[1 - i] + centres * (high[1 - i] - low[1 - i])
        with torch.no_grad():
            _, prices = ama64.menus(bids)  # (cells, n, K'+1)
        rows = torch.tensor(shares[i], dtype=torch.float64)  # (K_i, m)
        members = (alloc[None, :, i] == rows[:, None]).all(dim=-1)  # (K_i, K'+1)
        table_alloc[i, :, 1 : len(rows) + 1] = rows.numpy()
        table_price[i, :, 1 : len(rows) + 1] = cheapest_share_prices(prices[:, i], members).numpy()
    return table_alloc, table_price


def cheapest_share_prices(prices: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """One bidder's AMA menu prices (B, K') reduced to its shares: the cheapest price of
    an allocation giving each share, for membership masks ``members`` (K, K') of the
    allocations in each share: (B, K), ``inf`` for a share no allocation gives."""
    return torch.where(members[None], prices[:, None, :], torch.inf).amin(-1)


def out_of_reach(high: np.ndarray) -> float:
    """A price no bid in the support box with upper corner ``high`` (m,) would pay: the
    price of an entry that has left the menu."""
    return REMOVED_PRICE * (1.0 + float(np.sum(high)))

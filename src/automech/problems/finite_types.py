"""Finite type spaces for linear programming: per-bidder type lists and joint probabilities.

Bidder i's types are the rows of ``types[i]`` (k_i, m).  Profiles are the product
T_1 x ... x T_n, indexed in C order (bidder 0 slowest), and ``joint`` (k_1, ..., k_n)
holds P(t); profiles a listed prior does not list get P(t) = 0.  Types of marginal
probability 0 are dropped.

Where the types come from (:func:`finite_types`):

* discrete priors as they are: listed ``profiles`` give each bidder the distinct rows it
  takes and the joint table from the list; independent ``types`` give the product of the
  per-bidder probabilities.  Probabilities are checked (finite, >= 0, summing to 1) and a
  :class:`SettingError` names the field otherwise.
* independent value laws: a discrete law contributes its atoms with their masses
  ``F(a_r) - F(a_{r-1})``; a continuous law is cut into ``grid`` cells of equal width
  on its support box [low, high], each represented by its midpoint (``points="mid"``)
  or its lower end (``points="low"``) and weighted by ``F(right) - F(left)`` (the top
  cell also takes the mass above ``high`` of an unbounded law).  Bidder i's types are
  the product of its items' points, with product weights.  Midpoints approximate the
  prior better; lower ends undervalue every cell, so that the LP optimum on the grid is
  closer to what the rounded-down mechanism earns on the continuum.
* any other continuous prior (e.g. ``correlated``): the same grid of points, with
  profile-cell probabilities estimated by a histogram of :data:`HISTOGRAM_SAMPLES`
  draws with the fixed seed :data:`HISTOGRAM_SEED` (cells never hit get probability 0).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from automech.errors import AutomechError, SettingError
from automech.problems.laws import Law1D
from automech.problems.priors import (
    DiscretePrior,
    IndependentDiscretePrior,
    IndependentPrior,
    Prior,
)

POINTS = ("mid", "low")
HISTOGRAM_SAMPLES = 2**22
HISTOGRAM_SEED = 31_415
#: Largest histogram (cells over all bidders' grids) estimated for a non-independent prior.
MAX_HISTOGRAM_CELLS = 2**24
PROBABILITY_TOLERANCE = 1e-6


@dataclass
class FiniteTypes:
    """Per-bidder type lists ``types[i]`` (k_i, m) and the joint table ``joint`` (k_1..k_n)."""

    types: list[np.ndarray]
    joint: np.ndarray

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(t) for t in self.types)

    @property
    def num_profiles(self) -> int:
        return int(np.prod(self.sizes))

    def marginal(self, bidder: int) -> np.ndarray:
        axes = tuple(a for a in range(self.joint.ndim) if a != bidder)
        return self.joint.sum(axis=axes)

    def profile_indices(self) -> np.ndarray:
        """Type index of every bidder at every profile, (T, n)."""
        return np.stack(np.unravel_index(np.arange(self.num_profiles), self.sizes), axis=1)

    def profile_values(self) -> np.ndarray:
        """Every bidder's values at every profile, (T, n, m)."""
        index = self.profile_indices()
        return np.stack([t[index[:, i]] for i, t in enumerate(self.types)], axis=1)

    def strides(self) -> np.ndarray:
        """Profile-index step of one type step of each bidder, (n,)."""
        return np.array([int(np.prod(self.sizes[i + 1 :])) for i in range(len(self.types))])


def finite_types(prior: Prior, grid: int, points: str = "mid") -> FiniteTypes:
    """The finite type space of ``prior``; ``grid`` points per dimension for continuous laws,
    each cell's midpoint or lower end (``points``)."""
    if isinstance(prior, DiscretePrior):
        _no_grid(grid, prior)
        return _listed(prior)
    if isinstance(prior, IndependentDiscretePrior):
        _no_grid(grid, prior)
        probs = [
            _checked(p, len(t), f"prior.type_probabilities[{i}]")
            for i, (t, p) in enumerate(zip(prior.types, prior.probabilities))
        ]
        types = [_checked_values(t, f"prior.types[{i}]") for i, t in enumerate(prior.types)]
        return _product(types, probs)
    if prior.independent:
        return _independent_laws(prior, grid, points)
    if grid <= 0:
        raise _grid_needed(prior)
    return _histogram(prior, grid, points)


def _no_grid(grid: int, prior: Prior) -> None:
    if grid > 0:
        raise AutomechError(
            f"option 'grid' discretises continuous priors; the prior "
            f"{prior.describe()} is already finite (leave grid=0)"
        )


def _grid_needed(prior: Prior) -> AutomechError:
    return AutomechError(
        f"the prior {prior.describe()} is continuous: method 'lp' needs "
        "option 'grid' > 0 points per dimension (e.g. --set grid=10)"
    )


def _checked(p: np.ndarray, count: int, field: str) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.shape != (count,):
        raise SettingError(field, f"must list {count} probabilities, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise SettingError(field, "probabilities must be finite and >= 0")
    if abs(p.sum() - 1.0) > PROBABILITY_TOLERANCE:
        raise SettingError(field, f"probabilities must sum to 1, they sum to {p.sum():.6g}")
    return p / p.sum()


def _checked_values(v: np.ndarray, field: str) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise SettingError(field, "values must be finite and >= 0")
    return v


def _listed(prior: DiscretePrior) -> FiniteTypes:
    profiles = _checked_values(prior.profiles, "prior.profiles")
    probs = _checked(prior.probabilities, len(profiles), "prior.probabilities")
    types, index = [], []
    for i in range(prior.num_bidders):
        t, inverse = np.unique(profiles[:, i, :], axis=0, return_inverse=True)
        types.append(t)
        index.append(inverse.reshape(-1))
    joint = np.zeros([len(t) for t in types])
    np.add.at(joint, tuple(index), probs)
    return _drop_null_types(types, joint)


def _product(types: list[np.ndarray], probs: list[np.ndarray]) -> FiniteTypes:
    joint = np.ones(())
    for p in probs:
        joint = np.multiply.outer(joint, p)
    return _drop_null_types(list(types), joint)


def _cell_points(low: float, high: float, grid: int, points: str) -> np.ndarray:
    """The representative point of each of ``grid`` equal cells of [low, high]."""
    offset = 0.5 if points == "mid" else 0.0
    return low + (high - low) * (np.arange(grid) + offset) / grid


def _law_points(law, grid: int, points: str, prior: Prior) -> tuple[np.ndarray, np.ndarray]:
    """Points and masses of one value law: its atoms, or ``grid`` cell points."""
    if law.discrete:
        atoms = np.sort(law.atoms())
        return atoms, np.diff(np.concatenate([[0.0], law.cdf(atoms)]))
    if grid <= 0:
        raise _grid_needed(prior)
    low, high = law.bounds()
    edges = np.linspace(low, high, grid + 1)
    cdf = np.concatenate([[0.0], law.cdf(edges[1:-1]), [1.0]])
    return _cell_points(low, high, grid, points), np.diff(cdf)


def _independent_laws(prior: Prior, grid: int, points: str) -> FiniteTypes:
    laws: list[list[Law1D]] = []
    for i in range(prior.num_bidders):
        row = []
        for j in range(prior.num_items):
            law = prior.marginal(i, j)
            assert law is not None  # the prior is independent
            row.append(law)
        laws.append(row)
    if grid > 0 and all(law.discrete for row in laws for law in row):
        _no_grid(grid, prior)
    types, probs = [], []
    for row in laws:
        axes, masses = zip(*(_law_points(law, grid, points, prior) for law in row))
        types.append(np.array(list(itertools.product(*axes)), dtype=float))
        probs.append(np.array([np.prod(w) for w in itertools.product(*masses)]))
    return _product(types, probs)


def _histogram(prior: Prior, grid: int, points: str) -> FiniteTypes:
    """Profile-cell probabilities of a non-independent prior, estimated from draws."""
    n, m = prior.num_bidders, prior.num_items
    cells = grid ** (n * m)
    if cells > MAX_HISTOGRAM_CELLS:
        raise AutomechError(
            f"grid={grid} gives {cells:,} profile cells for the prior "
            f"{prior.describe()}; at most {MAX_HISTOGRAM_CELLS:,} are estimated"
        )
    low, high = prior.support()
    draws = prior.sample(HISTOGRAM_SAMPLES, np.random.default_rng(HISTOGRAM_SEED))
    cell = np.clip(np.floor((draws - low) / (high - low) * grid), 0, grid - 1).astype(np.int64)
    flat = np.ravel_multi_index(tuple(cell.reshape(len(draws), -1).T), (grid,) * (n * m))
    joint = np.bincount(flat, minlength=cells).reshape((grid**m,) * n) / len(draws)
    types = []
    for i in range(n):
        axes = [_cell_points(low[i, j], high[i, j], grid, points) for j in range(m)]
        types.append(np.array(list(itertools.product(*axes)), dtype=float))
    return _drop_null_types(types, joint)


def _drop_null_types(types: list[np.ndarray], joint: np.ndarray) -> FiniteTypes:
    """Remove every bidder's types of marginal probability 0."""
    out = FiniteTypes(types, joint)
    for i in range(len(types)):
        keep = np.flatnonzero(out.marginal(i) > 0)
        out = FiniteTypes(
            [*out.types[:i], out.types[i][keep], *out.types[i + 1 :]],
            np.take(out.joint, keep, axis=i),
        )
    return out


def support_size(prior: Prior) -> int | None:
    """How many profiles a finite prior has (listed profiles, per-bidder type lists, or
    independent laws with atoms such as Bernoulli), counted without building them; None
    for a prior with a continuous part."""
    if isinstance(prior, DiscretePrior):
        return len(prior.profiles)
    if isinstance(prior, IndependentDiscretePrior):
        return int(np.prod([len(t) for t in prior.types], dtype=np.float64))
    if isinstance(prior, IndependentPrior):
        counts = [law.atoms() for row in prior.laws for law in row]
        if any(a is None for a in counts):
            return None
        return int(np.prod([len(a) for a in counts if a is not None], dtype=np.float64))
    return None


def enumerate_support(prior: Prior, limit: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Every profile of a finite prior with positive probability, (T, n, m), and its
    probability (T,), in a fixed order; None when the prior is not finite or has more
    than ``limit`` profiles (then an evaluation samples instead)."""
    size = support_size(prior)
    if size is None or size > limit:
        return None
    if isinstance(prior, DiscretePrior):
        probs = _checked(prior.probabilities, len(prior.profiles), "prior.probabilities")
        keep = probs > 0
        return np.asarray(prior.profiles, dtype=float)[keep], probs[keep]
    space = finite_types(prior, 0)
    probs = space.joint.reshape(-1)
    keep = probs > 0
    return space.profile_values()[keep], probs[keep]

"""Priors over valuation profiles: arrays of shape (n bidders, m items).

A prior draws profiles reproducibly from a ``numpy.random.Generator`` and knows its
support (the box every misreport search stays inside, plus the finite type sets of
discrete priors).  It knows nothing about mechanisms.

Kinds (the ``kind`` key of a setting file's ``[prior]`` table):

* any law of :data:`automech.problems.laws.LAWS` (``uniform``, ``exponential``,
  ``bernoulli``...): values independent across bidders and items, each parameter a
  scalar, a per-item list of length m or a per-bidder-and-item n x m nested list;
* ``discrete``: listed ``profiles`` (each n x m) with ``probabilities``, or independent
  per-bidder ``types`` lists with ``type_probabilities``;
* ``correlated``: the correlated prior of the TEDI paper, Section 4.1;
* ``spherical``: the discrete "spherical" prior of the lottery-AMA paper, Section 6.2;
* ``data``: observed profiles in a CSV or Parquet file, split into training and held-out
  profiles (:mod:`automech.problems.data`).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from automech.errors import SettingError
from automech.problems.laws import LAWS, Law1D

#: Largest type set enumerated for a product of discrete laws (misreport search).
MAX_ENUMERATED_TYPES = 4096


class Prior(ABC):
    """A distribution over valuation profiles of shape (n, m)."""

    kind: ClassVar[str]

    def __init__(self, num_bidders: int, num_items: int) -> None:
        self.num_bidders = num_bidders
        self.num_items = num_items

    @abstractmethod
    def sample(self, num: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``num`` profiles, shape (num, n, m), float64."""

    @abstractmethod
    def support(self) -> tuple[np.ndarray, np.ndarray]:
        """Box ``(low, high)``, each (n, m), holding the prior's values (misreports are
        searched inside it).  Unbounded laws are cut at their 0.9999 quantile."""

    def test_profiles(self, num: int, seed: int) -> np.ndarray:
        """The profiles evaluation scores on: ``num`` fresh draws with ``seed`` (a data
        prior returns its held-out profiles instead)."""
        return self.sample(num, np.random.default_rng(seed))

    def atoms(self, bidder: int) -> np.ndarray | None:
        """Bidder ``bidder``'s finite set of types (k, m), or None for a continuum."""
        return None

    def marginal(self, bidder: int, item: int) -> Law1D | None:
        """The law of v[bidder, item] when all values are independent, else None."""
        return None

    @property
    def independent(self) -> bool:
        """True when every (bidder, item) value is drawn independently from a 1-D law."""
        return self.marginal(0, 0) is not None

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The ``[prior]`` table that rebuilds this prior."""

    def describe(self) -> str:
        d = self.to_dict()
        args = ", ".join(f"{k}={_short(v)}" for k, v in d.items() if k != "kind")
        return f"{d['kind']}({args})"


def _short(v: Any) -> str:
    arr = np.asarray(v, dtype=object)
    if arr.size > 6:
        return f"<{'x'.join(map(str, np.shape(v)))}>"
    return str(v)


class IndependentPrior(Prior):
    """Values v[i, j] independent, each from its own 1-D law ``laws[i][j]``."""

    kind = "independent"

    def __init__(self, laws: list[list[Law1D]]) -> None:
        super().__init__(len(laws), len(laws[0]))
        self.laws = [list(row) for row in laws]

    @classmethod
    def uniform(cls, num_bidders: int, num_items: int, low: Any = 0.0, high: Any = 1.0):
        """U[low, high] with bounds as scalars, per item or per bidder and item."""
        return cls.from_law("uniform", num_bidders, num_items, {"low": low, "high": high})

    @classmethod
    def from_law(
        cls,
        name: str,
        num_bidders: int,
        num_items: int,
        params: dict[str, Any],
        source: str | None = None,
    ) -> IndependentPrior:
        spec = LAWS[name]
        missing = [p for p in spec.params if p not in params and p not in spec.defaults]
        if missing:
            raise SettingError(f"prior.{missing[0]}", f"required by kind '{name}'", source)
        grids = {
            k: _broadcast(v, num_bidders, num_items, f"prior.{k}", source)
            for k, v in params.items()
        }
        laws = []
        for i in range(num_bidders):
            row = []
            for j in range(num_items):
                cell = {k: float(g[i, j]) for k, g in grids.items()}
                full = {**spec.defaults, **cell}
                problem = spec.check(**{k: full[k] for k in spec.params})
                if problem:
                    param, message = problem
                    raise SettingError(
                        f"prior.{param}", f"{message} (bidder {i}, item {j})", source
                    )
                row.append(Law1D(name, cell))
            laws.append(row)
        return cls(laws)

    def _groups(self):
        groups: dict[tuple, list[tuple[int, int]]] = {}
        for i, row in enumerate(self.laws):
            for j, law in enumerate(row):
                groups.setdefault((law.name, tuple(law.params.items())), []).append((i, j))
        return groups

    def sample(self, num: int, rng: np.random.Generator) -> np.ndarray:
        u = rng.random((num, self.num_bidders, self.num_items))
        out = np.empty_like(u)
        for (name, items), cells in self._groups().items():
            idx = tuple(np.array(cells).T)
            law = self.laws[cells[0][0]][cells[0][1]]
            if name == "uniform":
                p = dict(items)
                out[:, idx[0], idx[1]] = p["low"] + (p["high"] - p["low"]) * u[:, idx[0], idx[1]]
            else:
                out[:, idx[0], idx[1]] = law.ppf(u[:, idx[0], idx[1]])
        return out

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        b = np.array([[law.bounds() for law in row] for row in self.laws])
        return b[..., 0], b[..., 1]

    def atoms(self, bidder: int) -> np.ndarray | None:
        per_item: list[np.ndarray] = []
        for law in self.laws[bidder]:
            a = law.atoms()
            if a is None:
                return None
            per_item.append(a)
        if np.prod([len(a) for a in per_item]) > MAX_ENUMERATED_TYPES:
            return None
        return np.array(list(itertools.product(*per_item)), dtype=float)

    def marginal(self, bidder: int, item: int) -> Law1D:
        return self.laws[bidder][item]

    def to_dict(self) -> dict[str, Any]:
        names = {law.name for row in self.laws for law in row}
        if len(names) != 1:
            raise NotImplementedError("priors mixing several laws have no file form yet")
        name = names.pop()
        out: dict[str, Any] = {"kind": name}
        for p in LAWS[name].params:
            grid = np.array([[law.params[p] for law in row] for row in self.laws])
            out[p] = _compact(grid)
        return out


def _broadcast(value: Any, n: int, m: int, field: str, source: str | None) -> np.ndarray:
    """Scalar, per-item (m,) or per-bidder-and-item (n, m) parameter -> (n, m) array."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise SettingError(
            field, f"must be a number or nested list of numbers, got {value!r}", source
        ) from None
    if not np.all(np.isfinite(arr)):
        raise SettingError(field, "must be finite", source)
    if arr.ndim == 0:
        return np.full((n, m), float(arr))
    if arr.shape == (m,):
        return np.broadcast_to(arr, (n, m)).copy()
    if arr.shape == (n, m):
        return arr
    raise SettingError(
        field,
        f"must be a scalar, a list of {m} (one per item) or {n} lists of {m} "
        f"(per bidder and item); got shape {arr.shape}",
        source,
    )


def _compact(grid: np.ndarray) -> Any:
    if np.all(grid == grid.flat[0]):
        return float(grid.flat[0])
    if np.all(grid == grid[0]):
        return grid[0].tolist()
    return grid.tolist()


class DiscretePrior(Prior):
    """Finitely many listed profiles ``profiles`` (K, n, m) with ``probabilities`` (K,)."""

    kind = "discrete"

    def __init__(self, profiles: np.ndarray, probabilities: np.ndarray) -> None:
        profiles = np.asarray(profiles, dtype=float)
        super().__init__(profiles.shape[1], profiles.shape[2])
        self.profiles = profiles
        self.probabilities = np.asarray(probabilities, dtype=float)

    def sample(self, num: int, rng: np.random.Generator) -> np.ndarray:
        idx = rng.choice(len(self.profiles), size=num, p=self.probabilities)
        return self.profiles[idx]

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        return self.profiles.min(axis=0), self.profiles.max(axis=0)

    def atoms(self, bidder: int) -> np.ndarray:
        return np.unique(self.profiles[:, bidder, :], axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "discrete",
            "profiles": self.profiles.tolist(),
            "probabilities": self.probabilities.tolist(),
        }


class IndependentDiscretePrior(Prior):
    """Bidders independent; bidder i's type is row k of ``types[i]`` with probability
    ``probabilities[i][k]``."""

    kind = "discrete"

    def __init__(self, types: list[np.ndarray], probabilities: list[np.ndarray]) -> None:
        types = [np.asarray(t, dtype=float) for t in types]
        super().__init__(len(types), types[0].shape[1])
        self.types = types
        self.probabilities = [np.asarray(p, dtype=float) for p in probabilities]

    def sample(self, num: int, rng: np.random.Generator) -> np.ndarray:
        out = np.empty((num, self.num_bidders, self.num_items))
        for i, (t, p) in enumerate(zip(self.types, self.probabilities)):
            out[:, i, :] = t[rng.choice(len(t), size=num, p=p)]
        return out

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.stack([t.min(axis=0) for t in self.types]),
            np.stack([t.max(axis=0) for t in self.types]),
        )

    def atoms(self, bidder: int) -> np.ndarray:
        return self.types[bidder]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "discrete",
            "types": [t.tolist() for t in self.types],
            "type_probabilities": [p.tolist() for p in self.probabilities],
        }


class SphericalPrior(IndependentDiscretePrior):
    """The "spherical" discrete prior of the lottery-AMA paper (Section 6.2).

    The paper only says the prior sits on a few random points "scaled and normalized
    according to the proof construction" of Briest, Chawla, Kleinberg and Weinberg (2010),
    whose lower bound (lotteries earn unboundedly more than item prices from one
    unit-demand buyer once there are 4 items) puts types on a sphere inside the simplex of
    lotteries, with rapidly growing radii.  This is our reconstruction of that idea:

    * lotteries over the m items that sum to one form an (m - 1)-simplex; its tangent
      space is ``{x : sum_j x_j = 0}``.  Draw ``points`` standard normal vectors ``g_k`` in
      R^m (``numpy.random.default_rng(construction_seed)``), project them on that space
      (``g_k - mean(g_k)``) and normalise: unit vectors ``n_k``, i.e. random points on the
      unit sphere of the tangent space, which are also the outward normals of a sphere
      centred in the simplex at the lotteries ``c + rho n_k``.  A type with values
      ``alpha + n_k`` prefers the lottery ``c + rho n_k`` to every other point of that
      sphere by ``rho (1 - n_k . n_l)``: each type can be offered its own lottery, which
      the other types like less, whereas item prices can only use the m vertices;
    * type k (k = 0 .. points - 1) has values ``r_k (alpha + n_k)`` with radius
      ``r_k = ratio**k`` and ``alpha = -min_{k,j} n_kj`` (the smallest shift that keeps
      every value >= 0), and probability proportional to ``1 / r_k``, so that charging
      type k its value alone earns the same for every k (the equal-revenue ladder of the
      lower bound);
    * values are finally scaled so that the largest one is ``scale``.  Every bidder
      draws i.i.d. from these points.

    The defaults (5 points, ratio 3, scale 8, construction seed 264) were picked by
    screening construction seeds 0-299 and ratios 2-4 for the gap between the optimal
    randomised and the optimal deterministic DSIC revenue (``bench/ama.py spherical``,
    ``optimum_dsic``): with 2 bidders the LP earns 0.4320 and the MILP 0.3652 (ratio
    1.18; 1 bidder: 1.18).  Five points and four items cannot give a much larger gap:
    Briest et al.'s gap grows with the number of types, and an unrestricted random search
    over 5-point priors (ad hoc, recorded in ``bench/results/ama.json`` under ``tried``)
    found no ratio above 1.3.  The lottery AMA's advantage over the deterministic AMA is
    larger than that (``bench/README.md``), because the deterministic AMA is a small
    class here (21 allocations) and falls well short of the deterministic optimum.
    """

    kind = "spherical"

    def __init__(
        self,
        num_bidders: int,
        num_items: int,
        points: int = 5,
        ratio: float = 3.0,
        scale: float = 8.0,
        construction_seed: int = 264,
    ) -> None:
        rng = np.random.default_rng(construction_seed)
        g = rng.standard_normal((points, num_items))
        normals = g - g.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = np.divide(normals, norms, out=np.zeros_like(normals), where=norms > 0)
        alpha = max(-float(normals.min()), 0.0) if num_items > 1 else 1.0
        radii = ratio ** np.arange(points, dtype=float)
        types = radii[:, None] * (alpha + normals)
        types = scale * types / types.max()
        probs = (1 / radii) / (1 / radii).sum()
        super().__init__([types] * num_bidders, [probs] * num_bidders)
        self.params = {
            "points": points,
            "ratio": ratio,
            "scale": scale,
            "construction_seed": construction_seed,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "spherical", **self.params}


class CorrelatedPrior(Prior):
    """The correlated prior of the TEDI paper (Section 4.1).

    A common value ``t_j ~ U[center_low, center_high]`` per item, then each bidder's value
    ``t_ij ~ U[t_j - spread, t_j + spread]`` independently.  Defaults give the paper's
    ``t_j ~ U[0.25, 0.75]``, ``t_ij ~ U[t_j - 0.25, t_j + 0.25]``.
    """

    kind = "correlated"

    def __init__(
        self,
        num_bidders: int,
        num_items: int,
        center_low: float = 0.25,
        center_high: float = 0.75,
        spread: float = 0.25,
    ) -> None:
        super().__init__(num_bidders, num_items)
        self.center_low, self.center_high, self.spread = center_low, center_high, spread

    def sample(self, num: int, rng: np.random.Generator) -> np.ndarray:
        n, m = self.num_bidders, self.num_items
        centers = rng.uniform(self.center_low, self.center_high, size=(num, 1, m))
        return centers + rng.uniform(-self.spread, self.spread, size=(num, n, m))

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.num_bidders, self.num_items)
        return (
            np.full(shape, self.center_low - self.spread),
            np.full(shape, self.center_high + self.spread),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "correlated",
            "center_low": self.center_low,
            "center_high": self.center_high,
            "spread": self.spread,
        }


# ---------------------------------------------------------------- parsing from a table


def prior_from_dict(
    table: dict[str, Any], num_bidders: int, num_items: int, source: str | None = None
) -> Prior:
    """Build a prior from a setting file's ``[prior]`` table, naming any bad field."""
    if not isinstance(table, dict):
        raise SettingError("prior", "must be a table with a 'kind' key", source)
    table = dict(table)
    kind = table.pop("kind", None)
    if kind is None:
        raise SettingError("prior.kind", "missing", source)
    if not isinstance(kind, str):
        raise SettingError("prior.kind", f"must be a string, got {kind!r}", source)
    if kind in LAWS:
        _reject_unknown(table, set(LAWS[kind].params), source)
        return IndependentPrior.from_law(kind, num_bidders, num_items, table, source)
    parser = _PARSERS.get(kind)
    if parser is None:
        known = sorted([*LAWS, *_PARSERS])
        raise SettingError(
            "prior.kind", f"unknown kind {kind!r}; known: {', '.join(known)}", source
        )
    return parser(table, num_bidders, num_items, source)


def _reject_unknown(table: dict, allowed: set[str], source: str | None) -> None:
    for key in table:
        if key not in allowed:
            raise SettingError(
                f"prior.{key}", f"unknown key; allowed: {', '.join(sorted(allowed))}", source
            )


def _probabilities(p: Any, count: int, field: str, source: str | None) -> np.ndarray:
    try:
        arr = np.asarray(p, dtype=float)
    except (TypeError, ValueError):
        raise SettingError(field, "must be a list of numbers", source) from None
    if arr.shape != (count,):
        raise SettingError(field, f"must list {count} probabilities, got shape {arr.shape}", source)
    if np.any(arr < 0) or not np.all(np.isfinite(arr)):
        raise SettingError(field, "probabilities must be finite and >= 0", source)
    if abs(arr.sum() - 1.0) > 1e-6:
        raise SettingError(
            field, f"probabilities must sum to 1, they sum to {arr.sum():.6g}", source
        )
    return arr / arr.sum()


def _values(
    v: Any, shape_tail: tuple[int, ...], field: str, what: str, source: str | None
) -> np.ndarray:
    try:
        arr = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        raise SettingError(
            field, f"must be a list of {what}, each a nested list of numbers", source
        ) from None
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail or len(arr) == 0:
        dims = " x ".join(map(str, shape_tail))
        raise SettingError(
            field, f"each of the {what} must be {dims}; got array of shape {arr.shape}", source
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise SettingError(field, "values must be finite and >= 0", source)
    return arr


def _parse_discrete(table: dict, n: int, m: int, source: str | None) -> Prior:
    if "profiles" in table:
        _reject_unknown(table, {"profiles", "probabilities"}, source)
        profiles = _values(table["profiles"], (n, m), "prior.profiles", "profiles", source)
        if "probabilities" not in table:
            raise SettingError("prior.probabilities", "missing", source)
        probs = _probabilities(table["probabilities"], len(profiles), "prior.probabilities", source)
        return DiscretePrior(profiles, probs)
    if "types" in table:
        _reject_unknown(table, {"types", "type_probabilities"}, source)
        types = table["types"]
        if not isinstance(types, list) or len(types) != n:
            raise SettingError(
                "prior.types", f"must hold one list of types per bidder ({n})", source
            )
        type_probs = table.get("type_probabilities")
        if not isinstance(type_probs, list) or len(type_probs) != n:
            raise SettingError(
                "prior.type_probabilities",
                f"must hold one list of probabilities per bidder ({n})",
                source,
            )
        t = [_values(ti, (m,), f"prior.types[{i}]", "types", source) for i, ti in enumerate(types)]
        p = [
            _probabilities(pi, len(ti), f"prior.type_probabilities[{i}]", source)
            for i, (pi, ti) in enumerate(zip(type_probs, t))
        ]
        return IndependentDiscretePrior(t, p)
    raise SettingError(
        "prior.profiles",
        "a discrete prior needs 'profiles' (with "
        "'probabilities') or 'types' (with 'type_probabilities')",
        source,
    )


def _check_correlated(
    center_low: float = 0.25, center_high: float = 0.75, spread: float = 0.25
) -> tuple[str, str] | None:
    if not center_high > center_low:
        return "center_high", f"must exceed center_low, got {center_low} and {center_high}"
    if spread > center_low:
        return "spread", (
            f"must be <= center_low ({center_low}) so that values stay >= 0, got {spread}"
        )
    return None


def _check_spherical(
    points: int = 5, ratio: float = 3.0, scale: float = 8.0, construction_seed: int = 264
) -> tuple[str, str] | None:
    for key, val in (("points", points), ("ratio", ratio), ("scale", scale)):
        if not val > 0:
            return key, f"must be > 0, got {val}"
    return None


def _keyword_parser(cls, keys: dict[str, type], check=None):
    def parse(table: dict, n: int, m: int, source: str | None) -> Prior:
        _reject_unknown(table, set(keys), source)
        kwargs = {}
        for k, v in table.items():
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or (keys[k] is int and not float(v).is_integer())
            ):
                raise SettingError(f"prior.{k}", f"must be {keys[k].__name__}, got {v!r}", source)
            kwargs[k] = keys[k](v)
            if kwargs[k] < 0:
                raise SettingError(f"prior.{k}", f"must be >= 0, got {v}", source)
        problem = check(**kwargs) if check else None
        if problem:
            raise SettingError(f"prior.{problem[0]}", problem[1], source)
        return cls(n, m, **kwargs)

    return parse


def _parse_data(table: dict, n: int, m: int, source: str | None) -> Prior:
    from automech.problems.data import parse_data_prior  # imports this module

    return parse_data_prior(table, n, m, source)


_PARSERS = {
    "discrete": _parse_discrete,
    "data": _parse_data,
    "correlated": _keyword_parser(
        CorrelatedPrior,
        {"center_low": float, "center_high": float, "spread": float},
        _check_correlated,
    ),
    "spherical": _keyword_parser(
        SphericalPrior,
        {"points": int, "ratio": float, "scale": float, "construction_seed": int},
        _check_spherical,
    ),
}

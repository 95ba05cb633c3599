"""One-dimensional laws of a single bidder's value for a single item.

Each law is a frozen ``scipy.stats`` distribution with a name and its parameters,
so that sampling (by inverse CDF), the CDF, the density and Myerson's virtual value

    phi(v) = v - (1 - F(v)) / f(v)

are available for every built-in law.  Laws are registered in :data:`LAWS` by name;
adding a law is one entry there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

#: Upper quantile used as the top of the support box of unbounded laws (misreport search).
UNBOUNDED_QUANTILE = 0.9999
#: Quantile that gives an unbounded law its unit (:meth:`Law1D.typical_high`).
UNIT_QUANTILE = 0.99


Problem = tuple[str, str] | None  # (parameter, message) or None when valid


@dataclass(frozen=True)
class LawSpec:
    """How to build a law from named parameters."""

    params: tuple[str, ...]
    defaults: dict[str, float]
    build: Callable[..., stats.rv_continuous | stats.rv_discrete]
    check: Callable[..., Problem]
    atoms: Callable[..., np.ndarray] | None = None


def _check_uniform(low: float, high: float) -> Problem:
    if low < 0:
        return "low", f"must be >= 0 (values are non-negative), got {low}"
    if not high > low:
        return "high", f"must exceed low, got low={low}, high={high}"
    return None


def _positive(**kw: float) -> Problem:
    for k, v in kw.items():
        if not v > 0:
            return k, f"must be > 0, got {v}"
    return None


def _check_bernoulli(p: float, value: float) -> Problem:
    if not 0.0 <= p <= 1.0:
        return "p", f"must lie in [0, 1], got {p}"
    return _positive(value=value)


def _check_truncnormal(mean: float, std: float, low: float, high: float) -> Problem:
    return _positive(std=std) or _check_uniform(low, high)


LAWS: dict[str, LawSpec] = {
    "uniform": LawSpec(
        ("low", "high"),
        {"low": 0.0, "high": 1.0},
        lambda low, high: stats.uniform(loc=low, scale=high - low),
        _check_uniform,
    ),
    "exponential": LawSpec(
        ("mean",),
        {"mean": 1.0},
        lambda mean: stats.expon(scale=mean),
        _positive,
    ),
    "beta": LawSpec(
        ("a", "b", "scale"),
        {"scale": 1.0},
        lambda a, b, scale: stats.beta(a, b, scale=scale),
        _positive,
    ),
    "gamma": LawSpec(
        ("shape", "scale"),
        {"scale": 1.0},
        lambda shape, scale: stats.gamma(shape, scale=scale),
        _positive,
    ),
    "lognormal": LawSpec(
        ("mu", "sigma"),
        {"mu": 0.0},
        lambda mu, sigma: stats.lognorm(s=sigma, scale=np.exp(mu)),
        lambda mu, sigma: _positive(sigma=sigma),
    ),
    "truncnormal": LawSpec(
        ("mean", "std", "low", "high"),
        {"low": 0.0},
        lambda mean, std, low, high: stats.truncnorm(
            (low - mean) / std, (high - mean) / std, loc=mean, scale=std
        ),
        _check_truncnormal,
    ),
    "bernoulli": LawSpec(
        ("p", "value"),
        {"value": 1.0},
        lambda p, value: stats.bernoulli(p),  # scaled by `value` in Law1D
        _check_bernoulli,
        atoms=lambda p, value: np.array([0.0, value]),
    ),
}


@dataclass(frozen=True)
class Law1D:
    """A named one-dimensional value law, e.g. ``Law1D("exponential", {"mean": 3.0})``."""

    name: str
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = LAWS[self.name]
        full = {**spec.defaults, **self.params}
        object.__setattr__(self, "params", {k: float(full[k]) for k in spec.params})

    @property
    def _spec(self) -> LawSpec:
        return LAWS[self.name]

    @property
    def _dist(self):
        return _frozen(self.name, tuple(self.params.items()))

    @property
    def discrete(self) -> bool:
        """True when the law has finitely many atoms (no density)."""
        return self._spec.atoms is not None

    @property
    def _scale(self) -> float:
        return self.params.get("value", 1.0) if self.name == "bernoulli" else 1.0

    def atoms(self) -> np.ndarray | None:
        """The atoms of a discrete law, or None for a continuous one."""
        spec = self._spec
        return None if spec.atoms is None else spec.atoms(**self.params)

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Inverse CDF, used for reproducible sampling from uniforms ``u``."""
        return self._scale * self._dist.ppf(u)

    def cdf(self, v: np.ndarray) -> np.ndarray:
        return self._dist.cdf(np.asarray(v) / self._scale)

    def pdf(self, v: np.ndarray) -> np.ndarray:
        if self.discrete:
            raise ValueError(f"law '{self.name}' is discrete and has no density")
        return self._dist.pdf(v)

    def virtual_value(self, v: np.ndarray) -> np.ndarray:
        """Myerson's virtual value ``phi(v) = v - (1 - F(v)) / f(v)``."""
        v = np.asarray(v, dtype=float)
        return v - self._dist.sf(v) / self._dist.pdf(v)

    def bounds(self) -> tuple[float, float]:
        """Support box ``[low, high]``; unbounded laws are cut at a high quantile."""
        lo, hi = self._dist.support()
        if not np.isfinite(hi):
            hi = float(self._dist.ppf(UNBOUNDED_QUANTILE))
        return float(self._scale * max(lo, 0.0)), float(self._scale * hi)

    def mean(self) -> float:
        return float(self._scale * self._dist.mean())

    def typical_high(self) -> float:
        """The upper end of the bulk of the law: its upper bound, or for an unbounded law
        its :data:`UNIT_QUANTILE` quantile (not the far tail that :meth:`bounds` keeps)."""
        if np.isfinite(self._dist.support()[1]):
            return self.bounds()[1]
        return float(self._scale * self._dist.ppf(UNIT_QUANTILE))


_FROZEN: dict[tuple, object] = {}


def _frozen(name: str, items: tuple[tuple[str, float], ...]):
    key = (name, items)
    if key not in _FROZEN:
        _FROZEN[key] = LAWS[name].build(**dict(items))
    return _FROZEN[key]

"""One invariant battery over every registered static mechanism (issue "Hardening", item 7).

Mechanisms: every classical one (:data:`automech.mechanisms.CLASSICAL`) on the settings of
:data:`CLASSICAL_SETTINGS` it applies to, and the mechanism of every static learned method
(``METHODS[name].mechanism``), once with random seeded parameters built directly from its
class and once trained for a few steps by :func:`automech.experiment.train`.

Every check is computed here from ``mech.outcome`` on a fixed set of prior profiles, not
with :mod:`automech.evaluation`:

* IR: ``v_i . x_i - p_i >= -tol`` for truthful bids;
* feasibility: allocations in [0, 1], ``sum_i x_ij <= 1`` under unit supply and
  ``sum_j x_ij <= 1`` under unit demand;
* payments ``p_i >= -tol``, except where the mechanism documents free prices;
* DSIC by brute force: every bidder of every profile tries a grid of misreports over the
  prior's support box (9 points per item for m <= 2, 200 random points and the two corners
  for larger m), the others bidding truthfully; the gain must stay below tol for the
  mechanisms that are DSIC by construction.  First price is not DSIC: there the same check
  must find a gain (so the check can fail); RegretNet / ALGNet are not checked;
* bids above the support box: a :class:`BidError` or an outcome still IR and feasible;
* ``automech.save`` then ``automech.load``: identical outcomes (exact equality);
* every gradient-trained static method, cut after its step-2 checkpoint and resumed, ends
  with the parameters of the uninterrupted run.

Tolerances: ``1e-5`` (float32 mechanisms) or ``1e-9`` (float64, ``mech.dtype``) times the
value scale, the largest bundle value ``max_i sum_j high_ij`` of the support box (for
allocations the same factors without the scale).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import automech
from automech import get_setting
from automech.errors import BidError
from automech.experiment import train
from automech.mechanisms import CLASSICAL, FirstPrice, Mechanism, PostedPrice
from automech.mechanisms.base import max_bid
from automech.mechanisms.learned.affine_maximizer import DeterministicAMA, LotteryAMA
from automech.mechanisms.learned.gemnet import GemNetMechanism
from automech.mechanisms.learned.lp_table import LPTable
from automech.mechanisms.learned.menu import MenuMechanism
from automech.mechanisms.learned.myersonnet import MyersonNetMechanism
from automech.mechanisms.learned.regretnet import ALGNetMechanism, RegretNetMechanism
from automech.mechanisms.learned.tedi import TEDIMechanism
from automech.methods import METHODS
from automech.methods.gemnet import compatibility
from automech.problems import Setting, setting_names
from automech.runs import Run

sys.path.insert(0, str(Path(__file__).parent))
from conftest import interrupt_third_step  # noqa: E402

torch.set_num_threads(1)

# ------------------------------------------------------------------ what is covered

#: Settings the classical mechanisms are checked on (each where ``applicable``): one
#: item with several bidders (symmetric, asymmetric, unbounded law), one and two bidders
#: on two items (one asymmetric), unit demand (continuous and the discrete spherical
#: prior), the correlated prior with ten items, and unlimited supply with costs
#: (uniform and Bernoulli values, one and three bidders).
CLASSICAL_SETTINGS = [
    "1x1-exponential",
    "3x1-uniform",
    "2x1-asym-uniform",
    "1x2-uniform",
    "1x2-asym-uniform",
    "2x2-uniform",
    "2x3-unit-uniform",
    "2x4-unit-spherical",
    "3x10-correlated",
    "U-3x2-cp1-cd0",
    "B-1x10-cp0-cd0",
]

#: The gradient-trained static methods (resumable runs).
GRADIENT_METHODS = [
    "rochetnet",
    "myersonnet",
    "regretnet",
    "algnet",
    "lottery-ama",
    "deterministic-ama",
    "tedi",
    "gemnet",
]

#: Shared budget of the trained runs: 4 steps, a checkpoint every 2 (the resume test cuts
#: the run in its third step).
TRAIN_COMMON = {"steps": 4, "checkpoint_every": 2, "validate_every": 2, "log_every": 1}

#: (setting, options) of every trained static method: tiny budgets (cf. ``tests/pins.py``).
TRAIN_CASES: dict[str, tuple[str, dict]] = {
    "rochetnet": ("1x2-uniform", {"batch_size": 256, "menu_size": 8, "validation_samples": 256}),
    "myersonnet": (
        "2x1-uniform",
        {"batch_size": 256, "groups": 3, "lines": 3, "validation_samples": 256},
    ),
    "regretnet": (
        "2x2-uniform",
        {
            "batch_size": 64,
            "train_profiles": 256,
            "hidden": 16,
            "misreport_steps": 2,
            "validation_samples": 256,
        },
    ),
    "algnet": (
        "2x2-uniform",
        {
            "batch_size": 64,
            "hidden": 16,
            "misreporter_hidden": 16,
            "misreporter_steps": 2,
            "refine_steps": 2,
            "validation_samples": 256,
        },
    ),
    "lottery-ama": (
        "2x2-uniform",
        {"batch_size": 256, "chunk_size": 0, "allocations": 16, "validation_samples": 256},
    ),
    "deterministic-ama": ("2x3-unit-uniform", {"batch_size": 256, "validation_samples": 256}),
    "tedi": (
        "U-3x2-cp1-cd0",
        {
            "batch_size": 64,
            "groups": [4, 4],
            "pan_hidden": 16,
            "langevin_steps": 2,
            "metropolis_steps": 2,
            "solver_steps": 50,
            "init": "separable",  # a distilled start, kept short (auto: 2000 steps)
            "init_steps": 20,
            "validation_samples": 64,
        },
    ),
    "gemnet": (
        "2x2-uniform",
        {
            "batch_size": 256,
            "menu_size": 4,
            "hidden": 16,
            "init": "random",
            "adjust": False,  # adjusted below with compatibility.adjust (no 100k audit)
            "grid": 4,
            "validation_samples": 256,
        },
    ),
}

#: Why some mechanisms may pay a bidder (documented in their modules).
FREE_PRICES = {
    "lp-table": "the LP's payments are free variables (methods/lp.py: 'payments p_i(t) (free)')",
    "gemnet": "menu prices are unconstrained (mechanisms/learned/gemnet.py)",
}

#: TEDI is DSIC given an exact inner solve; its solver (projected gradient ascent with
#: smoothing continuation, mechanisms/learned/tedi.py) is "the only loss of truthfulness".
#: The brute force allows this much of it (relative to the value scale): with the 50
#: solver steps used here, 128 prior profiles showed gains up to 2.7e-3 (U-3x2-cp1-cd0,
#: trained) and 2.2e-4 (U-1x10-cp0-cd0); with the default 300 steps, 3e-5.
TEDI_SOLVER_TOLERANCE = 5e-3

PROFILES = 64  # IR, feasibility, payment sign, bids above the box
DSIC_PROFILES = 32  # brute force: DSIC_PROFILES x n x (misreports) outcomes
PROFILE_SEED = 2024
MISREPORT_SEED = 7
RANDOM_MISREPORTS = 200

# ------------------------------------------------------------------ helpers


def value_scale(setting: Setting) -> float:
    """The largest bundle value of the support box, ``max_i sum_j high_ij``."""
    return max(float(setting.prior.support()[1].sum(axis=1).max()), 1e-12)


def relative_tolerance(mech: Mechanism) -> float:
    return 1e-5 if mech.dtype == torch.float32 else 1e-9


def utilities(values: np.ndarray, alloc: np.ndarray, pay: np.ndarray) -> np.ndarray:
    """Quasi-linear utilities ``v_i . x_i - p_i``: (B, n)."""
    return (values * alloc).sum(axis=-1) - pay


def profiles(setting: Setting, num: int = PROFILES) -> np.ndarray:
    return setting.sample(num, PROFILE_SEED)


def misreport_grid(setting: Setting) -> np.ndarray:
    """Misreports per bidder (n, G, m) over the support box: a grid of 9 points per item
    for m <= 2, else 200 uniform points plus the box's two corners."""
    low, high = setting.prior.support()
    n, m = setting.shape
    if m <= 2:
        axes = [np.linspace(0.0, 1.0, 9)] * m
        unit = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, m)
    else:
        rng = np.random.default_rng(MISREPORT_SEED)
        unit = np.concatenate(
            [np.zeros((1, m)), np.ones((1, m)), rng.random((RANDOM_MISREPORTS, m))]
        )
    return low[:, None, :] + unit[None] * (high - low)[:, None, :]


def brute_force_regret(
    mech: Mechanism, values: np.ndarray, reports: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each bidder's best gain from misreporting (P, n) over ``reports`` (n, G, m), the
    others truthful, and the index of the best misreport (P, n)."""
    num, n, m = values.shape
    truthful = utilities(values, *mech.outcome(values))
    regret = np.zeros((num, n))
    best = np.zeros((num, n), dtype=int)
    for i in range(n):
        g = reports.shape[1]
        bids = np.repeat(values[:, None], g, axis=1)  # (P, G, n, m)
        bids[:, :, i] = reports[i][None]
        alloc, pay = mech.outcome(bids.reshape(num * g, n, m))
        alloc, pay = alloc.reshape(num, g, n, m), pay.reshape(num, g, n)
        u = (values[:, None, i] * alloc[:, :, i]).sum(-1) - pay[:, :, i]  # (P, G)
        best[:, i] = u.argmax(axis=1)
        regret[:, i] = u.max(axis=1) - truthful[:, i]
    return regret, best


def assert_feasible(setting: Setting, alloc: np.ndarray, tol: float, supply: bool = True) -> None:
    assert alloc.min() >= -tol, f"allocation {alloc.min()} < 0"
    assert alloc.max() <= 1 + tol, f"allocation {alloc.max()} > 1"
    if setting.unit_supply and supply:
        over = alloc.sum(axis=1).max()
        assert over <= 1 + tol, f"unit supply: an item is allocated {over} times"
    if setting.unit_demand:
        over = alloc.sum(axis=2).max()
        assert over <= 1 + tol, f"unit demand: a bidder receives {over} items"


def assert_ir(values: np.ndarray, alloc: np.ndarray, pay: np.ndarray, tol: float) -> None:
    u = utilities(values, alloc, pay)
    b, i = np.unravel_index(np.argmin(u), u.shape)
    assert u[b, i] >= -tol, (
        f"IR: bidder {i} of profile {values[b].tolist()} gets {alloc[b, i].tolist()} "
        f"for {pay[b, i]}: utility {u[b, i]:.3g}"
    )


# ------------------------------------------------------------------ the mechanisms


def random_allocations(setting: Setting, count: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` random feasible (fractional) allocations (count, n, m)."""
    n, m = setting.shape
    a = torch.rand(count, n, m, generator=gen, dtype=torch.float64)
    a = a * (torch.rand(count, n, m, generator=gen, dtype=torch.float64) < 0.7)
    if setting.unit_supply:
        a = a / a.sum(dim=1, keepdim=True).clamp_min(1.0)
    if setting.unit_demand:
        a = a / a.sum(dim=2, keepdim=True).clamp_min(1.0)
    return a


def random_lp_table(setting: Setting, seed: int, types_per_bidder: int = 5) -> LPTable:
    """A random outcome table on random types: one bidder, a menu (DSIC and IR for every
    table); several bidders, only IR (``null_if_negative``) and feasibility hold."""
    gen = torch.Generator().manual_seed(seed)
    n, m = setting.shape
    low, high = (torch.as_tensor(a) for a in setting.prior.support())
    unit = torch.rand(n, types_per_bidder, m, generator=gen, dtype=torch.float64)
    types = low[:, None] + unit * (high - low)[:, None]
    size = types_per_bidder**n
    alloc = random_allocations(setting, size, gen)
    pay = torch.rand(size, n, generator=gen, dtype=torch.float64) * (alloc.sum(-1) * high.amax())
    return LPTable(
        setting,
        [types_per_bidder] * n,
        types=types,
        alloc=alloc,
        pay=pay,
        probabilities=torch.full((size,), 1.0 / size, dtype=torch.float64),
    )


def random_ama(cls: type, setting: Setting, seed: int, **kwargs) -> Mechanism:
    """An AMA with random learned weights and random boosts (any sign, a fifth of the
    value scale: large enough to shift choices, small enough to keep values deciding)."""
    torch.manual_seed(seed)
    mech = cls(setting, learn_weights=True, **kwargs)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        mech.log_weights.copy_(0.5 * torch.randn(setting.num_bidders, generator=gen))
        scale = float(np.max(setting.prior.support()[1]))
        mech.boosts.copy_(0.2 * scale * torch.randn(len(mech.boosts), generator=gen))
    return mech.eval()


def seeded(build: Callable[[], Mechanism], seed: int) -> Mechanism:
    torch.manual_seed(seed)
    return build().eval()


#: Random-parameter learned mechanisms: (id, setting, builder).
RANDOM_LEARNED: list[tuple[str, str, Callable[[Setting], Mechanism]]] = [
    *(
        (
            "menu",
            name,
            lambda s: seeded(lambda: MenuMechanism(s, menu_size=8, init_seed=3), 3),
        )
        for name in ["1x2-uniform", "1x2-unit-uniform", "1x1-exponential", "U-1x10-cp0-cd0"]
    ),
    *(
        (
            "myersonnet",
            name,
            lambda s: seeded(lambda: MyersonNetMechanism(s, groups=3, lines=3, init_seed=5), 5),
        )
        for name in ["2x1-uniform", "3x1-asym-uniform", "1x1-exponential"]
    ),
    *(
        (
            cls.name,
            name,
            lambda s, cls=cls: seeded(lambda: cls(s, hidden=16, layers=2, init_seed=1), 1),
        )
        for cls in (RegretNetMechanism, ALGNetMechanism)
        for name in ["2x2-uniform", "2x3-unit-uniform"]
    ),
    *(
        ("lottery-ama", name, lambda s: random_ama(LotteryAMA, s, 11, allocations=16, init_seed=11))
        for name in ["2x2-uniform", "2x3-unit-uniform", "U-3x2-cp1-cd0", "2x4-unit-spherical"]
    ),
    *(
        ("deterministic-ama", name, lambda s: random_ama(DeterministicAMA, s, 13))
        for name in ["2x2-uniform", "2x3-unit-uniform", "U-3x2-cp1-cd0"]
    ),
    *(
        (
            "tedi",
            name,
            lambda s: seeded(
                lambda: TEDIMechanism(s, groups=(4, 4), pan_hidden=8, solver_steps=50, init_seed=2),
                2,
            ),
        )
        for name in ["U-1x10-cp0-cd0", "U-3x2-cp1-cd0"]
    ),
    *(
        (
            "gemnet",
            name,
            lambda s: seeded(lambda: GemNetMechanism(s, menu_size=4, hidden=(8,), init_seed=4), 4),
        )
        for name in ["2x2-uniform", "2x3-unit-uniform", "3x1-uniform"]
    ),
    (
        "gemnet-adjusted",
        "2x2-uniform",
        lambda s: compatibility.adjust(
            seeded(lambda: GemNetMechanism(s, menu_size=4, hidden=(8,), init_seed=4, grid=4), 4),
            snap=0.01,
        )[0],
    ),
    *(
        ("lp-table", name, lambda s: random_lp_table(s, 17))
        for name in ["1x2-uniform", "1x2-unit-uniform", "2x2-uniform", "2x3-unit-uniform"]
    ),
]


@dataclass(frozen=True)
class Case:
    """One mechanism on one setting, and what it promises."""

    id: str
    setting: str
    build: Callable[[], Mechanism]
    dsic: bool = True  # DSIC by construction (brute force checked)
    supply: bool = True  # unit supply holds by construction
    dsic_tolerance: float | None = None  # relative, where not the dtype's
    dsic_on_grid: bool = False  # DSIC only for true values on the mechanism's type grid

    def __repr__(self) -> str:
        return self.id


@functools.cache
def setting_of(name: str) -> Setting:
    setting = get_setting(name)
    assert isinstance(setting, Setting)
    return setting


_MECHANISMS: dict[str, Mechanism] = {}


def mechanism_of(case: Case) -> Mechanism:
    """Each case's mechanism, built once per session."""
    if case.id not in _MECHANISMS:
        _MECHANISMS[case.id] = case.build()
    return _MECHANISMS[case.id]


def classical(cls: type[Mechanism], setting: Setting) -> Mechanism:
    if cls is PostedPrice and setting.unit_demand:
        # Unit-demand prices are tuned by a slow coordinate search (8 s on 2x3): any
        # prices make the same DSIC mechanism, so fixed ones are used.
        high = setting.prior.support()[1].max(axis=0)
        return PostedPrice(setting, prices=(0.55 * high).tolist())
    return cls(setting)


_TRAINED: dict[str, Mechanism] = {}
_TRAIN_ROOT: list[Path] = []


def trained(method: str) -> Mechanism:
    """``method`` trained for 4 steps on its :data:`TRAIN_CASES` setting (seed 0), once
    per session; the resume test compares against this uninterrupted run."""
    if method not in _TRAINED:
        name, options = TRAIN_CASES[method]
        mech, _ = train(
            name,
            method,
            {**TRAIN_COMMON, **options},
            seed=0,
            out=_TRAIN_ROOT[0] / f"{method}-whole",
            eval_samples=256,
            search=None,
        )
        _TRAINED[method] = mech
    return _TRAINED[method]


@pytest.fixture(scope="module", autouse=True)
def _train_root(tmp_path_factory):
    _TRAIN_ROOT.append(tmp_path_factory.mktemp("trained"))
    yield
    _TRAIN_ROOT.clear()
    _TRAINED.clear()
    _MECHANISMS.clear()


def trained_lp(name: str, grid: int) -> Mechanism:
    key = f"lp-{name}-{grid}"
    if key not in _TRAINED:
        _TRAINED[key], _ = train(
            name,
            "lp",
            {"grid": grid},
            seed=0,
            out=_TRAIN_ROOT[0] / key,
            eval_samples=256,
            search=None,
        )
    return _TRAINED[key]


def trained_gemnet_adjusted() -> Mechanism:
    if "gemnet-adjusted" not in _TRAINED:
        network = trained("gemnet")
        assert isinstance(network, GemNetMechanism)
        _TRAINED["gemnet-adjusted"] = compatibility.adjust(network, snap=0.01)[0]
    return _TRAINED["gemnet-adjusted"]


def _cases() -> list[Case]:
    cases = []
    for name in CLASSICAL_SETTINGS:
        s = setting_of(name)
        for cls in CLASSICAL:
            if cls.applicable(s) is None:
                cases.append(
                    Case(
                        f"{cls.name}@{name}",
                        name,
                        functools.partial(classical, cls, s),
                        dsic=cls is not FirstPrice,
                    )
                )
    for mech_name, name, build in RANDOM_LEARNED:
        s = setting_of(name)
        cases.append(
            Case(
                f"{mech_name}-random@{name}",
                name,
                functools.partial(build, s),
                dsic=mech_name not in ("regretnet", "algnet")
                and not (mech_name == "lp-table" and s.num_bidders > 1),
                supply=mech_name != "gemnet",
                dsic_tolerance=TEDI_SOLVER_TOLERANCE if mech_name == "tedi" else None,
            )
        )
    for method, (name, _) in TRAIN_CASES.items():
        cases.append(
            Case(
                f"{method}-trained@{name}",
                name,
                functools.partial(trained, method),
                dsic=method not in ("regretnet", "algnet"),
                supply=method != "gemnet",
                dsic_tolerance=TEDI_SOLVER_TOLERANCE if method == "tedi" else None,
            )
        )
    cases.append(
        Case("gemnet-adjusted-trained@2x2-uniform", "2x2-uniform", trained_gemnet_adjusted)
    )
    for name, grid in [("1x2-uniform", 4), ("2x2-uniform", 3), ("2x3-unit-uniform", 2)]:
        cases.append(
            Case(
                f"lp-trained@{name}",
                name,
                functools.partial(trained_lp, name, grid),
                dsic_on_grid=setting_of(name).num_bidders > 1,
            )
        )
    return cases


CASES = _cases()
DSIC_CASES = [c for c in CASES if c.dsic]


def test_battery_covers_every_registered_static_mechanism():
    """Every classical mechanism and every static method's mechanism class is in the
    battery, with random parameters and trained (learned ones)."""
    ids = {c.id.split("@")[0] for c in CASES}
    for cls in CLASSICAL:
        assert cls.name in ids, cls.name
    static = [
        name
        for name in METHODS
        if METHODS[name].kind == "static" and METHODS[name].mechanism is not None
    ]
    learned = [name for name in static if METHODS[name].mechanism not in CLASSICAL]
    assert set(learned) == set(GRADIENT_METHODS) | {"lp"}
    mechanisms = {METHODS[name].mechanism for name in learned}
    built = {type(mechanism_of(c)) for c in CASES if "-random@" in c.id}
    assert mechanisms <= built
    assert set(TRAIN_CASES) == set(GRADIENT_METHODS)
    assert {n for n in CLASSICAL_SETTINGS} <= set(setting_names("static"))


# ------------------------------------------------------------------ IR, feasibility, sign


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_individually_rational(case):
    s, mech = setting_of(case.setting), mechanism_of(case)
    values = profiles(s)
    alloc, pay = mech.outcome(values)
    assert alloc.shape == values.shape and pay.shape == values.shape[:2]
    assert_ir(values, alloc, pay, relative_tolerance(mech) * value_scale(s))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_feasible(case):
    """Allocations in [0, 1], unit supply and unit demand.  Unadjusted GemNet menus may
    over-allocate an item (documented: "menu incompatibility", removed by the price
    adjustment): there only the per-bidder constraints are checked."""
    s, mech = setting_of(case.setting), mechanism_of(case)
    alloc, _ = mech.outcome(profiles(s))
    assert_feasible(s, alloc, relative_tolerance(mech), supply=case.supply)


def test_unadjusted_gemnet_over_allocation_is_real():
    """The exception above is not vacuous: a random unadjusted network over-allocates on
    prior profiles, its adjusted form does not."""
    s = setting_of("2x2-uniform")
    network = mechanism_of(next(c for c in CASES if c.id == "gemnet-random@2x2-uniform"))
    adjusted = mechanism_of(next(c for c in CASES if c.id == "gemnet-adjusted-random@2x2-uniform"))
    values = profiles(s, 256)
    assert network.outcome(values)[0].sum(axis=1).max() > 1.05
    assert adjusted.outcome(values)[0].sum(axis=1).max() <= 1 + 1e-9


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_payments_nonnegative(case):
    s, mech = setting_of(case.setting), mechanism_of(case)
    if mech.name in FREE_PRICES:
        pytest.skip(f"may pay bidders: {FREE_PRICES[mech.name]}")
    values = profiles(s)
    _, pay = mech.outcome(values)
    b, i = np.unravel_index(np.argmin(pay), pay.shape)
    assert pay[b, i] >= -relative_tolerance(mech) * value_scale(s), (
        f"bidder {i} of profile {values[b].tolist()} is paid {-pay[b, i]:.3g}"
    )


# ------------------------------------------------------------------ DSIC


def grid_profiles(mech: LPTable, num: int) -> np.ndarray:
    """``num`` profiles of the table's type grid (seeded)."""
    rng = np.random.default_rng(PROFILE_SEED)
    types = mech.types.cpu().numpy()
    n = len(mech.num_types)
    picks = [rng.integers(0, k, num) for k in mech.num_types]
    return np.stack([types[i, picks[i]] for i in range(n)], axis=1)


@pytest.mark.parametrize("case", DSIC_CASES, ids=repr)
def test_dsic_brute_force(case):
    """No bidder gains by any misreport of the grid (others truthful).  LP tables with
    several bidders are DSIC on their type grid (lp_table.py): the true profiles are grid
    profiles there, the misreports still range over the whole box (any bid is rounded
    down to a type or gets the null outcome)."""
    s, mech = setting_of(case.setting), mechanism_of(case)
    if case.dsic_on_grid:
        assert isinstance(mech, LPTable)
        values = grid_profiles(mech, DSIC_PROFILES)
    else:
        values = profiles(s, DSIC_PROFILES)
    reports = misreport_grid(s)
    if case.dsic_on_grid:  # the bidder's own types are misreports too (padded: the first)
        types = mech.types.cpu().numpy()
        k = max(mech.num_types)
        own = [types[i, np.minimum(np.arange(k), mech.num_types[i] - 1)] for i in range(len(types))]
        reports = np.concatenate([reports, np.stack(own)], axis=1)
    regret, best = brute_force_regret(mech, values, reports)
    rel = case.dsic_tolerance or relative_tolerance(mech)
    tol = rel * value_scale(s)
    b, i = np.unravel_index(np.argmax(regret), regret.shape)
    assert regret[b, i] <= tol, (
        f"bidder {i} with values {values[b, i].tolist()} (others {values[b].tolist()}) "
        f"gains {regret[b, i]:.3g} by reporting {reports[i, best[b, i]].tolist()}"
    )


@pytest.mark.parametrize(
    "name", [n for n in CLASSICAL_SETTINGS if FirstPrice.applicable(setting_of(n)) is None]
)
def test_first_price_regret_is_found(name):
    """First price is not DSIC: the same brute force finds a profitable misreport, so the
    DSIC check above can fail."""
    s = setting_of(name)
    mech = mechanism_of(next(c for c in CASES if c.id == f"first-price@{name}"))
    regret, _ = brute_force_regret(mech, profiles(s, DSIC_PROFILES), misreport_grid(s))
    assert regret.max() > 1e-3 * value_scale(s)


# ------------------------------------------------------------------ bids above the box


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_bids_above_the_support_box(case):
    """Bids 1 to 10 and 1000 times the box's upper end (within ``max_bid``): a BidError or
    an outcome still IR (for a bidder whose values are those bids) and feasible; bids
    above ``max_bid`` are refused."""
    s, mech = setting_of(case.setting), mechanism_of(case)
    low, high = s.prior.support()
    top = np.where(high > 0, high, 1.0)
    rng = np.random.default_rng(5)
    rel = relative_tolerance(mech)
    for factor in (10.0, 1000.0):
        over = top * (1 + (factor - 1) * rng.random((PROFILES, *s.shape)))
        # half the profiles keep some bidders inside the box
        inside = profiles(s)
        keep = rng.random((PROFILES, s.num_bidders, 1)) < 0.3
        bids = np.where(keep, inside, over)
        try:
            alloc, pay = mech.outcome(bids)
        except BidError:
            continue
        scale = float(bids.sum(axis=2).max())
        assert_ir(bids, alloc, pay, rel * scale)
        assert_feasible(s, alloc, rel, supply=case.supply)
    too_high = profiles(s, 2)
    too_high[0, 0, 0] = 2 * max_bid(s, mech.dtype)
    with pytest.raises(BidError):
        mech.outcome(too_high)


# ------------------------------------------------------------------ save -> load


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_save_load_gives_identical_outcomes(case, tmp_path):
    s, mech = setting_of(case.setting), mechanism_of(case)
    automech.save(mech, tmp_path / "saved")
    again = automech.load(tmp_path / "saved")
    assert type(again) is type(mech)
    bids = np.concatenate([profiles(s, 64), 3 * profiles(s, 8)])
    for a, b in zip(mech.outcome(bids), again.outcome(bids)):
        np.testing.assert_array_equal(a, b)


def test_save_load_keeps_a_float64_mechanism(tmp_path):
    s = setting_of("2x2-uniform")
    mech = GemNetMechanism(s, menu_size=8, hidden=(16,), init_seed=0).double().eval()
    automech.save(mech, tmp_path / "saved")
    again = automech.load(tmp_path / "saved")
    bids = profiles(s, 256)
    assert again.dtype == mech.dtype
    for a, b in zip(mech.outcome(bids), again.outcome(bids)):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ resume


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_interrupted_run_resumes_to_identical_parameters(method, tmp_path, monkeypatch):
    """Cut in step 3 (after the step-2 checkpoint) and rerun: the parameters equal those
    of the uninterrupted run."""
    name, options = TRAIN_CASES[method]
    opts = {**TRAIN_COMMON, **options}
    whole = trained(method)
    interrupt_third_step(monkeypatch, METHODS[method])
    with pytest.raises(KeyboardInterrupt):
        train(name, method, opts, seed=0, out=tmp_path / "cut", eval_samples=256, search=None)
    monkeypatch.undo()
    state = Run(tmp_path / "cut").checkpoint()["training_state"]
    assert state["step"] == 2 and not state["finished"]
    said: list[str] = []
    resumed, _ = train(
        name,
        method,
        opts,
        seed=0,
        out=tmp_path / "cut",
        eval_samples=256,
        search=None,
        notify=said.append,
    )
    assert any("from its checkpoint at step 2" in line for line in said), said
    want, got = whole.state_dict(), resumed.state_dict()
    assert list(want) == list(got)
    for key in want:
        assert torch.equal(want[key], got[key]), key

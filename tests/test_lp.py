"""The ``lp`` method: exact optima on small finite type spaces, discretised continuous
priors, the ``lp-table`` mechanism (save, load, describe) and clear errors on bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import automech
from automech import RegretSearch, Setting, evaluate
from automech.errors import AutomechError, SettingError
from automech.experiment import train
from automech.methods import METHODS
from automech.methods.lp import solve
from automech.problems import DiscretePrior, IndependentDiscretePrior
from conftest import cached_setting

SEARCH = RegretSearch(profiles=300, random=64)


def discrete(
    types: list[list[float]], probs: list[list[float]], items: int = 1, **extra
) -> Setting:
    """Independent discrete bidders; ``types[i]`` lists bidder i's values (one per item)."""
    return Setting.from_dict(
        {
            "bidders": len(types),
            "items": items,
            **extra,
            "prior": {
                "kind": "discrete",
                "type_probabilities": probs,
                "types": [[[v] if items == 1 else v for v in t] for t in types],
            },
        }
    )


def listed(profiles: list, probs: list[float]) -> Setting:
    p = np.asarray(profiles, dtype=float)
    return Setting.from_dict(
        {
            "bidders": p.shape[1],
            "items": p.shape[2],
            "prior": {"kind": "discrete", "profiles": p.tolist(), "probabilities": probs},
        }
    )


def table_revenue(mechanism) -> float:
    """Exact expected revenue of the table under its own (discrete) prior."""
    return float((mechanism.probabilities * mechanism.pay.sum(dim=1)).sum())


def myerson_discrete(values: list[float], probs: list[float], bidders: int) -> float:
    """Myerson's optimum for i.i.d. discrete values: E[max_i phibar(v_i)^+], with
    phi_r = v_r - (v_{r+1} - v_r) (1 - F_r) / f_r ironed by weighted pooling."""
    v, f = np.asarray(values, float), np.asarray(probs, float)
    tail = 1 - np.cumsum(f)
    phi = v - np.append(np.diff(v), 0.0) * tail / f
    blocks = []  # pool adjacent violators: [value, weight, size]
    for p, w in zip(phi, f):
        blocks.append([p, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (p1, w1, n1), (p2, w2, n2) = blocks.pop(-2), blocks.pop()
            blocks.append([(p1 * w1 + p2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    ironed = np.concatenate([[p] * n for p, _, n in blocks])
    return sum(
        np.prod(f[list(r)]) * max(0.0, ironed[list(r)].max())
        for r in itertools.product(range(len(v)), repeat=bidders)
    )


def test_one_bidder_two_values_revenue_is_one():
    setting = discrete([[1.0, 2.0]], [[0.5, 0.5]])
    mechanism, report = solve(setting)
    assert report["objective"] == pytest.approx(1.0, abs=1e-12)
    assert table_revenue(mechanism) == pytest.approx(1.0, abs=1e-12)
    _, pay = mechanism.outcome(np.array([[[1.0]], [[2.0]]]))
    assert 0.5 * pay.sum() == pytest.approx(1.0, abs=1e-12)
    assert report["variables"] == 4 and report["constraints"] == 4 and report["status"] == 0
    assert mechanism.describe()["entries"] == [
        {"allocation": [1.0], "payment": 2.0, "types": 1, "probability": 0.5}
    ]


@pytest.mark.parametrize(
    "values, probs",
    [
        ([1.0, 2.0, 4.0], [0.4, 0.4, 0.2]),  # regular
        ([1.0, 2.0, 3.0], [0.5, 0.1, 0.4]),  # needs ironing
        ([0.5, 1.0, 1.5, 3.0], [0.3, 0.3, 0.2, 0.2]),
    ],
)
def test_two_bidders_single_item_matches_discrete_myerson(values, probs):
    setting = discrete([values, values], [probs, probs])
    exact = myerson_discrete(values, probs, 2)
    dsic, report = solve(setting, ic="dsic")
    assert report["objective"] == pytest.approx(exact, abs=1e-7)
    assert table_revenue(dsic) == pytest.approx(exact, abs=1e-7)
    _, bic = solve(setting, ic="bic")
    assert bic["objective"] >= report["objective"] - 1e-7


def test_dsic_equals_bic_for_one_bidder():
    setting = discrete(
        [[[1.0, 0.2], [0.3, 1.1], [1.2, 1.0], [0.5, 0.4]]], [[0.3, 0.2, 0.4, 0.1]], items=2
    )
    objectives = [
        solve(setting, ic=ic, ir=ir)[1]["objective"]
        for ic in ("dsic", "bic")
        for ir in ("ex-post", "interim")
    ]
    assert objectives == pytest.approx([objectives[0]] * 4, abs=1e-8)


def test_bic_at_least_dsic_for_several_bidders():
    correlated = listed(
        [[[1.0], [1.0]], [[1.0], [2.0]], [[2.0], [1.0]], [[2.0], [2.0]]], [0.35, 0.15, 0.15, 0.35]
    )
    dsic = solve(correlated, ic="dsic")[1]["objective"]
    bic = solve(correlated, ic="bic")[1]["objective"]
    bic_interim = solve(correlated, ic="bic", ir="interim")[1]["objective"]
    assert bic_interim >= bic - 1e-8 and bic >= dsic - 1e-8
    assert bic_interim > dsic + 0.05  # correlation is worth more under BIC
    welfare = 0.35 * 1 + 0.65 * 2  # E[max value]: full surplus extraction
    assert bic_interim == pytest.approx(welfare, abs=1e-7)
    additive = discrete(
        [[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[0.5, 0.5], [1.0, 0.2]]],
        [[0.3, 0.3, 0.4], [0.6, 0.4]],
        items=2,
    )
    assert (
        solve(additive, ic="bic")[1]["objective"]
        >= solve(additive, ic="dsic")[1]["objective"] - 1e-8
    )


def test_other_linear_objectives():
    setting = discrete([[1.0, 2.0]], [[0.5, 0.5]], objective="welfare")
    assert solve(setting)[1]["objective"] == pytest.approx(1.5, abs=1e-9)
    costly = discrete(
        [[1.0, 2.0]], [[0.5, 0.5]], objective={"kind": "revenue-minus-cost", "production_cost": 0.5}
    )
    assert solve(costly)[1]["objective"] == pytest.approx(0.75, abs=1e-9)  # price 2


@pytest.mark.parametrize(
    "setting, grid, optimum",
    [
        ("1x2-uniform", 5, 0.549201),
        ("1x2-uniform", 8, 0.549201),
        ("1x2-unit-uniform", 6, 0.384),  # Pavlov (2011): about 0.384
    ],
)
def test_single_bidder_grid_mechanism_is_dsic_and_ir_on_all_bids(setting, grid, optimum):
    s = cached_setting(setting)
    mechanism, report = solve(s, grid=grid)
    assert report["types_per_bidder"] == [grid * grid]
    assert report["variables"] == grid**2 * 3
    ev = evaluate(mechanism, s, samples=20_000, search=SEARCH)
    assert ev.regret_max <= 1e-6
    assert ev.ir_violation_rate == 0 and ev.infeasible_rate == 0
    assert optimum - 0.05 < ev.revenue < optimum + 4 * ev.revenue_se


@pytest.mark.parametrize("points", ["mid", "low"])
def test_several_bidders_grid_is_dsic_on_the_grid_and_nearly_so_off_it(points):
    """Two bidders on a 3 x 3 grid per bidder (81 profiles): the table is DSIC on the grid
    (every type's utility at every other type's report, checked here by brute force, and
    the evaluator's regret on the grid's own discrete prior are 0), IR and feasible.  Off
    the grid bids are rounded to a type, so regret is positive (as documented) but small:
    by DSIC on the grid the gain of any lie is at most ``|v - t(v)|_1 <= 2 / 3`` for
    the type t(v) the truth is rounded to (grid spacing 1/3, two items)."""
    s = cached_setting("2x2-uniform")
    mechanism, report = solve(s, grid=3, points=points)
    assert report["profiles"] == 81 and report["binding_ic"] > 0
    assert all("others_types" in d for d in report["ic_duals_top"])
    low = mechanism.types[0, 0].tolist()
    assert low == ([1 / 6, 1 / 6] if points == "mid" else [0.0, 0.0])
    types = mechanism.types.numpy()  # (2, 9, 2)
    alloc, pay = mechanism.alloc.numpy(), mechanism.pay.numpy()  # profile t = 9 t_0 + t_1
    worst = 0.0
    for t0, t1 in itertools.product(range(9), repeat=2):
        for i, own in ((0, t0), (1, t1)):
            truth = t0 * 9 + t1
            u = types[i, own] @ alloc[truth, i] - pay[truth, i]
            assert u >= -1e-9  # ex-post IR on the grid
            for lie in range(9):
                t = lie * 9 + t1 if i == 0 else t0 * 9 + lie
                worst = max(worst, types[i, own] @ alloc[t, i] - pay[t, i] - u)
    assert worst <= 1e-9
    grid_prior = Setting.from_dict(
        {
            "bidders": 2,
            "items": 2,
            "prior": {
                "kind": "discrete",
                "types": [types[0].tolist(), types[1].tolist()],
                "type_probabilities": [[1 / 9] * 9] * 2,
            },
        }
    )
    on_grid = evaluate(mechanism, grid_prior, samples=2_000, search=SEARCH)
    assert on_grid.regret_max <= 1e-9 and on_grid.ir_violation_rate == 0
    ev = evaluate(mechanism, s, samples=20_000, search=SEARCH)
    assert ev.ir_violation_rate == 0 and ev.infeasible_rate == 0
    assert ev.revenue > 0.7
    assert ev.regret_mean > 4 * ev.regret_se  # off the grid truthfulness is lost...
    assert ev.regret_mean < 0.05 and ev.regret_max <= 2 / 3  # ...but only a little
    first, second = np.unravel_index(np.arange(81), (9, 9))  # grid bids map to the table
    alloc, pay = mechanism.outcome(np.stack([types[0, first], types[1, second]], axis=1))
    np.testing.assert_array_equal(alloc, mechanism.alloc.numpy())
    np.testing.assert_array_equal(pay, mechanism.pay.numpy())


def test_save_load_and_describe(tmp_path):
    rng = np.random.default_rng(0)
    for name, grid in (("1x2-uniform", 4), ("2x2-uniform", 3)):
        s = cached_setting(name)
        mechanism, _ = solve(s, grid=grid)
        automech.save(mechanism, tmp_path / name)
        loaded = automech.load(tmp_path / name)
        bids = rng.random((500, *s.shape))
        for a, b in zip(mechanism.outcome(bids), loaded.outcome(bids)):
            np.testing.assert_array_equal(a, b)
        described = loaded.describe(bids)
        assert described == mechanism.describe(bids)
        assert described["kind"] == ("menu" if s.num_bidders == 1 else "table")
        for entry in described["entries"]:
            assert (
                np.any(entry["allocation"])
                or entry.get("payment", 0) != 0
                or any(entry.get("payments", []))
            )
            assert 0 <= entry["share"] <= 1
        assert "share" not in mechanism.describe()["entries"][0]


def test_train_writes_lp_report(tmp_path):
    assert "lp" in METHODS
    mechanism, run = train(
        cached_setting("1x2-uniform"),
        "lp",
        {"grid": 4, "ic": "bic"},
        out=tmp_path / "run",
        eval_samples=2_000,
        search=RegretSearch(profiles=100, random=16),
    )
    report = run.read_json("lp.json")
    for key in (
        "variables",
        "constraints",
        "nonzeros",
        "solve_seconds",
        "status",
        "objective",
        "binding_ic",
        "ic_duals_top",
    ):
        assert key in report
    assert run.read_json("metrics.json")["mechanism"] == "lp-table"
    assert automech.load(run.path).config() == mechanism.config()


def test_continuous_prior_needs_grid():
    with pytest.raises(AutomechError, match="grid"):
        solve(cached_setting("1x2-uniform"))
    with pytest.raises(AutomechError, match="grid"):
        solve(discrete([[1.0, 2.0]], [[0.5, 0.5]]), grid=5)


@pytest.mark.parametrize(
    "option",
    [
        {"ic": "foo"},
        {"ir": "sometimes"},
        {"grid": -1},
        {"points": "top"},
        {"time_limit": 0.0},
        {"solver": "glpk"},
    ],
)
def test_bad_options(option):
    key = next(iter(option))
    with pytest.raises(AutomechError, match=f"'{key}'"):
        solve(discrete([[1.0, 2.0]], [[0.5, 0.5]]), **option)


def test_malformed_discrete_priors_name_the_field():
    with pytest.raises(SettingError) as err:  # via the setting file form
        discrete([[1.0, 2.0]], [[0.5, 0.4]])
    assert err.value.field == "prior.type_probabilities[0]"
    ok = discrete([[1.0, 2.0]], [[0.5, 0.5]])
    cases = [
        (
            DiscretePrior(np.array([[[1.0]], [[2.0]]]), np.array([0.5, 0.4])),
            "prior.probabilities",
            "sum to 1",
        ),
        (
            DiscretePrior(np.array([[[1.0]], [[2.0]]]), np.array([1.5, -0.5])),
            "prior.probabilities",
            ">= 0",
        ),
        (
            DiscretePrior(np.array([[[-1.0]], [[2.0]]]), np.array([0.5, 0.5])),
            "prior.profiles",
            ">= 0",
        ),
        (
            IndependentDiscretePrior([np.array([[1.0], [2.0]])], [np.array([0.7, 0.7])]),
            "prior.type_probabilities[0]",
            "sum to 1",
        ),
        (
            IndependentDiscretePrior([np.array([[1.0], [-2.0]])], [np.array([0.5, 0.5])]),
            "prior.types[0]",
            ">= 0",
        ),
    ]
    for prior, field, problem in cases:
        ok.prior = prior
        with pytest.raises(SettingError, match=problem) as err:
            solve(ok)
        assert err.value.field == field


def test_nonzero_limit_refuses_huge_lps():
    with pytest.raises(AutomechError, match="max_nonzeros"):
        solve(cached_setting("2x2-uniform"), grid=10, max_nonzeros=10**6)

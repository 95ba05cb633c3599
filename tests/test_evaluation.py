"""The evaluation protocol: zero regret of truthful mechanisms, positive regret of the
first-price auction, IR/feasibility accounting, determinism."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from automech import Evaluation, RegretSearch, Setting, evaluate
from automech.evaluation.protocol import TEST_SEED
from automech.mechanisms import FirstPrice, Mechanism, PostedPrice
from conftest import cached_mechanism, cached_setting

SMALL = RegretSearch(profiles=100, random=64, scales=16, grid=8)

TRUTHFUL = [
    ("2x2-uniform", "vcg"),
    ("2x2-uniform", "separate-myerson"),
    ("2x2-uniform", "grand-bundle"),
    ("2x2-uniform", "posted-price"),
    ("2x2-uniform", "bundle-posted-price"),
    ("3x1-uniform", "myerson"),
    ("3x1-uniform", "vcg"),
    ("3x1-uniform", "grand-bundle"),
    ("2x1-asym-uniform", "myerson"),
    ("3x1-exponential", "myerson"),
    ("1x2-uniform", "bundle-posted-price"),
    ("1x2-uniform", "posted-price"),
    ("2x2-unit-uniform", "vcg"),
    ("2x2-unit-uniform", "posted-price"),
    ("2x4-unit-spherical", "vcg"),
    ("3x10-correlated", "grand-bundle"),
]


@pytest.mark.parametrize("setting, mechanism", TRUTHFUL)
def test_truthful_mechanisms_have_zero_regret(setting, mechanism):
    report = evaluate(cached_mechanism(mechanism, setting), samples=2_000, search=SMALL)
    # a finite prior is evaluated on its whole support (25 profiles for the spherical one)
    assert report.regret_samples == min(100, report.samples)
    assert report.search == SMALL.to_dict()
    assert report.regret_max <= 1e-9 and report.regret_mean <= 1e-9
    assert len(report.regret_per_bidder) == cached_setting(setting).num_bidders
    assert report.ir_violation_rate == 0.0 and report.ir_violation_mean == 0.0
    assert report.infeasible_rate == 0.0 and report.infeasibility_max == 0.0


@pytest.mark.parametrize("setting", ["2x2-uniform", "3x1-uniform", "2x2-unit-uniform"])
def test_first_price_has_positive_regret(setting):
    report = evaluate(FirstPrice(cached_setting(setting)), samples=2_000, search=SMALL)
    assert report.regret_mean > 0.05
    assert report.regret_max > report.regret_mean
    assert all(r > 0 for r in report.regret_per_bidder)
    assert report.ir_violation_rate == 0.0


def test_first_price_single_bidder_regret_near_value():
    # One bidder, first price: bidding almost 0 still wins, so the regret is close to v
    # (mean 1/2); the search finds at least 90% of it.
    report = evaluate(FirstPrice(cached_setting("1x1-uniform")), samples=2_000, search=SMALL)
    assert 0.45 < report.regret_mean <= 0.5 + 4 * report.regret_se
    assert report.revenue == pytest.approx(0.5, abs=4 * report.revenue_se)


def test_no_search_gives_no_regret_fields():
    report = evaluate(cached_mechanism("vcg", "2x2-uniform"), samples=1_000, search=None)
    assert report.regret_mean is report.regret_max is report.regret_per_bidder is None
    assert report.regret_samples == 0 and report.search is None


class GiveEverything(Mechanism):
    """Gives every item to every bidder and charges 2: infeasible and not IR."""

    name = "give-everything"

    def forward(self, bids):
        return torch.ones_like(bids), torch.full(bids.shape[:2], 2.0, dtype=bids.dtype)


def test_protocol_reports_ir_violations_and_infeasibility():
    s = cached_setting("2x2-uniform")
    report = evaluate(GiveEverything(s), samples=1_000, search=None)
    assert report.revenue == pytest.approx(4.0) and report.revenue_se == pytest.approx(0.0)
    assert report.ir_violation_rate == 1.0  # values sum to at most 2 < 2 a.s.
    assert report.ir_violation_mean == pytest.approx(1.0, abs=0.05)  # 2 - E[v1 + v2]
    assert report.infeasible_rate == 1.0
    assert report.infeasibility_max == pytest.approx(1.0)


def test_revenue_welfare_and_standard_errors():
    s = cached_setting("2x2-uniform")
    report = evaluate(cached_mechanism("vcg", "2x2-uniform"), samples=20_000, search=None)
    # VCG here is a second-price auction per item: welfare is E[sum of item maxima] = 4/3
    assert report.welfare == pytest.approx(4 / 3, abs=4 * report.welfare_se)
    # revenue SE is the std of per-profile revenue over sqrt(samples)
    assert 0.5 / math.sqrt(20_000) > report.revenue_se > 0.2 / math.sqrt(20_000)
    assert report.objective == "revenue" and report.objective_value == report.revenue
    assert report.samples == 20_000 and report.seed == TEST_SEED
    assert report.setting == s.name and report.mechanism == "vcg"


def test_evaluation_is_deterministic():
    m = cached_mechanism("separate-myerson", "2x2-uniform")
    first = evaluate(m, samples=3_000, seed=123, search=SMALL).to_dict()
    second = evaluate(m, samples=3_000, seed=123, search=SMALL).to_dict()
    first.pop("seconds"), second.pop("seconds")
    assert first == second
    fp = FirstPrice(cached_setting("2x2-uniform"))
    a = evaluate(fp, samples=1_000, seed=5, search=SMALL).to_dict()
    b = evaluate(fp, samples=1_000, seed=5, search=SMALL).to_dict()
    a.pop("seconds"), b.pop("seconds")
    assert a == b, "random misreports come from the seed too"
    other = evaluate(m, samples=3_000, seed=124, search=None)
    assert other.revenue != first["revenue"]


def test_evaluation_values_match_an_independent_computation():
    """Every figure of the report, recomputed here with NumPy on the same test profiles
    (``setting.sample(samples, TEST_SEED)``): posted prices 1/2 on 2x2-uniform sell item
    j whenever some bidder values it at 1/2 or more (bidder 0 first), so revenue is 1/2
    per item sold and welfare the value of the first bidder at or above the price."""
    s = cached_setting("2x2-uniform")
    report = evaluate(PostedPrice(s, prices=[0.5, 0.5]), samples=500, search=SMALL)
    assert isinstance(report, Evaluation)
    v = s.sample(500, TEST_SEED)  # (B, 2, 2)
    first, second = v[:, 0] >= 0.5, v[:, 1] >= 0.5  # (B, m)
    revenue = 0.5 * (first | second).sum(axis=1)
    welfare = np.where(first, v[:, 0], np.where(second, v[:, 1], 0.0)).sum(axis=1)
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d  # the metrics.json form
    assert d["revenue"] == pytest.approx(revenue.mean(), abs=1e-12)
    assert d["revenue_se"] == pytest.approx(revenue.std(ddof=1) / math.sqrt(500), rel=1e-9)
    assert d["welfare"] == pytest.approx(welfare.mean(), abs=1e-12)
    assert d["welfare_se"] == pytest.approx(welfare.std(ddof=1) / math.sqrt(500), rel=1e-9)
    assert d["objective"] == "revenue" and d["objective_value"] == d["revenue"]
    assert d["objective_se"] == d["revenue_se"]
    # a buyer pays 1/2 only for items it values at 1/2 or more: IR, and feasible
    assert d["ir_violation_rate"] == 0.0 and d["ir_violation_mean"] == 0.0
    assert d["infeasible_rate"] == 0.0 and d["infeasibility_max"] == 0.0
    # the offer a bidder faces does not depend on its bid: no regret on any profile
    assert d["regret_mean"] == d["regret_max"] == d["regret_se"] == 0.0
    assert d["regret_per_bidder"] == [0.0, 0.0]
    assert d["regret_samples"] == SMALL.profiles and d["search"] == SMALL.to_dict()
    assert d["samples"] == 500 and d["seed"] == TEST_SEED
    assert d["mechanism"] == "posted-price" and d["setting"] == "2x2-uniform"
    assert d["seconds"] > 0 and d["extra"] == {}


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"samples": 0}, ">= 1"),
        ({"samples": -3}, ">= 1"),
        ({"samples": 2.5}, "integer"),
    ],
)
def test_evaluate_refuses_bad_sample_counts(kwargs, fragment):
    from automech.errors import EvaluationError

    with pytest.raises(EvaluationError, match=fragment):
        evaluate(cached_mechanism("vcg", "2x2-uniform"), **kwargs)


def test_evaluate_refuses_what_is_not_a_mechanism():
    from automech.errors import EvaluationError

    with pytest.raises(EvaluationError, match="needs an automech mechanism"):
        evaluate(lambda bids: bids)


# ------------------------------------------------------------------ the gradient-ascent stage


class SecretRebate(Mechanism):
    """Sells nothing and pays a rebate ``exp(-|b_i - c|^2 / (2 w^2))`` to every bidder i
    whose report is near the secret code c: not truthful, differentiable, and the only
    profitable misreport (b_i = c, gain ``1 - exp(-|v_i - c|^2 / (2 w^2))``) lies in a
    ball of radius about w that random points, scaled truths and grid points miss."""

    name = "secret-rebate"
    differentiable = True

    def __init__(self, setting, code: list[float], width: float) -> None:
        super().__init__(setting)
        self.code, self.width = code, width

    def forward(self, bids):
        code = torch.tensor(self.code, dtype=bids.dtype, device=bids.device)
        rebate = torch.exp(-((bids - code) ** 2).sum(dim=-1) / (2 * self.width**2))
        return torch.zeros_like(bids), -rebate


@pytest.mark.parametrize(
    "bidders, code, width",
    [
        (2, [0.5, 0.5], 0.02),  # 2 items: the code lies between the 16-point grid's points
        (1, [0.8, 0.2, 0.7, 0.3], 0.08),  # 4 items: 16^4 > max_grid, no grid at all
    ],
)
def test_gradient_ascent_finds_the_regret_candidates_miss(bidders, code, width):
    """The ascent stage of the misreport search (``ascent_starts`` / ``ascent_steps``) is
    what finds a narrow profitable misreport: with it the search finds (almost) all of
    the exact regret, computed here in closed form on the same profiles; without it
    (``ascent_steps=0``) the candidates find less than half."""
    m = len(code)
    s = Setting.from_dict({"bidders": bidders, "items": m, "prior": {"kind": "uniform"}})
    mech = SecretRebate(s, code, width)
    v = s.sample(100, TEST_SEED)
    exact = 1 - np.exp(-((v - np.array(code)) ** 2).sum(axis=-1) / (2 * width**2))  # (P, n)
    full = evaluate(mech, samples=100, search=RegretSearch(profiles=100))
    # the Gaussian rebate is separable: the per-item line search alone finds most of it
    no_ascent = RegretSearch(profiles=100, ascent_steps=0, line_points=0)
    candidates = evaluate(mech, samples=100, search=no_ascent)
    assert full.regret_mean == pytest.approx(exact.mean(), abs=1e-3)
    assert full.regret_per_bidder == pytest.approx(exact.mean(axis=0).tolist(), abs=1e-3)
    assert full.regret_max <= exact.max() + 1e-9  # never more than the best misreport
    assert candidates.regret_mean < 0.5 * exact.mean()
    assert full.regret_mean > candidates.regret_mean + 0.4


# ------------------------------------------------------------------ --thorough from the CLI


def test_cli_evaluate_thorough_uses_the_thorough_budget(tmp_path, monkeypatch):
    """``automech evaluate RUN --thorough`` scores with :data:`THOROUGH` (patched here to
    a small budget, where the CLI reads it): its regret is the library's under that very
    budget, on its ``profiles`` (37, not the ``--regret-profiles`` default)."""
    from typer.testing import CliRunner

    import automech
    import automech.cli
    import automech.evaluation
    import automech.evaluation.protocol
    import automech.evaluation.regret
    from automech.cli import app
    from automech.mechanisms.learned.regretnet import RegretNetMechanism

    small = RegretSearch(profiles=37, random=16, scales=4, grid=4, ascent_starts=2, ascent_steps=5)
    for module in (automech.cli, automech.evaluation, automech.evaluation.protocol):
        monkeypatch.setattr(module, "THOROUGH", small, raising=False)
    monkeypatch.setattr(automech.evaluation.regret, "THOROUGH", small)
    monkeypatch.setenv("AUTOMECH_THREADS", "1")  # the CLI sets torch's threads at start
    s = cached_setting("2x2-uniform")
    mech = RegretNetMechanism(s, hidden=8, layers=1, init_seed=3)  # differentiable: ascent too
    automech.save(mech, tmp_path / "run")
    result = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "run"), "--thorough", "--samples", "300", "--json"]
    )
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["results"]["regretnet"]
    assert row["samples"] == 300 and row["regret_samples"] == 37
    expected = evaluate(mech, samples=300, search=small)
    assert expected.regret_mean > 1e-3  # a random network is far from truthful
    assert row["regret_mean"] == pytest.approx(expected.regret_mean, rel=1e-6)
    assert row["regret_max"] == pytest.approx(expected.regret_max, rel=1e-6)
    assert row["revenue"] == pytest.approx(expected.revenue, rel=1e-9)


FOUR_PROFILES = {
    "name": "four-profiles",
    "bidders": 2,
    "items": 1,
    "prior": {
        "kind": "discrete",
        "profiles": [[[1.0], [2.0]], [[3.0], [1.0]], [[2.0], [2.0]], [[4.0], [3.0]]],
        "probabilities": [0.1, 0.2, 0.3, 0.4],
    },
}


def test_a_finite_prior_is_evaluated_exactly_and_the_lp_optimum_comes_back(tmp_path):
    """Listed profiles: revenue, welfare, IR and regret are expectations over the
    support, so the LP's own optimum comes back to 1e-9 (not a Monte Carlo estimate)."""
    from typer.testing import CliRunner

    from automech.cli import app
    from automech.experiment import train
    from automech.problems import Setting

    s = Setting.from_dict(FOUR_PROFILES)
    _, run = train(s, "lp", {}, seed=0, out=tmp_path / "lp", eval_samples=1000)
    optimum = run.read_json("lp.json")["objective"]
    metrics = run.read_json("metrics.json")
    assert metrics["exact"] and metrics["samples"] == 4 and metrics["revenue_se"] == 0.0
    assert metrics["revenue"] == pytest.approx(optimum, abs=1e-9)
    assert metrics["regret_mean"] == pytest.approx(0.0, abs=1e-9)
    result = CliRunner().invoke(app, ["evaluate", str(run.path), "--json"])
    assert result.exit_code == 0, result.output
    row = next(iter(__import__("json").loads(result.stdout)["results"].values()))
    assert row["revenue"] == pytest.approx(optimum, abs=1e-9)


def test_exact_expectations_match_a_hand_computation():
    from automech.problems import Setting

    s = Setting.from_dict(FOUR_PROFILES)
    mech = PostedPrice(s, prices=[2.5])
    report = evaluate(mech, samples=10, search=None)
    # the price 2.5 sells at profiles 2 (to bidder 0, 3 >= 2.5) and 4 (4 >= 2.5)
    assert report.exact and report.revenue == pytest.approx(2.5 * (0.2 + 0.4), abs=1e-12)
    assert report.welfare == pytest.approx(3 * 0.2 + 4 * 0.4, abs=1e-12)


def test_a_finite_prior_too_large_to_enumerate_is_sampled_and_says_so():
    from automech.problems import get_setting

    report = evaluate(cached_mechanism("vcg", "2x2-uniform"), samples=500, search=None)
    assert not report.exact and report.note is None  # a continuous prior
    big = get_setting("B-3x10-cp1-cd0")  # 2^30 Bernoulli profiles
    from automech.mechanisms import SeparableOPT

    report = evaluate(SeparableOPT(big), samples=500, search=None)
    assert not report.exact and "1,073,741,824 profiles" in report.note

"""The evaluation protocol: zero regret of truthful mechanisms, positive regret of the
first-price auction, IR/feasibility accounting, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from automech import Evaluation, RegretSearch, evaluate
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
    assert report.regret_samples == 100
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


def test_evaluation_to_dict_is_complete():
    report = evaluate(
        PostedPrice(cached_setting("2x2-uniform"), prices=[0.5, 0.5]), samples=500, search=SMALL
    )
    assert isinstance(report, Evaluation)
    d = report.to_dict()
    for key in (
        "revenue",
        "revenue_se",
        "welfare",
        "ir_violation_rate",
        "regret_mean",
        "regret_max",
        "samples",
        "infeasible_rate",
        "search",
        "seconds",
    ):
        assert key in d


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

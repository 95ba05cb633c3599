"""The power of the misreport search, stage by stage, and the budget ladder.

Each planted mechanism below hides a profitable lie that exactly one stage of the search
reaches (gradient ascent, the per-item line searches, their second round, the joint grid,
the gradient-free local search): the full default search finds the whole regret, and the
search with that stage's budget set to 0 misses most of it, so removing any stage fails a
test.  The planted mechanisms sell nothing to their single bidder and pay it a rebate
``r(b)`` that depends on its report only, so the exact regret at a profile v is
``max_b r(b) - r(v)``.  The first-price auction's regret is checked against its closed
form, and the ladder's rungs against their definition.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from automech import Setting, evaluate
from automech.errors import EvaluationError
from automech.evaluation import Ladder, RegretSearch, converged_regret
from automech.evaluation.ladder import scaled_search
from automech.evaluation.protocol import TEST_SEED, adjusted_revenue
from automech.mechanisms import FirstPrice, Mechanism
from conftest import cached_mechanism

PROFILES = 100
#: The default line-search grid of U[0, 1]: k / 63.
LINE = RegretSearch().line_points - 1


class Rebate(Mechanism):
    """Allocates nothing and pays the single bidder ``rebate(b)`` for its report b."""

    name = "planted-rebate"
    differentiable = True

    def __init__(self, setting: Setting, rebate: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__(setting)
        self.rebate = rebate

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros_like(bids), -self.rebate(bids)


class NoGradientRebate(Rebate):
    differentiable = False


def uniform(items: int, bidders: int = 1) -> Setting:
    return Setting.from_dict({"bidders": bidders, "items": items, "prior": {"kind": "uniform"}})


def window(b: torch.Tensor, centre: float, width: float) -> torch.Tensor:
    """A tent of height 1 and half-width ``width`` at ``centre``: 0 (and no gradient)
    outside it."""
    return torch.relu(1 - (b - centre).abs() / width)


def regret(mech: Mechanism, **budget) -> float:
    search = RegretSearch(profiles=PROFILES, **budget)
    report = evaluate(mech, samples=PROFILES, search=search)
    assert report.regret_mean is not None
    return report.regret_mean


def exact_regret(mech: Rebate, best: float) -> float:
    """Mean over the test profiles of ``best - rebate(v)``."""
    v = torch.as_tensor(mech.setting.test_profiles(PROFILES, TEST_SEED))
    return float((best - mech.rebate(v[:, 0])).mean())


# ------------------------------------------------------------------ one stage each


def test_only_gradient_ascent_reaches_a_sharp_peak_between_the_line_grid_points():
    """A sharp peak ``1 / (1 + (|b - c|^2 / w^2)^2)`` (w = 0.005) at a point c of 4 items
    whose every coordinate lies midway between line-grid points: the line searches stop
    0.008 off in each item (rebate ~0.01), random points are farther, there is no joint
    grid at m = 4; Adam, normalising the vanishing gradient, climbs to the peak."""
    c = torch.tensor([(k + 0.5) / LINE for k in (12, 40, 25, 55)], dtype=torch.float64)
    mech = Rebate(uniform(4), lambda b: 1 / (1 + (((b - c) ** 2).sum(-1) / 0.005**2) ** 2))
    exact = exact_regret(mech, 1.0)
    assert exact > 0.99
    assert regret(mech) == pytest.approx(exact, abs=1e-3)
    assert regret(mech, ascent_steps=0) < 0.05 * exact


def test_only_the_line_search_reaches_a_lie_in_one_item():
    """Item 0 reported at exactly 10/63 (within 1e-4) earns 1, whatever the other three
    items say: a point of the line grid, off the scaled truths, reached by random points
    in ~5 % of profiles, without gradient outside the window, no joint grid at m = 4."""
    mech = Rebate(uniform(4), lambda b: window(b[..., 0], 10 / LINE, 1e-4))
    exact = exact_regret(mech, 1.0)
    assert regret(mech) == pytest.approx(exact, abs=1e-9)
    assert regret(mech, line_points=0) < 0.2 * exact


def test_the_second_line_search_round_reaches_a_lie_that_needs_two_items_in_turn():
    """Item 1 at 50/63 earns 1, and then item 0 at 10/63 doubles it; items are visited in
    order 0, 1, so one round finds only the first half, the second round both."""

    def rebate(b):
        return window(b[..., 1], 50 / LINE, 1e-4) * (1 + window(b[..., 0], 10 / LINE, 1e-4))

    mech = Rebate(uniform(4), rebate)
    exact = exact_regret(mech, 2.0)
    assert regret(mech) == pytest.approx(exact, abs=1e-9)
    assert regret(mech, line_rounds=1) < 0.6 * exact


def test_only_the_joint_grid_reaches_a_lie_in_both_items_at_once():
    """Both items within 1e-3 of (4/15, 11/15), a point of the 16 x 16 joint grid, earn 1;
    moving one item alone earns nothing (so the line searches and ascent see a flat 0),
    and random points hit the box in ~0.1 % of profiles."""
    c = torch.tensor([4 / 15, 11 / 15], dtype=torch.float64)
    mech = Rebate(uniform(2), lambda b: torch.relu(1 - (b - c).abs().amax(-1) / 1e-3))
    exact = exact_regret(mech, 1.0)
    assert regret(mech) == pytest.approx(exact, abs=1e-9)
    assert regret(mech, grid=0) < 0.05 * exact


def test_only_the_local_search_gets_a_narrow_peak_of_a_mechanism_without_gradients():
    """The sharp peak of the ascent test on a mechanism declared non-differentiable: the
    gradient-free local search, starting from the line search's point, closes the last
    0.008 per item."""
    c = torch.tensor([(k + 0.5) / LINE for k in (12, 40)], dtype=torch.float64)

    def peak(b):
        return 1 / (1 + (((b - c) ** 2).sum(-1) / 0.005**2) ** 2)

    mech = NoGradientRebate(uniform(2), peak)
    exact = exact_regret(mech, 1.0)
    assert regret(mech) > 0.9 * exact
    assert regret(mech, local_steps=0) < 0.2 * exact


# ------------------------------------------------------------------ first price, closed form


def test_first_price_regret_matches_its_closed_form():
    """Two bidders, one item, U[0, 1], first price: against a truthful opponent bidding
    v', bidder i's best bid at a profile is v' itself (ties go to bidder 0) or just above
    it, so its ex-post regret is ``(v_i - v')^+`` (mean 1/6: ``E[(X - Y)^+]`` for
    independent U[0, 1]).  The search finds it on every profile to 1e-3, never more, and
    its mean to 1e-4 of the exact mean on the same profiles, and within 1e-3 on all but
    a few of the 2,000 (bidder, profile) pairs (where the winning bids form a window
    narrower than the line grid's step that no candidate hit); the gradient-free local
    search is what closes the last 1e-3.  (The interim regret of bidding v/2 against an
    unknown opponent, ``E[v^2/4] = 1/12``, is another quantity.)"""
    s = uniform(1, bidders=2)
    profiles = 1_000
    v = s.test_profiles(profiles, TEST_SEED)[:, :, 0]
    exact = np.clip(v - v[:, ::-1], 0, None)  # (P, 2)
    full = RegretSearch(profiles=profiles)
    from automech.evaluation.regret import search_regrets

    found = search_regrets(FirstPrice(s), s, torch.as_tensor(v[:, :, None]), full, TEST_SEED)
    found = found.numpy()
    assert (found <= exact + 1e-12).all()
    assert ((found < exact - 1e-3).mean()) < 0.005
    report = evaluate(FirstPrice(s), samples=profiles, search=full)
    assert report.regret_mean == pytest.approx(exact.mean(), abs=1e-4)
    assert report.regret_per_bidder == pytest.approx(exact.mean(axis=0), abs=1e-4)
    assert abs(report.regret_mean - 1 / 6) < 4 * report.regret_se
    weaker = evaluate(
        FirstPrice(s), samples=profiles, search=RegretSearch(profiles=profiles, local_steps=0)
    )
    assert exact.mean() - weaker.regret_mean > 10 * (exact.mean() - report.regret_mean)
    # regret-adjusted revenue: (sqrt(P) - sqrt(R))^2, R summed over the two bidders
    total = sum(report.regret_per_bidder)
    assert report.revenue_adjusted == pytest.approx(
        (math.sqrt(report.revenue) - math.sqrt(total)) ** 2, rel=1e-12
    )
    assert report.revenue_adjusted < report.revenue


def test_adjusted_revenue_formula_and_edges():
    assert adjusted_revenue(0.9, 0.1) == pytest.approx((math.sqrt(0.9) - math.sqrt(0.1)) ** 2)
    assert adjusted_revenue(0.5, 0.0) == 0.5
    assert adjusted_revenue(0.1, 0.4) == 0.0  # more regret than revenue: nothing left
    assert adjusted_revenue(0.5, None) is None


def test_a_truthful_mechanism_keeps_its_revenue_and_no_search_no_adjustment():
    vcg = cached_mechanism("vcg", "2x2-uniform")
    small = RegretSearch(profiles=50, random=32, ascent_starts=2)
    report = evaluate(vcg, samples=2_000, search=small)
    assert report.revenue_adjusted == pytest.approx(report.revenue, abs=1e-6)
    assert evaluate(vcg, samples=500, search=None).revenue_adjusted is None


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"line_points": 1}, "line_points"),
        ({"line_rounds": -1}, "line_rounds"),
        ({"local_steps": -2}, "local_steps"),
        ({"local_samples": 0}, "local_samples"),
        ({"random": 2.5}, "random"),
    ],
)
def test_bad_search_budgets_are_refused(kwargs, fragment):
    with pytest.raises(EvaluationError, match=fragment):
        RegretSearch(**kwargs)


# ------------------------------------------------------------------ the ladder


def test_the_ladder_converges_at_zero_on_a_truthful_mechanism():
    vcg = cached_mechanism("vcg", "2x2-uniform")
    v = vcg.setting.test_profiles(40, TEST_SEED)
    small = RegretSearch(random=16, scales=4, grid=4, line_points=8, ascent_starts=2)
    result = converged_regret(vcg, vcg.setting, v, small, Ladder(max_rungs=3), seed=1)
    assert result.converged and result.budget == 2
    assert [r["budget"] for r in result.rungs] == [1, 2]
    assert all(r["regret_mean"] <= 1e-9 and r["seconds"] > 0 for r in result.rungs)
    assert result.regrets.shape == (40, 2) and (result.regrets <= 1e-9).all()


def test_the_ladder_on_a_network_starts_at_the_fixed_budget_and_converges():
    """On a random (untrained) RegretNet, far from truthful: the first rung is exactly
    the fixed-budget search of ``evaluate`` on the same profiles and seed, and the
    ladder converges (a smooth network's ascent finds the same lies at twice the
    budget); the Evaluation's regret figures are the last rung's."""
    from automech.mechanisms.learned.regretnet import RegretNetMechanism

    s = uniform(2, bidders=2)
    mech = RegretNetMechanism(s, hidden=8, layers=1, init_seed=3)
    small = RegretSearch(profiles=30, random=16, grid=4, line_points=8, ascent_starts=2)
    fixed = evaluate(mech, samples=30, seed=7, search=small)
    climbed = evaluate(mech, samples=30, seed=7, search=small, ladder=True)
    rungs = climbed.regret_ladder
    assert rungs is not None and rungs[0]["budget"] == 1
    assert rungs[0]["regret_mean"] == pytest.approx(fixed.regret_mean, rel=1e-12)
    assert fixed.regret_mean > 1e-3 and fixed.regret_ladder is fixed.regret_converged is None
    assert climbed.regret_converged and climbed.regret_budget == rungs[-1]["budget"]
    assert climbed.regret_mean == rungs[-1]["regret_mean"] >= fixed.regret_mean
    assert climbed.regret_max == rungs[-1]["regret_max"]
    assert climbed.search == small.to_dict()
    with pytest.raises(EvaluationError, match="fixed budget"):
        evaluate(mech, samples=30, search=small, ladder=True, thorough=True)


def test_the_ladder_is_monotone_and_says_when_it_has_not_converged():
    """Without line searches, the one-item window of the line-search test is found only
    by random points, in a share of profiles that doubles with each rung: every rung's
    mean and max rise, no profile's regret ever falls, and the verdict is "not
    converged" with every rung's figures."""
    mech = Rebate(uniform(4), lambda b: window(b[..., 0], 10 / LINE, 1e-4))
    v = mech.setting.test_profiles(PROFILES, TEST_SEED)
    base = RegretSearch(random=256, line_points=0)
    result = converged_regret(mech, mech.setting, v, base, Ladder(max_rungs=3), seed=5)
    assert not result.converged and result.budget is None
    assert [r["budget"] for r in result.rungs] == [1, 2, 4]
    means = [r["regret_mean"] for r in result.rungs]
    assert 0 < means[0] and means[1] > 1.5 * means[0] and means[2] > 1.5 * means[1]
    assert [r["regret_max"] for r in result.rungs] == sorted(r["regret_max"] for r in result.rungs)
    first = converged_regret(mech, mech.setting, v, base, Ladder(max_rungs=2), seed=5)
    assert first.rungs[0] == {**result.rungs[0], "seconds": first.rungs[0]["seconds"]}
    assert (result.regrets >= first.regrets).all()  # the best lie found is kept


def test_scaled_search_doubles_the_work_and_nests_the_line_grids():
    base = RegretSearch()
    twice = scaled_search(base, 2)
    assert (twice.random, twice.ascent_starts, twice.local_samples) == (512, 16, 8)
    assert twice.line_points == 127 and (twice.line_points - 1) % (base.line_points - 1) == 0
    assert twice.ascent_steps == base.ascent_steps and twice.profiles == base.profiles
    with pytest.raises(EvaluationError, match="max_rungs"):
        Ladder(max_rungs=1)
    with pytest.raises(EvaluationError, match="rel_tol"):
        Ladder(rel_tol=0)


def test_cli_evaluate_defaults_to_the_ladder(tmp_path):
    from typer.testing import CliRunner

    import automech
    from automech.cli import app

    automech.save(FirstPrice(uniform(1, bidders=2)), tmp_path / "fp")
    args = ["evaluate", str(tmp_path / "fp"), "--samples", "500", "--regret-profiles", "60"]
    runner = CliRunner()
    ladder = runner.invoke(app, [*args, "--json"])
    assert ladder.exit_code == 0, ladder.output
    row = json.loads(ladder.stdout)["results"]["first-price"]
    assert row["regret_converged"] is True and len(row["regret_ladder"]) >= 2
    assert row["regret_ladder"][-1]["regret_mean"] == row["regret_mean"]
    assert 0 < row["revenue_adjusted"] < row["revenue"]
    fixed = runner.invoke(app, [*args, "--fixed-budget", "--json"])
    row = json.loads(fixed.stdout)["results"]["first-price"]
    assert row["regret_ladder"] is None and row["regret_converged"] is None
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "adj. rev." in table.stdout
    assert "first-price: regret converged at budget x" in table.stdout


def test_train_final_evaluation_defaults_to_the_ladder(tmp_path):
    """``automech train`` (and ``experiment.train``) search the final regret with the
    budget ladder; ``--fixed-budget`` keeps one budget."""
    from typer.testing import CliRunner

    from automech.cli import app

    args = [
        "train", "2x2-uniform", "--method", "regretnet", "--steps", "2",
        "--set", "hidden=8", "--set", "batch_size=32", "--set", "train_profiles=64",
        "--set", "validate_every=2", "--set", "validation_samples=64",
        "--eval-samples", "400", "--regret-profiles", "40", "--no-baseline", "--json",
    ]  # fmt: skip
    runner = CliRunner()
    climbed = runner.invoke(app, [*args, "--out", str(tmp_path / "ladder")])
    assert climbed.exit_code == 0, climbed.output
    row = next(iter(json.loads(climbed.stdout)["results"].values()))
    assert len(row["regret_ladder"]) >= 2 and row["regret_converged"] is not None
    assert row["regret_ladder"][-1]["regret_mean"] == row["regret_mean"] > 0
    metrics = json.loads((tmp_path / "ladder" / "metrics.json").read_text())
    assert metrics["regret_ladder"] == row["regret_ladder"]
    fixed = runner.invoke(app, [*args, "--fixed-budget", "--out", str(tmp_path / "fixed")])
    assert fixed.exit_code == 0, fixed.output
    row = next(iter(json.loads(fixed.stdout)["results"].values()))
    assert row["regret_ladder"] is None and row["regret_converged"] is None

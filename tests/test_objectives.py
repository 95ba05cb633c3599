"""The welfare and revenue-minus-cost objectives: VCG maximises the welfare they define
(brute force over every deterministic allocation), and the evaluator's
``objective_value`` is the objective of the mechanism's outcomes on its test profiles,
both recomputed here independently."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from automech import Setting, evaluate
from automech.evaluation.protocol import TEST_SEED
from automech.mechanisms import VCG, FirstPrice
from automech.mechanisms.classical.cost_baselines import SeparableOPT

C_P, C_D = 0.6, 0.15  # production cost per item made, duplication cost per copy


def setting(objective, supply: str = "unit", valuation: str = "additive", n: int = 2, m: int = 2):
    return Setting.from_dict(
        {
            "bidders": n,
            "items": m,
            "valuation": valuation,
            "supply": supply,
            "objective": objective,
            "prior": {"kind": "uniform"},
        }
    )


COSTLY = {"kind": "revenue-minus-cost", "production_cost": C_P, "duplication_cost": C_D}

SETTINGS = {
    "welfare-additive": lambda: setting("welfare"),
    "welfare-unit-demand": lambda: setting("welfare", valuation="unit-demand", m=3),
    "costly-unlimited": lambda: setting(COSTLY, supply="unlimited", n=3),
}


def allocations(s: Setting) -> np.ndarray:
    """Every feasible 0/1 allocation (K, n, m), enumerated here from the constraints."""
    n, m = s.shape
    out = []
    for bits in itertools.product((0.0, 1.0), repeat=n * m):
        x = np.array(bits).reshape(n, m)
        if s.unit_supply and (x.sum(axis=0) > 1).any():
            continue
        if s.unit_demand and (x.sum(axis=1) > 1).any():
            continue
        out.append(x)
    return np.array(out)


def cost(s: Setting, alloc: np.ndarray) -> np.ndarray:
    """Production and duplication cost of allocations (..., n, m) under ``s``'s objective."""
    if s.objective.name != "revenue-minus-cost":
        return np.zeros(alloc.shape[:-2])
    return (C_P * alloc.max(axis=-2) + C_D * alloc.sum(axis=-2)).sum(axis=-1)


def objective(s: Setting, v: np.ndarray, alloc: np.ndarray, pay: np.ndarray) -> np.ndarray:
    if s.objective.name == "welfare":
        return (v * alloc).sum(axis=(1, 2))
    return pay.sum(axis=1) - cost(s, alloc)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_vcg_maximises_the_objectives_welfare_by_brute_force(name):
    """VCG's allocation attains the largest welfare net of production and duplication
    costs over every feasible deterministic allocation, profile by profile."""
    s = SETTINGS[name]()
    v = s.sample(300, 5)
    alloc, _ = VCG(s).outcome(v)
    table = allocations(s)  # (K, n, m)
    net = np.einsum("bnm,knm->bk", v, table) - cost(s, table)[None]  # (B, K)
    got = (v * alloc).sum(axis=(1, 2)) - cost(s, alloc)
    np.testing.assert_allclose(got, net.max(axis=1), atol=1e-12)
    assert float(s.infeasibility(torch.as_tensor(alloc)).max()) == 0.0
    if s.objective.name == "revenue-minus-cost":  # costs change the allocation
        gross = np.einsum("bnm,knm->bk", v, table).argmax(axis=1)
        assert (table[gross] != alloc).any()


@pytest.mark.parametrize(
    "name, mechanism",
    [
        ("welfare-additive", VCG),
        ("welfare-additive", FirstPrice),
        ("welfare-unit-demand", VCG),
        ("costly-unlimited", VCG),
        ("costly-unlimited", SeparableOPT),
    ],
)
def test_evaluator_objective_value_is_the_objective_on_its_profiles(name, mechanism):
    """``objective_value`` (and its standard error) is the mean of the setting's objective
    over the evaluator's test profiles ``setting.sample(samples, TEST_SEED)``."""
    s = SETTINGS[name]()
    mech = mechanism(s)
    report = evaluate(mech, samples=2_000, search=None)
    assert report.objective == s.objective.name and report.seed == TEST_SEED
    v = s.sample(2_000, TEST_SEED)
    alloc, pay = mech.outcome(v)
    per_profile = objective(s, v, alloc, pay)
    assert report.objective_value == pytest.approx(per_profile.mean(), abs=1e-9)
    assert report.objective_se == pytest.approx(
        per_profile.std(ddof=1) / math.sqrt(len(v)), rel=1e-6
    )
    assert report.revenue == pytest.approx(pay.sum(axis=1).mean(), abs=1e-9)
    assert report.welfare == pytest.approx((v * alloc).sum(axis=(1, 2)).mean(), abs=1e-9)
    if s.objective.name == "welfare":
        assert report.objective_value == pytest.approx(report.welfare, abs=1e-12)
    else:  # the costs are paid: the objective is strictly below the revenue
        assert report.objective_value < report.revenue - 0.05


def test_vcg_welfare_objective_closed_form():
    """Welfare objective, 2 additive bidders, 2 items, U[0, 1]: VCG gives each item to the
    higher value, so the objective is E[sum_j max_i v_ij] = 2 x 2/3 = 4/3."""
    s = SETTINGS["welfare-additive"]()
    report = evaluate(VCG(s), samples=20_000, search=None)
    assert abs(report.objective_value - 4 / 3) < 4 * report.objective_se

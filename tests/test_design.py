"""``automech design``: candidate selection, the choice, the budget, design.json, the CLI,
and the worked example's data file."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from automech.cli import app
from automech.design import (
    EXACT_LEARNED,
    Candidate,
    DesignResult,
    Timing,
    _choose,
    design,
    fit_steps,
    learned_candidates,
    parse_budget,
)
from automech.errors import AutomechError
from automech.experiment import load
from automech.problems import get_setting
from conftest import cached_setting
from test_cli import assert_clean_error

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QUICK = dict(samples=2_000, regret_profiles=100, max_steps=3)
runner = CliRunner()

DISCRETE_1X2 = """bidders = 1
items = 2
[prior]
kind = "discrete"
types = [[[1.0, 2.0], [3.0, 1.0], [2.0, 2.0]]]
type_probabilities = [[0.3, 0.3, 0.4]]
"""


# ------------------------------------------------------------------ the budget


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90s", 90),
        ("10m", 600),
        ("1h", 3600),
        ("1.5h", 5400),
        ("600", 600),
        (" 2M ", 120),
        (45, 45),
    ],
)
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["abc", "10x", "0", "0s", "-5s", "", "1e3", "m"])
def test_parse_budget_refuses(text):
    with pytest.raises(AutomechError, match="budget"):
        parse_budget(text)


def test_fit_steps_is_the_most_that_fit():
    t = Timing(steps=6, per_step=0.1, per_validation=0.5, fixed=2.0, evaluation=1.0, wall=3.0)
    assert t.estimate(100, 50) == pytest.approx(2 + 1 + 10 + 2 * 0.5)
    assert fit_steps(t, 1_000.0, 500, 50) == 500  # all of them fit
    steps = fit_steps(t, 20.0, 500, 50)
    assert t.estimate(steps, 50) <= 20.0 < t.estimate(steps + 1, 50)
    assert fit_steps(t, 2.5, 500, 50) == 0  # not even the fixed part fits
    # start steps (GemNet's distillation) count as training steps
    assert fit_steps(t, 20.0, 500, 50, init_ratio=1.5) < steps


# ------------------------------------------------------------------ candidate selection


def test_candidates_for_one_bidder():
    plan, skipped, unfit = learned_candidates(cached_setting("1x2-uniform"))
    assert plan == ["rochetnet"]
    assert "finite type space" in skipped["lp"]  # continuous prior: no LP with defaults
    for name in ("regretnet", "algnet"):
        assert "approximately strategyproof" in skipped[name]
    for name in ("lottery-ama", "deterministic-ama", "gemnet", "myersonnet"):
        assert name in unfit
    assert "tedi" in unfit  # unit supply


def test_candidates_for_several_bidders_and_approximate_only_when_asked():
    s = cached_setting("2x2-uniform")
    plan, skipped, _ = learned_candidates(s)
    assert plan == ["deterministic-ama", "lottery-ama", "gemnet"]
    assert {"regretnet", "algnet"} <= set(skipped)
    plan, skipped, _ = learned_candidates(s, include_approximate=True)
    assert plan == ["deterministic-ama", "lottery-ama", "gemnet", "regretnet", "algnet"]
    assert set(plan) - EXACT_LEARNED == {"regretnet", "algnet"}
    plan, _, _ = learned_candidates(cached_setting("2x1-uniform"))
    assert "myersonnet" in plan  # one item, several bidders


def test_candidates_with_costs_and_finite_types(tmp_path):
    plan, _, unfit = learned_candidates(cached_setting("U-3x2-cp1-cd0"))
    assert "tedi" in plan and "gemnet" in unfit  # unlimited supply
    _, skipped, _ = learned_candidates(cached_setting("B-1x10-cp0-cd0"))
    assert "nonzeros" in skipped["lp"]  # 1,024 types: too large an LP
    path = tmp_path / "discrete-1x2.toml"
    path.write_text(DISCRETE_1X2)
    plan, _, _ = learned_candidates(get_setting(path))
    assert plan == ["lp", "rochetnet"]


# ------------------------------------------------------------------ the choice


def _evaluated(name, kind, exact, revenue, ir=0.0, infeasible=0.0):
    metrics = {
        "revenue": revenue,
        "revenue_se": 0.01,
        "objective": "revenue",
        "objective_value": revenue,
        "ir_violation_rate": ir,
        "infeasible_rate": infeasible,
        "regret_mean": 0.0 if exact else 0.01,
    }
    return Candidate(name, kind, exact, status="evaluated", metrics=metrics)


def test_choice_is_the_best_exactly_strategyproof_ir_feasible_candidate():
    cands = [
        _evaluated("grand-bundle", "classical", True, 0.84),
        _evaluated("first-price", "classical", False, 1.30),
        _evaluated("deterministic-ama", "learned", True, 0.87),
        _evaluated("lottery-ama", "learned", True, 0.95, ir=0.01),
        _evaluated("gemnet", "learned", True, 0.99, infeasible=0.02),
        _evaluated("regretnet", "learned", False, 0.90),
        Candidate("lp", "learned", True, status="skipped", reason="continuous"),
    ]
    result = DesignResult(
        setting=cached_setting("2x2-uniform"),
        out=Path("unused"),
        candidates=cands,
        chosen=None,
        reason="",
        budget_seconds=60,
        seconds=0,
        seed=0,
        samples=1,
        regret_profiles=1,
        include_approximate=True,
    )
    _choose(result)
    assert result.chosen is cands[2] and cands[2].chosen
    assert [c.name for c in cands if c.eligible] == ["grand-bundle", "deterministic-ama"]
    why = {c.name: c.why for c in cands}
    assert "not strategyproof" in why["first-price"]
    assert "approximately strategyproof" in why["regretnet"]
    assert "violates IR" in why["lottery-ama"]
    assert "infeasible" in why["gemnet"]
    assert "below deterministic-ama" in why["grand-bundle"]
    assert why["lp"].startswith("skipped")
    assert result.reason.startswith("deterministic-ama (learned): revenue 0.8700")
    lo, hi, kind = cands[2].interval()
    assert kind == "normal" and lo == pytest.approx(0.87 - 0.0196)
    # a data prior's bootstrap interval is used as given
    cands[2].metrics["revenue_ci"] = [0.8, 0.9]
    assert cands[2].interval() == (0.8, 0.9, "bootstrap")


# ------------------------------------------------------------------ end to end


def test_design_end_to_end(tmp_path):
    out = tmp_path / "d"
    started = time.perf_counter()
    result = design("1x2-uniform", 30, out=out, **QUICK)
    assert time.perf_counter() - started < 30
    data = json.loads((out / "design.json").read_text())
    assert data["status"] == "done" and data["setting"] == "1x2-uniform"
    assert data["budget_seconds"] == 30 and data["seconds"] <= 30
    cands = {c["name"]: c for c in data["candidates"]}
    assert {"vcg", "grand-bundle", "first-price", "rochetnet", "lp", "regretnet"} <= set(cands)
    assert "myerson" in data["not_applicable"] and "gemnet" in data["not_applicable"]
    for c in cands.values():
        for key in ("kind", "revenue", "interval", "regret_mean", "regret_max", "seconds"):
            assert key in c
        assert isinstance(c["why"], str) and c["why"]
        if c["status"] == "evaluated":
            assert (out / c["run"] / "metrics.json").is_file()
            assert c["interval"][0] <= c["score"] <= c["interval"][1]
    assert cands["rochetnet"]["steps"] == 3 and cands["rochetnet"]["default_steps"] == 500
    assert cands["rochetnet"]["options"]["steps"] == 3
    assert cands["rochetnet"]["resolved_options"]["menu_size"] == 64
    assert cands["lp"]["status"] == cands["regretnet"]["status"] == "skipped"
    assert not cands["first-price"]["eligible"]
    # the chosen one: exactly strategyproof, IR, feasible, the best of those
    chosen = [c for c in cands.values() if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["name"] == data["chosen"] == result.chosen.name
    best = chosen[0]
    assert best["exactly_strategyproof"] and best["name"] != "first-price"
    assert best["ir_violation_rate"] == 0 and best["infeasible_rate"] == 0
    eligible = [c for c in cands.values() if c["eligible"]]
    assert best["score"] == max(c["score"] for c in eligible)
    # out/chosen is a run directory the other commands read
    assert load(out / "chosen").name == result.mechanism.name
    assert json.loads((out / "chosen" / "chosen.json").read_text())["candidate"] == best["name"]
    assert (out / "chosen" / "metrics.json").is_file()
    assert (out / "report.html").stat().st_size > 1000
    assert not (out / "probes").exists()
    # a rerun into the same directory starts afresh; another directory is refused
    design("1x2-uniform", 30, out=out, methods=(), **QUICK)
    again = json.loads((out / "design.json").read_text())
    assert {c["name"]: c["status"] for c in again["candidates"]}["rochetnet"] == "skipped"
    assert not (out / "candidates" / "rochetnet").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(AutomechError, match="something else than a design"):
        design("1x2-uniform", 30, out=other, **QUICK)


def test_design_respects_the_budget(tmp_path):
    """Without a step cap, the deterministic AMA's 1,000 default steps are scaled down
    (or the method skipped) when the probe says they do not fit in its share."""
    budget = 15.0
    started = time.perf_counter()
    result = design(
        "2x2-uniform",
        budget,
        out=tmp_path / "d",
        samples=2_000,
        regret_profiles=100,
        methods=("deterministic-ama",),
    )
    spent = time.perf_counter() - started
    assert spent <= budget * 1.25 + 3, spent
    ama = next(c for c in result.candidates if c.name == "deterministic-ama")
    assert ama.probe is not None and ama.default_steps == 1000
    if ama.status == "evaluated":
        assert ama.steps is not None and ama.options["steps"] == ama.steps
        p = ama.probe
        assert p["estimate_seconds"] <= p["share_seconds"] - p["seconds"] + 1e-6
    else:
        assert ama.status == "skipped" and "does not fit" in ama.reason


# ------------------------------------------------------------------ the CLI


def invoke(*args):
    return runner.invoke(app, ["design", *map(str, args)])


def test_cli_table(tmp_path):
    result = invoke(
        "1x2-uniform", "--budget", "30s", "--out", tmp_path / "d", "--max-steps", "3",
        "--samples", "2000", "--regret-profiles", "100",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name in ("grand-bundle", "first-price", "rochetnet", "regretnet", "95% interval"):
        assert name in out
    chosen = [line for line in out.splitlines() if line.startswith("chosen: ")]
    assert len(chosen) == 1 and "exactly strategyproof" in chosen[0]
    assert "skipped lp:" in out
    data = json.loads((tmp_path / "d" / "design.json").read_text())
    assert chosen[0].startswith(f"chosen: {data['chosen']} ")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["1x2-uniform", "--budget", "ten"], "budget must be a duration"),
        (["1x2-uniform", "--budget", "0"], "budget must be more than 0"),
        (["no-such-setting"], "unknown setting"),
        (["seq-sales-2x2"], "dynamic setting"),
    ],
)
def test_cli_clean_errors(args, fragment):
    assert_clean_error(invoke(*args), fragment)


# ------------------------------------------------------------------ the worked example


def test_example_data_file_is_what_make_bids_writes():
    spec = importlib.util.spec_from_file_location("make_bids", EXAMPLES / "make_bids.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    values = module.bids()
    assert values.shape == (2_000, 2)
    lines = (EXAMPLES / "bids-1x2.csv").read_text().splitlines()
    assert lines[0] == "bidder0_item0,bidder0_item1" and len(lines) == 2_001
    assert lines[1:] == [f"{a:.2f},{b:.2f}" for a, b in values]
    s = get_setting(EXAMPLES / "data-1x2.toml")
    assert s.name == "data-1x2" and s.shape == (1, 2)
    assert s.prior.kind == "data"

"""bench/leaderboard.py at a tiny size: how strategyproofness is known, the converged-regret
ladder, regret-adjusted revenue and the published figures are consistent."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from automech.reference import references

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "leaderboard.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "AUTOMECH_DEVICE": "cpu"}


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=ENV
    )


@pytest.fixture(scope="module")
def module():
    spec = importlib.util.spec_from_file_location("leaderboard_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("board") / "board.json"
    done = bench(
        "--settings",
        "1x2-uniform",
        "--methods",
        "rochetnet,regretnet",
        "--set",
        "steps=5",
        "--samples",
        "2000",
        "--regret-profiles",
        "20",
        "--out",
        str(out),
        "--markdown",
    )
    assert done.returncode == 0, done.stderr
    printed, end = json.JSONDecoder().raw_decode(done.stdout)
    return json.loads(out.read_text()), printed, done.stdout[end:]


def test_rows_and_how_strategyproof(tiny):
    result, printed, _ = tiny
    assert printed == result
    rows = {r["method"]: r for r in result["rows"]}
    assert [r["method"] for r in result["rows"]] == ["rochetnet", "regretnet"]
    assert all(r["status"] == "ok" for r in rows.values()) and result["errors"] == []
    assert rows["rochetnet"]["strategyproof"] == "by construction"
    assert rows["regretnet"]["strategyproof"] == "sampled"
    # the default RegretNet is a tanh network: no certificate, and the row says why
    assert "activation=relu" in rows["regretnet"]["strategyproof_why"]
    assert rows["regretnet"]["certificate"] is None
    for r in rows.values():
        assert r["options"] == {"steps": 5} and r["training"]["steps_used"] <= 5
        assert r["samples"] == 2000 and r["revenue_se"] > 0
        assert r["baseline"]["samples"] == 2000
        assert r["gap_to_baseline"] == pytest.approx(r["revenue"] - r["baseline"]["revenue"])
        assert r["train_wall_seconds"] > 0 and r["audit_seconds"] > 0


def test_ladder_fields(tiny, module):
    result = tiny[0]
    assert result["ladder"]["max_rungs"] == 4
    for r in result["rows"]:
        rungs = r["regret_ladder"]
        assert 2 <= len(rungs) <= 4 and r["regret_profiles"] == 20
        assert [g["budget"] for g in rungs] == [2**i for i in range(len(rungs))]
        means = [g["regret_mean"] for g in rungs]
        assert means == sorted(means)  # a running maximum over rungs
        last = rungs[-1]
        assert (r["regret_mean"], r["regret_se"], r["regret_max"]) == (
            last["regret_mean"],
            last["regret_se"],
            last["regret_max"],
        )
        assert r["regret_max"] >= r["regret_mean"] >= 0
        if r["regret_converged"]:
            assert r["regret_budget"] == last["budget"]
        else:
            assert r["regret_budget"] is None and len(rungs) == 4
        # (sqrt P - sqrt R)^2, R the mean regret summed over bidders (one bidder here)
        gap = math.sqrt(r["revenue"]) - math.sqrt(r["regret_mean"])
        assert r["revenue_adjusted"] == pytest.approx(max(gap, 0.0) ** 2, abs=1e-9)
        assert r["revenue_adjusted"] <= r["revenue"]
        text = module.converged_text(r)
        assert text.startswith("yes" if r["regret_converged"] else "no")


def test_published_and_optimum(tiny):
    result = tiny[0]
    figures = result["settings"]["1x2-uniform"]["published"]
    optimum = [p for p in figures if p["optimum"]]
    assert len(optimum) == 1 and optimum[0]["revenue"] == 0.549201
    assert "Manelli-Vincent" in optimum[0]["what"] and optimum[0]["source"]
    for r in result["rows"]:
        assert r["optimum"] == pytest.approx((12 + 2 * math.sqrt(2)) / 27, abs=1e-6)
        assert r["ratio_to_optimum"] == pytest.approx(r["revenue"] / r["optimum"])
        assert r["published"] == []  # benchmarks.md has no 1x2 RochetNet / RegretNet row


def test_markdown(tiny, module):
    result, _, table = tiny
    lines = [line for line in table.splitlines() if line.startswith("| 1x2-uniform |")]
    rochet = next(line for line in lines if "| rochetnet |" in line)
    assert "| by construction |" in rochet and "optimum 0.5492" in rochet
    assert any("| regretnet |" in line and "| sampled |" in line for line in lines)
    revenue = result["rows"][0]["revenue"]
    assert f"| rochetnet | {module._num(revenue)} ± " in table
    assert "| 1x2-uniform | optimum (Manelli-Vincent 2006)" in table


def test_published_table_matches_the_packaged_references(module):
    """Every exact or published figure automech ships for these settings is on the board
    with the same revenue, and every method-specific figure names a learned method."""
    for name in module.SETTINGS:
        ours = {p["revenue"] for p in module.PUBLISHED[name]}
        for ref in references(name):
            assert ref.revenue in ours, (name, ref.method, ref.revenue)
        for p in module.PUBLISHED[name]:
            assert p["method"] is None or p["method"] in module.LEARNED, p
            assert p["source"] and p["regret"] is not None


def test_how_strategyproof_rules(module):
    one = SimpleNamespace(setting=SimpleNamespace(num_bidders=1))
    two = SimpleNamespace(setting=SimpleNamespace(num_bidders=2))
    assert module.how_strategyproof("lp", one, None)["how"] == "by construction"
    assert module.how_strategyproof("lp", two, None)["how"] == "sampled"
    adjusted = SimpleNamespace(adjusted=True, setting=two.setting)
    assert module.how_strategyproof("gemnet", adjusted, None)["how"] == "by construction"
    raw = SimpleNamespace(adjusted=False, setting=two.setting)
    assert module.how_strategyproof("gemnet", raw, None)["how"] == "sampled"
    for method in ("rochetnet", "lottery-ama", "deterministic-ama", "myersonnet"):
        assert module.how_strategyproof(method, one, None)["how"] == "by construction"
    cert = {
        "profiles": 3,
        "proven": True,
        "certified_regret_mean": 0.01,
        "certified_regret_max": 0.02,
    }
    got = module.how_strategyproof("regretnet", two, cert)
    assert got["how"] == "certified" and "3 profiles" in got["why"]
    # several bidders: the LP is skipped, with the reason
    from automech.problems import get_setting

    assert "one-bidder" in module.refusal("lp", get_setting("2x2-uniform"))
    assert module.refusal("lp", get_setting("1x2-uniform")) is None
    assert module.options_for("lp", get_setting("1x2-uniform"), {"steps": 5}, 15) == {"grid": 15}


def test_unknown_setting_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "x.json"
    done = bench("--settings", "no-such-setting", "--out", str(out))
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "no-such-setting" in done.stderr
    assert not out.exists()


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, module):
    for args in (
        ["--methods", "no-such"],
        ["--set", "stepz=3"],
        ["--set", "steps=-5"],
        ["--max-rungs", "1"],
        ["--samples", "0"],
    ):
        with pytest.raises(SystemExit) as exit_:
            module.main([*args, "--out", str(tmp_path / "x.json")])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "x.json").exists()


def test_fold_and_render(tiny, tmp_path):
    """--fold merges a second process's results file (its rows replace the same
    (setting, method) rows, the others stay, settings order kept); --render prints the
    tables of a results file without running anything."""
    board, _, _ = tiny
    rochet = {**board, "rows": [r for r in board["rows"] if r["method"] == "rochetnet"]}
    regret = {
        **board,
        "rows": [r for r in board["rows"] if r["method"] == "regretnet"],
        "command": "python bench/leaderboard.py --methods regretnet",
    }
    base, other = tmp_path / "base.json", tmp_path / "other.json"
    base.write_text(json.dumps(rochet))
    other.write_text(json.dumps(regret))
    done = bench("--fold", str(other), "--out", str(base))
    assert done.returncode == 0, done.stderr
    folded = json.loads(base.read_text())
    assert [r["method"] for r in folded["rows"]] == ["rochetnet", "regretnet"]
    assert folded["folded"] == [regret["command"]]
    shown = bench("--render", "--out", str(base))
    assert shown.returncode == 0 and "| 1x2-uniform | regretnet |" in shown.stdout
    for args in (["--fold", str(tmp_path / "missing.json")], ["--render"]):
        bad = bench(*args, "--out", str(tmp_path / "none.json"))
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr

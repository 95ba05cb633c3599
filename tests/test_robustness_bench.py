"""bench/robustness.py at a tiny size: its rows, skips, optima and summary are consistent."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "robustness.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "AUTOMECH_DEVICE": "cpu"}


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=ENV
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("rob") / "rob.json"
    done = bench(
        "--priors",
        "1x2-uniform-100,2x1-discrete-4",
        "--methods",
        "lp,rochetnet",
        "--set",
        "steps=5",
        "--samples",
        "2000",
        "--regret-profiles",
        "10",
        "--out",
        str(out),
        "--markdown",
    )
    assert done.returncode == 0, done.stderr
    printed, end = json.JSONDecoder().raw_decode(done.stdout)
    return json.loads(out.read_text()), printed, done.stdout[end:]


def test_rows_and_skips(tiny):
    result, printed, _ = tiny
    assert printed == result
    assert [(r["prior"], r["method"]) for r in result["rows"]] == [
        ("1x2-uniform-100", "rochetnet"),
        ("2x1-discrete-4", "lp"),
    ]
    skipped = {(s["prior"], s["method"]): s["reason"] for s in result["skipped"]}
    assert set(skipped) == {("1x2-uniform-100", "lp"), ("2x1-discrete-4", "rochetnet")}
    assert "finite priors only" in skipped[("1x2-uniform-100", "lp")]
    assert all(r["status"] == "ok" for r in result["rows"])


def test_continuous_row(tiny):
    row = tiny[0]["rows"][0]
    # Manelli-Vincent optimum scaled by 100
    assert row["optimum"] == pytest.approx(100 * (12 + 2 * math.sqrt(2)) / 27)
    assert row["ratio_to_optimum"] == pytest.approx(row["revenue"] / row["optimum"])
    assert row["within_1pct_of_optimum"] == (row["revenue"] >= 0.99 * row["optimum"])
    assert not row["exact"] and row["revenue_se"] > 0 and row["samples"] == 2000
    assert row["baseline"]["samples"] == 2000
    gap = row["revenue"] - row["baseline"]["revenue"]
    assert row["gap_to_baseline"] == pytest.approx(gap)
    assert row["options"] == {"steps": 5} and row["training"]["steps_used"] <= 5
    assert row["regret_profiles"] == 10 and row["regret_max"] >= row["regret_mean"] >= 0
    assert 0 <= row["ir_violation_rate"] <= 1 and row["wall_seconds"] > 0


def test_finite_row_is_exact_at_the_lp_optimum(tiny):
    result = tiny[0]
    row = result["rows"][1]
    assert row["exact"] and row["revenue_se"] == 0
    assert row["optimum"] == result["priors"]["2x1-discrete-4"]["optimum"]
    assert row["revenue"] == pytest.approx(row["optimum"], abs=1e-9)
    assert row["below_baseline"] is False and row["gap_to_baseline"] >= -1e-9
    assert row["options"] == {}  # the LP has no `steps` option


def test_summary_and_table(tiny):
    result, _, table = tiny
    s = result["summary"]
    below = [r for r in result["rows"] if r["below_baseline"]]
    assert s["rows"] == 2 and s["skipped"] == 2 and s["errors"] == []
    assert s["at_or_above_baseline"] == 2 - len(below) and len(s["below_baseline"]) == len(below)
    assert s["with_known_optimum"] == 2
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    lp = result["rows"][1]["revenue"]
    assert len(lines) == 1 + 2 and f"| 2x1-discrete-4 | lp | {lp:.4f} ± exact |" in table


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("robustness_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for args in (["--priors", "no-such"], ["--set", "stepz=3"], ["--set", "steps=-5"]):
        with pytest.raises(SystemExit) as exit_:
            module.main([*args, "--out", str(tmp_path / "x.json")])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "x.json").exists()

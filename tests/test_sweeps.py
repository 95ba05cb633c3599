"""Sweeps: the sweep file, the results store, local and Ray backends, kill and resume."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from automech.errors import AutomechError
from automech.mechanisms import MECHANISMS
from automech.methods import METHODS
from automech.sweeps import Store, SweepError, aggregate, load_sweep, parse_sweep, render
from automech.sweeps.runner import run_sweep
from automech.training import FitContext, Method, Options, option

SETTINGS = ["1x2-uniform", "2x2-uniform"]
CLASSICAL = ["grand-bundle", "posted-price"]


def spec(name: str = "test", **extra) -> dict:
    base = {
        "name": name,
        "settings": SETTINGS,
        "methods": CLASSICAL,
        "seeds": [0, 1],
        "eval_samples": 2000,
        "regret_profiles": 50,
    }
    base.update(extra)
    return base


def quiet(_line: str) -> None:
    pass


def table(db: Path, sweep: str) -> str:
    with Store(db, create=False) as store:
        return render(aggregate(store.rows(sweep)), "table", title=sweep)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The 2 settings x 2 methods x 2 seeds sweep on the local pool (2 workers)."""
    tmp = tmp_path_factory.mktemp("local")
    db = tmp / "results.db"
    with Store(db) as store:
        summary = run_sweep(
            parse_sweep(spec()),
            store,
            backend="local",
            workers=2,
            runs_root=tmp / "runs",
            log=quiet,
        )
    return db, tmp, summary


# ----------------------------------------------------------------------- the local backend


def test_local_sweep_runs_every_job_and_tabulates(local_run):
    db, tmp, summary = local_run
    assert summary["ran"] == 8 and summary["done"] == 8 and summary["failed"] == 0
    assert "2 worker(s) x" in summary["backend"]
    with Store(db, create=False) as store:
        rows = store.rows("test")
    assert len(rows) == 8
    for row in rows:
        assert row["status"] == "done" and row["attempts"] == 1
        assert row["git_rev"]
        assert row["metrics"]["revenue"] > 0
        run_dir = Path(row["run_dir"])
        name = f"{row['setting']}-{row['method']}-seed{row['seed']}"
        assert run_dir == tmp / "runs" / "test" / name
        assert (run_dir / "metrics.json").is_file() and (run_dir / "checkpoint.pt").is_file()
    groups = aggregate(rows)
    assert len(groups) == 4 and all(g["done"] == 2 for g in groups)
    text = table(db, "test")
    for name in (*SETTINGS, *CLASSICAL, "revenue mean ± std", "best (seed)"):
        assert name in text


def test_rerun_does_nothing_new(local_run):
    db, tmp, _ = local_run
    with Store(db) as store:
        before = {r["id"]: (r["attempts"], r["finished"]) for r in store.rows("test")}
        summary = run_sweep(
            parse_sweep(spec()),
            store,
            backend="local",
            workers=2,
            runs_root=tmp / "runs",
            log=quiet,
        )
        after = {r["id"]: (r["attempts"], r["finished"]) for r in store.rows("test")}
    assert summary["ran"] == 0 and summary["already_done"] == 8
    assert before == after


def test_ray_backend_gives_the_same_table(local_run, tmp_path):
    pytest.importorskip("ray")
    db, _, _ = local_run
    ray_db = tmp_path / "ray.db"
    with Store(ray_db) as store:
        summary = run_sweep(
            parse_sweep(spec()),
            store,
            backend="ray",
            workers=2,
            runs_root=tmp_path / "runs",
            log=quiet,
        )
    assert summary["done"] == 8 and summary["backend"].startswith("ray")
    assert table(ray_db, "test") == table(db, "test")
    with Store(db, create=False) as a, Store(ray_db, create=False) as b:
        numbers = [render(aggregate(s.rows("test")), "csv") for s in (a, b)]
    assert numbers[0] == numbers[1]


# ----------------------------------------------------------------------- kill and resume


def _alive_in_group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")
def test_killed_sweep_resumes_without_redoing_finished_jobs(tmp_path):
    sweep_file = tmp_path / "kill.toml"
    sweep_file.write_text(
        'name = "kill"\nsettings = ["1x2-uniform", "2x2-uniform"]\n'
        'methods = ["grand-bundle", "posted-price"]\nseeds = [0, 1]\n'
        "eval_samples = 400000\nregret_profiles = 1000\n"
    )
    db = tmp_path / "results.db"
    cmd = [
        sys.executable,
        "-c",
        "import sys; from automech.cli import app; sys.argv[0] = 'automech'; app()",
        "sweep",
        str(sweep_file),
        "--db",
        str(db),
        "--runs-root",
        str(tmp_path / "runs"),
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.time() + 120
        done = 0
        while time.time() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=5) as con:
                        done = con.execute(
                            "SELECT COUNT(*) FROM jobs WHERE status = 'done'"
                        ).fetchone()[0]
                except sqlite3.OperationalError:  # table not created yet
                    done = 0
                if done:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read().decode()
        assert done >= 1
        proc.kill()  # SIGKILL: no cleanup at all in the driver
        proc.wait(timeout=30)
        deadline = time.time() + 20  # its pool workers die with it
        while _alive_in_group(proc.pid) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive_in_group(proc.pid)
    finally:
        if proc.poll() is None or _alive_in_group(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()

    with Store(db) as store:
        killed = {r["id"]: r for r in store.rows("kill")}
        finished = {i: r["finished"] for i, r in killed.items() if r["status"] == "done"}
        assert 1 <= len(finished) < 8
        assert any(r["status"] == "running" for r in killed.values())
        summary = run_sweep(
            load_sweep(sweep_file),
            store,
            backend="local",
            workers=2,
            runs_root=tmp_path / "runs",
            log=quiet,
        )
        rows = {r["id"]: r for r in store.rows("kill")}
    assert summary["already_done"] == len(finished)
    assert summary["ran"] == 8 - len(finished)
    assert all(r["status"] == "done" for r in rows.values())
    for i, stamp in finished.items():  # not redone
        assert rows[i]["attempts"] == 1 and rows[i]["finished"] == stamp
    for i, r in killed.items():
        if r["status"] == "running":  # interrupted: run again, in the same run directory
            assert rows[i]["attempts"] == 2 and rows[i]["run_dir"] == r["run_dir"]


@dataclass(frozen=True)
class FlakyOptions(Options):
    method = "flaky"
    steps: int = option(10, "steps", low=1)
    lr: float = option(0.1, "step size", low=0)


class Flaky(Method):
    """Fails once after leaving a partial run behind; the second attempt resumes."""

    name = "flaky"
    Options = FlakyOptions
    mechanism = MECHANISMS["grand-bundle"]

    def fit(self, ctx: FitContext):
        marker = ctx.run.path / "partial.json"
        if not marker.exists():
            marker.write_text(json.dumps({"step": ctx.options.steps // 2}))
            raise RuntimeError("simulated crash half way")
        ctx.run.log({"resumed_from": json.loads(marker.read_text())["step"]})
        return MECHANISMS["grand-bundle"](ctx.setting)


def test_failed_job_is_retried_in_its_run_directory(tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "flaky", Flaky())
    sweep = parse_sweep(spec("flaky", settings=["1x2-uniform"], methods=["flaky"], seeds=[3]))
    with Store(tmp_path / "r.db") as store:
        first = run_sweep(sweep, store, workers=1, runs_root=tmp_path, log=quiet)
        assert first["failed"] == 1
        [row] = store.rows("flaky")
        assert row["status"] == "failed" and "simulated crash" in row["error"]
        second = run_sweep(sweep, store, workers=1, runs_root=tmp_path, log=quiet)
        [row] = store.rows("flaky")
    assert second["done"] == 1 and row["status"] == "done" and row["attempts"] == 2
    history = (Path(row["run_dir"]) / "history.jsonl").read_text()
    assert '"resumed_from": 5' in history


# ----------------------------------------------------------------------- dynamic settings


def test_a_sweep_over_dynamic_settings(tmp_path):
    """Dynamic settings and methods go through the same sweep file, jobs, store and table;
    methods of the other kind are skipped with a note; a minimised objective (makespan)
    has its lowest value as best."""
    sweep = parse_sweep(
        {
            "name": "dyn",
            "settings": ["seq-sales-2x2", "scheduling-2x3", "1x2-uniform"],
            "methods": ["grid-search", "zeroth-order", "grand-bundle"],
            "seeds": [0, 1],
            "eval_samples": 500,
            "regret_profiles": 20,
            "options": {
                "steps": 2,
                "batch_size": 8,
                "validation_samples": 100,
                "zeroth-order": {"perturbations": 2, "validate_every": 1},
            },
            "grid": {"grid-search": {"candidates": [4, 8]}, "profiles": [50]},
        }
    )
    jobs = {(j.setting, j.method): j for j in sweep.runnable}
    assert set(jobs) == {
        ("seq-sales-2x2", "grid-search"),
        ("seq-sales-2x2", "zeroth-order"),
        ("scheduling-2x3", "grid-search"),
        ("scheduling-2x3", "zeroth-order"),
        ("1x2-uniform", "grand-bundle"),
    }
    assert jobs["seq-sales-2x2", "zeroth-order"].options == {
        "batch_size": 8,
        "perturbations": 2,
        "steps": 2,
        "validate_every": 1,
        "validation_samples": 100,
    }
    assert {j.options["candidates"] for j in sweep.runnable if j.method == "grid-search"} == {4, 8}
    assert any("skipped grand-bundle on seq-sales-2x2" in n for n in sweep.notes)
    assert any("skipped zeroth-order on 1x2-uniform" in n for n in sweep.notes)
    assert any("'steps' not used by grid-search" in n for n in sweep.notes)
    with Store(tmp_path / "r.db") as store:
        summary = run_sweep(sweep, store, workers=1, runs_root=tmp_path, log=quiet)
        rows = store.rows("dyn")
    assert summary["failed"] == 0, [r["error"] for r in rows if r["status"] == "failed"]
    done = [r for r in rows if r["status"] == "done"]
    # 2 dynamic settings x (2 grid-search variants + 1 zeroth-order) x 2 seeds, + 2 static
    assert summary["done"] == len(done) == 14
    for r in done:
        assert (Path(r["run_dir"]) / "checkpoint.pt").is_file()
        if r["setting"] != "1x2-uniform":
            assert r["metrics"]["kind"] == "dynamic"
            assert r["metrics"]["regret_max"] <= 1e-9 and r["metrics"]["samples"] == 500
    groups = {(g["setting"], g["method"], g["variant"]): g for g in aggregate(rows)}
    sched = groups["scheduling-2x3", "zeroth-order", ""]
    assert sched["objective"] == "makespan"
    values = [
        r["metrics"]["objective_value"]
        for r in done
        if r["setting"] == "scheduling-2x3" and r["method"] == "zeroth-order"
    ]
    assert sched["metrics"]["objective_value"]["best"] == pytest.approx(min(values))
    text = render(aggregate(rows), "table", title="dyn")
    assert "seq-sales-2x2" in text and "zeroth-order" in text and "grid-search" in text


# ----------------------------------------------------------------------- the sweep file


def test_options_apply_only_to_methods_that_have_them(monkeypatch):
    monkeypatch.setitem(METHODS, "flaky", Flaky())
    sweep = parse_sweep(
        spec(
            methods=["flaky", "grand-bundle"],
            seeds=2,
            options={"steps": 20, "flaky": {"lr": 0.5}},
            grid={"steps": [20, 40]},
        )
    )
    flaky = [j for j in sweep.jobs if j.method == "flaky"]
    bundle = [j for j in sweep.jobs if j.method == "grand-bundle"]
    assert len(flaky) == 2 * 2 * 2 and len(bundle) == 2 * 2
    assert {j.options["steps"] for j in flaky} == {20, 40}
    assert all(j.options["lr"] == 0.5 for j in flaky)
    assert all(j.options == {} for j in bundle)
    assert len({j.run_dir("runs") for j in sweep.jobs}) == len(sweep.jobs)
    assert any("'steps' not used by grand-bundle" in n for n in sweep.notes)


def test_inapplicable_pairs_are_skipped_with_a_note(tmp_path):
    sweep = parse_sweep(
        spec("skip", settings=["2x2-uniform"], methods=["myerson", "posted-price"], seeds=[0])
    )
    assert any("skipped myerson on 2x2-uniform" in n for n in sweep.notes)
    with Store(tmp_path / "r.db") as store:
        summary = run_sweep(sweep, store, workers=1, runs_root=tmp_path, log=quiet)
        rows = store.rows("skip")
    assert summary["skipped"] == 1 and summary["done"] == 1
    skipped = [r for r in rows if r["method"] == "myerson"]
    assert skipped[0]["status"] == "skipped" and "one item" in skipped[0]["note"]
    text = render(aggregate(rows), "table")
    assert "skipped myerson on 2x2-uniform" in text


@pytest.mark.parametrize(
    "change, field",
    [
        ({"methods": ["grand-bundle", "no-such-method"]}, "methods[1]"),
        ({"settings": ["1x2-uniform", "9x9-nonsense"]}, "settings[1]"),
        ({"seeds": [0, -1]}, "seeds[1]"),
        ({"seeds": "four"}, "seeds"),
        ({"eval_samples": 0}, "eval_samples"),
        ({"options": {"stepz": 10}}, "options.stepz"),
        ({"methods": "grand-bundle"}, "methods"),
        ({"name": "a b/c"}, "name"),
        ({"budget": 3}, "budget"),
        ({"jobs": [{"setting": "1x2-uniform", "method": "vcg"}]}, "jobs[0].seeds"),
    ],
)
def test_malformed_sweep_names_the_field(change, field):
    with pytest.raises(SweepError) as err:
        parse_sweep(spec(**change), source="bad.toml")
    assert err.value.field == field
    assert f"field '{field}'" in str(err.value) and "bad.toml" in str(err.value)


def test_missing_grid_key_and_bad_toml(tmp_path):
    with pytest.raises(SweepError, match="field 'settings'"):
        parse_sweep({"name": "x", "methods": ["vcg"], "seeds": [0]})
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [\n")
    with pytest.raises(AutomechError, match="not valid TOML"):
        load_sweep(bad)


def test_explicit_job_list(tmp_path):
    sweep = parse_sweep(
        {
            "name": "list",
            "eval_samples": 1000,
            "regret_profiles": 0,
            "jobs": [
                {"setting": "1x2-uniform", "method": "vcg", "seed": 0},
                {"setting": "2x2-uniform", "method": "vcg", "seeds": [0, 1]},
            ],
        }
    )
    assert [(j.setting, j.seed) for j in sweep.jobs] == [
        ("1x2-uniform", 0),
        ("2x2-uniform", 0),
        ("2x2-uniform", 1),
    ]


# ----------------------------------------------------------------------- results


def test_result_formats(local_run):
    db, _, _ = local_run
    with Store(db, create=False) as store:
        groups = aggregate(store.rows("test"))
    data = json.loads(render(groups, "json"))
    assert {(g["setting"], g["method"]) for g in data} == {
        (s, m) for s in SETTINGS for m in CLASSICAL
    }
    for g in data:
        rev = g["metrics"]["revenue"]
        assert rev["std"] == pytest.approx(0.0, abs=1e-12)  # classical: seed-independent
        assert rev["best"] == pytest.approx(rev["mean"])
    rows = list(csv.DictReader(io.StringIO(render(groups, "csv"))))
    assert len(rows) == 4 and {"revenue_mean", "revenue_std", "revenue_best"} <= set(rows[0])
    md = render(groups, "markdown", title="test")
    assert md.count("\n| ") == 5 and "| setting | method |" in md
    with pytest.raises(AutomechError, match="unknown format"):
        render(groups, "xml")


def test_mean_std_best_over_seeds():
    def row(seed, revenue, regret):
        return {
            "sweep": "s",
            "setting": "a",
            "method": "m",
            "seed": seed,
            "options": {},
            "evaluation": {},
            "status": "done",
            "metrics": {
                "revenue": revenue,
                "objective_value": revenue,
                "objective": "revenue",
                "welfare": 1.0,
                "regret_mean": regret,
                "regret_max": regret,
                "ir_violation_rate": 0.0,
                "infeasible_rate": 0.0,
            },
        }

    rows = [
        row(0, 1.0, 0.3),
        row(1, 2.0, 0.1),
        row(2, 3.0, 0.2),
        {**row(3, 0, 0), "status": "failed", "metrics": None},
    ]
    [g] = aggregate(rows)
    assert g["done"] == 3 and g["failed"] == 1 and g["seeds"] == [0, 1, 2]
    assert g["metrics"]["revenue"] == {"mean": 2.0, "std": 1.0, "best": 3.0}
    assert g["metrics"]["regret_mean"]["best"] == pytest.approx(0.1)
    assert g["best_seed"] == 2
    assert "3/4 (1 failed)" in render([g], "table")


def test_cli_results(local_run, tmp_path):
    from typer.testing import CliRunner

    from automech.cli import app

    db, _, _ = local_run
    runner = CliRunner()
    out = runner.invoke(app, ["results", "--db", str(db), "--format", "markdown"])
    assert out.exit_code == 0, out.output
    assert "| 2x2-uniform | posted-price | 2/2 |" in out.output
    out = runner.invoke(app, ["results", "--db", str(db), "--sweep", "nope"])
    assert out.exit_code == 2 and "no sweep 'nope'" in out.output
    out = runner.invoke(app, ["results", "--db", str(tmp_path / "missing.db")])
    assert out.exit_code == 2 and "no results database" in out.output


def test_a_second_driver_of_the_same_sweep_is_refused(tmp_path):
    sweep = parse_sweep(spec("locked", settings=["1x2-uniform"], methods=["vcg"], seeds=[0]))
    with Store(tmp_path / "r.db") as store, store.lock("locked"):
        with pytest.raises(AutomechError, match="already running"):
            run_sweep(sweep, store, workers=1, runs_root=tmp_path, log=quiet)
    with Store(tmp_path / "r.db") as store:
        assert run_sweep(sweep, store, workers=1, runs_root=tmp_path, log=quiet)["done"] == 1

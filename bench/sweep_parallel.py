"""Wall time of a 4-job sweep: the local backend (process pool) versus one job after another.

The four jobs are RochetNet on ``1x2-uniform`` and ``1x10-uniform``, seeds 0 and 1, with a
short budget (``--steps``, ``--batch-size``) and a small evaluation, i.e. a few seconds of
training each.  Modes (each in a fresh results database and runs directory):

* ``sequential``: ``automech sweep --workers 1``: the jobs one after another in one
  process, each with every core (torch's default threads);
* ``local``: ``automech sweep`` (default backend): a pool of one worker per core, each
  worker pinned to one torch thread;
* ``sequential-cli`` (``--cli``): four ``automech train`` processes one after another, as a
  user without sweeps would run them (each pays the import of torch and automech).

Every mode is a fresh process timed end to end (imports and pool start included).

Prints the JSON report and writes ``bench/results/sweep_parallel.json``::

    python bench/sweep_parallel.py [--steps 150] [--batch-size 2048] [--cli] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from automech.sweeps import Store, parse_sweep
from automech.sweeps.backends import cpu_count

ROOT = Path(__file__).resolve().parent


def sweep_spec(args) -> dict:
    return {
        "name": "bench",
        "settings": args.settings.split(","),
        "methods": [args.method],
        "seeds": [0, 1],
        "eval_samples": args.eval_samples,
        "regret_profiles": args.regret_profiles,
        "options": {args.method: {"steps": args.steps, "batch_size": args.batch_size}}
        if args.method == "rochetnet"
        else {},
    }


def toml(spec: dict) -> str:
    lines = [f"{k} = {json.dumps(v)}" for k, v in spec.items() if k != "options"]
    for method, opts in spec["options"].items():
        lines += [f"[options.{method}]"] + [f"{k} = {json.dumps(v)}" for k, v in opts.items()]
    return "\n".join(lines) + "\n"


CLI = [
    sys.executable,
    "-c",
    "import sys; from automech.cli import app; sys.argv[0] = 'automech'; app()",
]


def timed_sweep(spec: dict, workers: int, tmp: Path) -> dict:
    """``automech sweep`` in a fresh process, timed end to end (imports included)."""
    (tmp / "bench.toml").write_text(toml(spec))
    start = time.perf_counter()
    out = subprocess.run(
        [
            *CLI,
            "sweep",
            str(tmp / "bench.toml"),
            "--db",
            str(tmp / "results.db"),
            "--runs-root",
            str(tmp / "runs"),
            "--workers",
            str(workers),
        ],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"sweep failed:\n{out.stdout}\n{out.stderr}")
    with Store(tmp / "results.db", create=False) as store:
        rows = store.rows("bench")
    assert all(r["status"] == "done" for r in rows), rows
    backend = next(line for line in out.stdout.splitlines() if line.startswith("running"))
    return {
        "wall_s": round(wall, 2),
        "backend": backend.split(" on ", 1)[1],
        "job_seconds": [round(r["seconds"], 2) for r in rows],
        "revenue": [round(r["metrics"]["revenue"], 4) for r in rows],
    }


def timed_cli(spec: dict, tmp: Path) -> dict:
    sweep = parse_sweep(spec)
    start = time.perf_counter()
    for job in sweep.jobs:
        cmd = [
            *CLI,
            "train",
            job.setting,
            "--method",
            job.method,
            "--seed",
            str(job.seed),
            "--out",
            str(job.run_dir(tmp / "runs")),
            "--eval-samples",
            str(job.eval_samples),
            "--regret-profiles",
            str(job.regret_profiles),
            "--json",
        ]
        for k, v in job.options.items():
            cmd += ["--set", f"{k}={v}"]
        subprocess.run(cmd, check=True, capture_output=True)
    return {"wall_s": round(time.perf_counter() - start, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="rochetnet")
    parser.add_argument("--settings", default="1x2-uniform,1x10-uniform")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--eval-samples", type=int, default=20_000)
    parser.add_argument("--regret-profiles", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cli", action="store_true", help="also time sequential-cli")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "sweep_parallel.json")
    args = parser.parse_args()

    spec = sweep_spec(args)
    load_start = os.getloadavg()
    runs: dict[str, list[dict]] = {"sequential": [], "local": []}
    if args.cli:
        runs["sequential-cli"] = []
    for _ in range(args.repeats):
        for mode in runs:
            with tempfile.TemporaryDirectory() as tmp:
                if mode == "sequential":
                    runs[mode].append(timed_sweep(spec, 1, Path(tmp)))
                elif mode == "local":
                    runs[mode].append(timed_sweep(spec, cpu_count(), Path(tmp)))
                else:
                    runs[mode].append(timed_cli(spec, Path(tmp)))
            print(f"{mode}: {runs[mode][-1]['wall_s']} s", file=sys.stderr)
    best = {mode: min(r["wall_s"] for r in rs) for mode, rs in runs.items()}
    report = {
        "benchmark": "sweep_parallel",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": cpu_count(),
            "torch": torch.__version__,
            "torch_default_threads": torch.get_num_threads(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "sweep": spec,
        "jobs": 4,
        "wall_s_best": best,
        "speedup_local_vs_sequential": round(best["sequential"] / best["local"], 2),
        "runs": runs,
    }
    if "sequential-cli" in best:
        report["speedup_local_vs_sequential_cli"] = round(best["sequential-cli"] / best["local"], 2)
    text = json.dumps(report, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Converged regret of learned 2x2 mechanisms: the budget ladder, rung by rung.

For each method of ``--methods`` (default RegretNet and ALGNet) this script

1. trains it on ``--setting`` (default 2x2-uniform) with the method's defaults (or
   ``--steps`` training steps) through :func:`automech.experiment.train`, into
   ``bench/runs/audit-METHOD-SETTING-seedS`` (a finished run is reused, an interrupted
   one resumed), or loads the run directories given with ``--run``;
2. evaluates it with the shared protocol (:func:`automech.evaluate`): revenue on
   ``--samples`` test profiles and regret on the first ``--profiles`` of them (default
   10,000, the papers' count) with the budget ladder
   (:func:`automech.evaluation.converged_regret`): the default search at budget 1, then
   2, 4, ... times the random candidates, line-grid intervals and refined starts, until
   mean regret moves by less than 5 % and less than two standard errors, at most
   ``--max-rungs`` rungs;
3. reports each rung's budget, regret mean, standard error and max, and seconds, whether
   and at which budget the ladder converged, revenue and regret-adjusted revenue
   ``(sqrt(P) - sqrt(R))^2`` (R summed over bidders).

It prints the JSON report on stdout (a table of rungs on stderr) and writes
``bench/results/audit_ladder.json`` (``--out`` to change).  Issue 23's target: the 2x2
RegretNet's ladder on 10,000 profiles within 15 minutes, on one thread.

    python bench/audit_ladder.py                                   # full size
    python bench/audit_ladder.py --steps 300 --profiles 500 --out /tmp/ladder   # smoke
    python bench/audit_ladder.py --run runs/2x2-uniform-regretnet-seed0
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

import automech
from automech import RegretSearch, evaluate, get_setting
from automech.evaluation import Ladder
from automech.experiment import train

ROOT = Path(__file__).resolve().parent


def machine() -> dict:
    info = {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "processor": _cpu_model(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mechanisms(args) -> list[tuple[str, Path, float | None]]:
    """(method, run directory, training seconds or None when loaded)."""
    if args.run:
        return [(json.loads((p / "config.json").read_text())["method"], p, None) for p in args.run]
    out = []
    for method in args.methods.split(","):
        run = args.runs_dir / f"audit-{method}-{args.setting}-seed{args.seed}"
        if args.steps is not None:
            run = run.with_name(run.name + f"-steps{args.steps}")
        start = time.perf_counter()
        options = {} if args.steps is None else {"steps": args.steps}
        train(
            args.setting, method, options, seed=args.seed, out=run, eval_samples=1_000, search=None
        )
        out.append((method, run, time.perf_counter() - start))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="regretnet,algnet")
    parser.add_argument("--setting", default="2x2-uniform")
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps (default: the method's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", type=Path, action="append", help="audit this run (repeatable)")
    parser.add_argument("--profiles", type=int, default=10_000, help="profiles searched")
    parser.add_argument("--samples", type=int, default=100_000, help="revenue test profiles")
    parser.add_argument("--max-rungs", type=int, default=Ladder().max_rungs)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report: dict = {
        "setting": args.setting,
        "profiles": args.profiles,
        "samples": max(args.samples, args.profiles),
        "base_search": RegretSearch(profiles=args.profiles).to_dict(),
        "ladder": Ladder(max_rungs=args.max_rungs).to_dict(),
        "machine": machine(),
        "results": {},
    }
    for method, run, training in mechanisms(args):
        mech = automech.load(run)
        setting = get_setting(args.setting) if not args.run else mech.setting
        start = time.perf_counter()
        ev = evaluate(
            mech,
            setting,
            samples=max(args.samples, args.profiles),
            search=RegretSearch(profiles=args.profiles),
            ladder=Ladder(max_rungs=args.max_rungs),
        )
        seconds = time.perf_counter() - start
        report["results"][method] = {
            "run": str(run),
            "training_seconds": training,
            "revenue": ev.revenue,
            "revenue_se": ev.revenue_se,
            "revenue_adjusted": ev.revenue_adjusted,
            "regret_mean": ev.regret_mean,
            "regret_se": ev.regret_se,
            "regret_max": ev.regret_max,
            "regret_per_bidder": ev.regret_per_bidder,
            "regret_converged": ev.regret_converged,
            "regret_budget": ev.regret_budget,
            "rungs": ev.regret_ladder,
            "evaluate_seconds": seconds,
        }
        verdict = f"converged at x{ev.regret_budget}" if ev.regret_converged else "NOT converged"
        print(f"{method} ({run}): {verdict}, {seconds:.1f} s", file=sys.stderr)
        for r in ev.regret_ladder or []:
            print(
                f"  budget x{r['budget']:<3} regret {r['regret_mean']:.6f} ± {r['regret_se']:.6f}"
                f"  max {r['regret_max']:.5f}  {r['seconds']:.1f} s",
                file=sys.stderr,
            )
    if hasattr(os, "getloadavg"):
        report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audit_ladder.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

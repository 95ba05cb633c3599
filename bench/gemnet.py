"""GemNet on 2x2-uniform: train, adjust, certify; compare with the lottery AMA.

Runs ``automech train 2x2-uniform --method gemnet`` with the method's defaults (training,
then the MILP price adjustment), and records

* wall time of training and of the adjustment (tables, MILPs, certificate), the grid,
  the MILPs solved, binaries used and the binaries the keep-compatible-cells speed-up
  removed (from the run's ``adjustment.json``);
* the unadjusted network on 100,000 profiles (``unadjusted.json``: revenue,
  over-allocation);
* the adjusted mechanism with the shared protocol: revenue, IR and over-allocation on
  1,000,000 test profiles, regret on ``--regret-profiles`` of them;
* the lottery AMA on the same machine and test profiles: the run in
  ``runs/bench-ama/2x2-lottery-seed0`` (``bench/ama.py 2x2``) if it exists, else trained
  here with its defaults.

Writes ``bench/results/gemnet.json``.  ``--steps`` shortens training; options through
``--set key=value``.

    python bench/gemnet.py
    python bench/gemnet.py --steps 500 --set grid=10
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import torch

import automech.methods  # noqa: F401  (registers the methods)
from automech import evaluate, get_setting
from automech.evaluation import RegretSearch
from automech.experiment import load, parse_assignments, train

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
RUNS = ROOT.parent / "runs" / "bench-gemnet"
AMA_RUN = ROOT.parent / "runs" / "bench-ama" / "2x2-lottery-seed0"


def machine() -> dict:
    info = {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def scored(mech, setting, samples: int, regret_profiles: int) -> dict:
    e = evaluate(mech, setting, samples=samples, search=RegretSearch(profiles=regret_profiles))
    return {
        "revenue": e.revenue,
        "revenue_se": e.revenue_se,
        "test_profiles": e.samples,
        "infeasible_rate": e.infeasible_rate,
        "infeasibility_max": e.infeasibility_max,
        "ir_violation_rate": e.ir_violation_rate,
        "regret_mean": e.regret_mean,
        "regret_max": e.regret_max,
        "regret_profiles": e.regret_samples,
        "eval_seconds": e.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--test-profiles", type=int, default=1_000_000)
    parser.add_argument("--regret-profiles", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    setting = get_setting("2x2-uniform")
    options = parse_assignments(args.set)
    if args.steps:
        options["steps"] = args.steps
    report = {"machine": machine(), "setting": setting.name}
    out = RUNS / f"2x2-gemnet-seed{args.seed}"
    started = time.perf_counter()
    mech, run = train(setting, "gemnet", options, seed=args.seed, out=out, search=None)
    total = time.perf_counter() - started
    history = run.history()
    adjustment = run.read_json("adjustment.json")
    unadjusted = run.read_json("unadjusted.json")
    train_s = max((r["seconds"] for r in history if "seconds" in r), default=None)
    report["gemnet"] = {
        "run_dir": str(out),
        "options": run.read_json("config.json")["options"],
        "train_seconds": train_s,
        "train_and_adjust_seconds": total,
        "adjustment": adjustment,
        "unadjusted": {
            k: unadjusted[k]
            for k in (
                "revenue",
                "revenue_se",
                "samples",
                "infeasible_rate",
                "infeasibility_max",
                "regret_mean",
            )
        },
        "adjusted": scored(mech, setting, args.test_profiles, args.regret_profiles),
    }
    if AMA_RUN.exists():
        ama, source = load(AMA_RUN), str(AMA_RUN)
    else:
        ama, ama_run = train(setting, "lottery-ama", {}, seed=0, out=AMA_RUN, search=None)
        source = str(ama_run.path)
    report["lottery_ama"] = {
        "run_dir": source,
        **scored(ama, setting, args.test_profiles, args.regret_profiles),
    }
    report["gemnet_minus_lottery_ama"] = (
        report["gemnet"]["adjusted"]["revenue"] - report["lottery_ama"]["revenue"]
    )
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gemnet.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

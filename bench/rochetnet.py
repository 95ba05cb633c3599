"""RochetNet on 1x2-uniform with the method's defaults: revenue against the optimum 0.549201.

Trains with `automech.experiment.train` (the same path as `automech train 1x2-uniform
--method rochetnet`), evaluates on 100,000 test profiles with the shared protocol, and
records wall time and steps per second.  Prints JSON; writes bench/results/rochetnet.json.

    python bench/rochetnet.py [--steps N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import automech
from automech.evaluation import RegretSearch
from automech.experiment import train
from automech.methods import METHODS

OPTIMUM = 0.549201  # Manelli-Vincent, shared/reference/benchmarks.md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=METHODS["rochetnet"].defaults["steps"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/rochetnet.json"))
    args = parser.parse_args()

    setting = automech.get_setting("1x2-uniform")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        mech, run = train(setting, "rochetnet", {"steps": args.steps}, seed=args.seed,
                          out=Path(tmp) / "run", eval_samples=100_000,
                          search=RegretSearch(profiles=2_000))
        total = time.perf_counter() - start
        history = run.history()
        metrics = run.read_json("metrics.json")
    train_seconds = history[-1]["seconds"]
    result = {
        "benchmark": "rochetnet-1x2-uniform",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "options": {**METHODS["rochetnet"].defaults, "steps": args.steps}, "seed": args.seed,
        "train_seconds": round(train_seconds, 1),
        "steps_per_second": round(args.steps / train_seconds, 1),
        "total_seconds": round(total, 1),
        "revenue": metrics["revenue"], "revenue_se": metrics["revenue_se"],
        "optimum": OPTIMUM, "gap_percent": round(100 * (OPTIMUM - metrics["revenue"]) / OPTIMUM, 3),
        "regret_mean": metrics["regret_mean"], "regret_max": metrics["regret_max"],
        "regret_profiles": metrics["regret_samples"],
        "ir_violation_rate": metrics["ir_violation_rate"], "test_profiles": metrics["samples"],
        "within_half_percent": metrics["revenue"] >= OPTIMUM * 0.995,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

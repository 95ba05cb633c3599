"""What constant-per-cell menus and the MILP adjustment cost an exactly feasible design.

GemNet's deployed menus (``GemNetMechanism(adjusted=True)``) are constant on each cell of
the other bidder's bid, and the adjustment (``make_compatible``) makes them compatible.
This script applies both to the deterministic AMA of ``2x2-uniform`` (trained with its
defaults into ``runs/bench-ama/2x2-deterministic-seed0`` if missing), whose own menus
are compatible everywhere, so every revenue lost below it is the cost of the grid and
the adjustment alone, with no training in between.  For each grid size it records, on
the shared test profiles: the AMA, its menus tabulated at the cell centres
(``affine_maximizer_tables``: revenue and over-allocation), and the certified tables
after the adjustment (revenue, zero over-allocation, the MILPs, wall time).

    python bench/gemnet_grid.py                 # grids 10, 20, 40; 100,000 profiles
    python bench/gemnet_grid.py --grids 20

Writes ``bench/results/gemnet_grid.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import automech.methods  # noqa: F401  (registers the methods)
from automech import evaluate, get_setting
from automech.experiment import load, train
from automech.mechanisms.learned.gemnet import GemNetMechanism
from automech.methods.gemnet.compatibility import affine_maximizer_tables, make_compatible

ROOT = Path(__file__).resolve().parent
AMA_RUN = ROOT.parent / "runs" / "bench-ama" / "2x2-deterministic-seed0"


def scored(mech, setting, samples: int) -> dict:
    e = evaluate(mech, setting, samples=samples, search=None)
    return {
        "revenue": e.revenue,
        "revenue_se": e.revenue_se,
        "infeasible_rate": e.infeasible_rate,
        "ir_violation_rate": e.ir_violation_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, nargs="*", default=[10, 20, 40])
    parser.add_argument("--samples", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    setting = get_setting("2x2-uniform")
    if (AMA_RUN / "checkpoint.pt").exists():
        ama = load(AMA_RUN)
    else:
        ama, _ = train(setting, "deterministic-ama", {}, seed=0, out=AMA_RUN, search=None)
    low, high = (a[0] for a in setting.prior.support())
    report = {
        "setting": setting.name,
        "ama_run": str(AMA_RUN),
        "samples": args.samples,
        "ama": scored(ama, setting, args.samples),
        "grids": [],
    }
    for grid in args.grids:
        started = time.perf_counter()
        alloc, price = affine_maximizer_tables(ama, grid)
        plain = GemNetMechanism(setting, menu_size=alloc.shape[2] - 1, hidden=(1,), grid=grid)
        tables = scored(plain.with_tables(alloc, price, snap=0.0), setting, args.samples)
        alloc, price, stats = make_compatible(alloc, price, low, high, grid)
        adjusted = scored(plain.with_tables(alloc, price, snap=0.0), setting, args.samples)
        row = {
            "grid": grid,
            "tables": tables,
            "adjusted": adjusted,
            "adjustment_cost": tables["revenue"] - adjusted["revenue"],
            "below_ama": report["ama"]["revenue"] - adjusted["revenue"],
            "adjustment": stats,
            "seconds": time.perf_counter() - started,
        }
        report["grids"].append(row)
        print(json.dumps(row), flush=True)
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "gemnet_grid.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""How far the LP of automated mechanism design scales on this machine (survey, Section 3.1.1).

Part 1: ``1x2-uniform`` discretised with k = 5, 10, 15, 20, ... points per item (k^2 types,
k^4 DSIC constraints).  For each k: LP size, build and solve seconds, peak memory, the
optimum on the grid, and the revenue of the resulting menu on 100,000 continuous test
profiles (the shared test seed) with its standard error and its gap to the exact optimum
0.549201 (Manelli-Vincent), also paired: the optimal menu (items at 2/3, bundle at
(4 - sqrt 2)/3) scored on the same test profiles, so that the gap's standard error is
that of the per-profile difference.  Stops after the first k whose solve exceeds ``--stop-after``
seconds or fails (HiGHS time limit ``--time-limit``).

Part 2: ``2x2-uniform`` on coarse grids (k^2 types per bidder), DSIC, with cell midpoints
and with cell lower ends as grid points, with revenue and regret (a modest misreport
search) next to the reference numbers of ``shared/reference/benchmarks.md``.

Prints one JSON line per run and writes ``bench/results/lp_scaling.json``::

    python bench/lp_scaling.py [--ks 5,10,15,20,25,30] [--grids-2x2 3,4,5]
                               [--points-2x2 mid,low]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from automech import RegretSearch, evaluate, get_setting
from automech.errors import AutomechError
from automech.evaluation.protocol import TEST_SEED
from automech.methods.lp import solve

OPTIMUM_1X2 = 0.549201
#: 2x2 additive U[0,1] (shared/reference/benchmarks.md): exact baselines and published
#: learned results (lottery-affine-maximizer-auctions.txt, Table 2).
REFERENCE_2X2 = {
    "separate-myerson (exact)": 0.833333,
    "grand-bundle (exact)": 0.839244,
    "lottery AMA": 0.868,
    "RegretNet (regret < 0.001)": 0.878,
    "ALGNet (regret 0.00058)": 0.879,
}
KEYS = (
    "types_per_bidder",
    "variables",
    "constraints",
    "nonzeros",
    "build_seconds",
    "solve_seconds",
    "objective",
    "binding_ic",
)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def optimal_1x2_payments(values: np.ndarray) -> np.ndarray:
    """Payments of the optimal 1x2 U[0,1] menu (Manelli-Vincent) at profiles (N, 1, 2)."""
    prices = np.array([0.0, 2 / 3, 2 / 3, (4 - np.sqrt(2)) / 3])
    v = values[:, 0]
    utility = np.stack([np.zeros(len(v)), v[:, 0], v[:, 1], v.sum(axis=1)], axis=1) - prices
    return prices[utility.argmax(axis=1)]


def paired_gap(mechanism, setting, samples: int) -> tuple[float, float]:
    """Mean and standard error of (optimal - LP) revenue on the shared test profiles."""
    values = setting.sample(samples, TEST_SEED)
    diff = optimal_1x2_payments(values) - mechanism.outcome(values)[1].sum(axis=1)
    return float(diff.mean()), float(diff.std() / np.sqrt(samples))


def run_one(setting_name: str, k: int, points: str, args, search: RegretSearch | None) -> dict:
    setting = get_setting(setting_name)
    row: dict = {"setting": setting_name, "k": k, "points": points}
    try:
        mechanism, report = solve(
            setting, grid=k, points=points, solver=args.solver, time_limit=args.time_limit
        )
    except AutomechError as err:
        row.update(status="failed", error=str(err), peak_rss_mb=peak_rss_mb())
        return row
    row.update({key: report[key] for key in KEYS}, status="optimal", peak_rss_mb=peak_rss_mb())
    start = time.perf_counter()
    ev = evaluate(mechanism, setting, samples=args.samples, search=search)
    row.update(
        test_revenue=ev.revenue,
        test_revenue_se=ev.revenue_se,
        regret_mean=ev.regret_mean,
        regret_max=ev.regret_max,
        ir_violation_rate=ev.ir_violation_rate,
        infeasible_rate=ev.infeasible_rate,
        eval_seconds=time.perf_counter() - start,
    )
    if setting_name == "1x2-uniform":
        row["gap_to_optimum"] = OPTIMUM_1X2 - ev.revenue
        row["paired_gap"], row["paired_gap_se"] = paired_gap(mechanism, setting, args.samples)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", default="5,10,15,20,25,30,40")
    parser.add_argument("--grids-2x2", default="3,4,5")
    parser.add_argument("--points-2x2", default="mid,low")
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--solver", default="highs-ipm")
    parser.add_argument("--time-limit", type=float, default=180.0)
    parser.add_argument("--stop-after", type=float, default=60.0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "lp_scaling.json"))
    args = parser.parse_args()

    scaling = []
    for k in map(int, args.ks.split(",")):
        row = run_one("1x2-uniform", k, "mid", args, RegretSearch(profiles=200, random=64))
        print(json.dumps(row), flush=True)
        scaling.append(row)
        if row["status"] != "optimal" or row["solve_seconds"] > args.stop_after:
            break
    coarse = []
    for points in args.points_2x2.split(","):
        for k in map(int, args.grids_2x2.split(",")):
            row = run_one("2x2-uniform", k, points, args, RegretSearch(profiles=1_000))
            print(json.dumps(row), flush=True)
            coarse.append(row)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": "2 CPU cores, 24 GB",
                "solver": args.solver,
                "time_limit": args.time_limit,
                "stop_after": args.stop_after,
                "test_samples": args.samples,
                "optimum_1x2": OPTIMUM_1X2,
                "scaling_1x2": scaling,
                "coarse_2x2": coarse,
                "reference_2x2": REFERENCE_2X2,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

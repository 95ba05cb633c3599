"""How much regret does a stronger misreport search find?  A budget ladder.

Loads a saved mechanism (a run directory) and measures its regret with the shared search
(:func:`automech.evaluate`) on the same ``--profiles`` test profiles under a ladder of
budgets, from the default search up to ``--max-starts`` restarts x ``--max-steps`` Adam
steps, timing each.  The growth along the ladder says how far the cheaper budgets are
from converged; the timing of the largest rung, scaled, estimates what the papers'
THOROUGH budget (1,000 restarts x 2,000 steps on 10,000 profiles) would cost here.

    python bench/regret_budget.py bench/runs/regretnet-2x2-uniform-seed0 --profiles 100

Writes ``bench/results/regret_budget-<run name>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import torch

import automech
from automech import RegretSearch, evaluate
from automech.evaluation.regret import THOROUGH

ROOT = Path(__file__).resolve().parent


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--profiles", type=int, default=100)
    parser.add_argument("--max-starts", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    mech = automech.load(args.run)
    ladder = [
        ("default search", RegretSearch(profiles=args.profiles)),
        (
            "1,000 random + 8 x 400",
            RegretSearch(profiles=args.profiles, random=1_000, ascent_starts=8, ascent_steps=400),
        ),
        (
            "1,000 random + 16 x 1,000",
            RegretSearch(
                profiles=args.profiles, random=1_000, ascent_starts=16, ascent_steps=1_000
            ),
        ),
        (
            f"1,000 random + {args.max_starts} x {args.max_steps}",
            RegretSearch(
                profiles=args.profiles,
                random=1_000,
                ascent_starts=args.max_starts,
                ascent_steps=args.max_steps,
            ),
        ),
    ]
    rungs = []
    for label, search in ladder:
        start = time.perf_counter()
        report = evaluate(mech, samples=args.profiles, search=search)
        seconds = time.perf_counter() - start
        rungs.append(
            {
                "budget": label,
                "search": search.to_dict(),
                "regret_mean": report.regret_mean,
                "regret_se": report.regret_se,
                "regret_max": report.regret_max,
                "seconds": seconds,
            }
        )
        print(json.dumps(rungs[-1]), flush=True)
    top = rungs[-1]
    row_steps = args.profiles * args.max_starts * args.max_steps
    thorough_row_steps = THOROUGH.profiles * THOROUGH.ascent_starts * THOROUGH.ascent_steps
    result = {
        "run": str(args.run),
        "mechanism": mech.name,
        "setting": mech.setting.name,
        "profiles": args.profiles,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average": list(os.getloadavg()),
        "torch_threads": torch.get_num_threads(),
        "ladder": rungs,
        "thorough_estimate_seconds": top["seconds"] * thorough_row_steps / row_steps,
        "thorough_estimate_note": "time of the largest rung scaled by restarts x steps x "
        "profiles (the ascent dominates)",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"regret_budget-{args.run.name}.json"
    path.write_text(json.dumps(result, indent=2))
    print(
        f"wrote {path}; THOROUGH would take about "
        f"{result['thorough_estimate_seconds'] / 86400:.1f} days here",
        flush=True,
    )


if __name__ == "__main__":
    main()

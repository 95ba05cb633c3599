"""Units: every learned method's short fit on U[0, 1] and on U[0, c], same seed.

Revenue is homogeneous of degree one in values, so the ratio of the two revenues must be
c; a step size, temperature, Lagrangian weight or initial price fixed in absolute units
shows up as a ratio off by percents or by a factor.  ``tests/test_units.py`` asserts the
same cases at c = 100 (and 0.01 for three methods).

    python bench/units.py                  # every method, c = 100 and 0.01
    python bench/units.py --methods tedi   # one method

Prints JSON and writes ``bench/results/units.json``: per method and scale, the two
revenues, their ratio divided by c (1 when equivariant) and the seconds taken.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from automech.device import configure_threads
from automech.experiment import train
from automech.problems import Setting

#: method -> (bidders, items, short options): small enough for the test suite, long
#: enough that the parameters move far from their start
CASES: dict[str, tuple[int, int, dict[str, Any]]] = {
    "rochetnet": (
        1,
        2,
        {"steps": 40, "batch_size": 2048, "menu_size": 16, "validation_samples": 512},
    ),
    "myersonnet": (2, 1, {"steps": 60, "batch_size": 1024, "validation_samples": 512}),
    "regretnet": (1, 2, {"steps": 60, "batch_size": 256, "hidden": 32, "validation_samples": 512}),
    "algnet": (
        1,
        2,
        {
            "steps": 60,
            "batch_size": 256,
            "hidden": 32,
            "misreporter_hidden": 32,
            "validation_samples": 512,
        },
    ),
    "lottery-ama": (
        2,
        2,
        {"steps": 40, "batch_size": 2048, "allocations": 64, "validation_samples": 512},
    ),
    "deterministic-ama": (2, 2, {"steps": 40, "batch_size": 2048, "validation_samples": 512}),
    "gemnet": (
        2,
        2,
        {
            "steps": 30,
            "batch_size": 512,
            "init": "random",
            "menu_size": 8,
            "adjust": False,  # the MILP price adjustment is not a training step
            "validation_samples": 512,
        },
    ),
    "tedi": (1, 2, {"steps": 20, "batch_size": 256, "validation_samples": 512}),
    "lp": (1, 2, {"grid": 5}),
}

#: test profiles of each fit's evaluation
SAMPLES = 4000


def uniform(bidders: int, items: int, high: float, method: str) -> Setting:
    """U[0, high] per value; TEDI's problem class (unlimited supply, no cost) for TEDI."""
    spec: dict[str, Any] = {
        "bidders": bidders,
        "items": items,
        "prior": {"kind": "uniform", "low": 0.0, "high": high},
    }
    if method == "tedi":
        spec.update(
            supply="unlimited", objective={"kind": "revenue-minus-cost", "production_cost": 0.0}
        )
    return Setting.from_dict(spec)


def revenue(method: str, high: float, out: Path, seed: int = 0) -> float:
    """Test revenue of ``method``'s short fit (:data:`CASES`) on U[0, high]."""
    bidders, items, options = CASES[method]
    _, run = train(
        uniform(bidders, items, high, method),
        method,
        options,
        seed=seed,
        out=out,
        eval_samples=SAMPLES,
        search=None,
    )
    return float(run.read_json("metrics.json")["revenue"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(CASES))
    parser.add_argument("--scales", default="100,0.01")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "units.json"))
    args = parser.parse_args()
    configure_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            start = time.perf_counter()
            unit = revenue(method, 1.0, Path(tmp) / f"{method}-1", args.seed)
            for c in (float(s) for s in args.scales.split(",")):
                scaled = revenue(method, c, Path(tmp) / f"{method}-{c}", args.seed)
                rows.append(
                    {
                        "method": method,
                        "scale": c,
                        "revenue_unit": unit,
                        "revenue_scaled": scaled,
                        "ratio_over_scale": scaled / unit / c,
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    Path(args.out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Seconds per training step of RegretNet and ALGNet, eager against compiled.

Issue 24, item 2.  For each case the script builds the method's run exactly as
:func:`automech.experiment.train` does (``build``, ``start``, the trainer's Adam), then
times ``sample`` + ``step`` (the attack, the loss, its backward and the optimiser step)
twice from the same seed: once with ``compile="off"`` (the eager ascent, the code
path the earlier figures measured) and once with ``"on"`` (:func:`automech.methods.
regretnet.compiled_ascent`).  The first compiled step, which compiles, is reported
apart (``compile_seconds``).

Timings are interleaved with a fixed reference workload in the same process (a float32
512 x 512 matrix product, :func:`reference`), ``--rounds`` times, and reported as medians
in seconds and in reference units, so that a ratio survives a busy machine.  Run it
alone with one thread (the default, ``--threads``); the load average is recorded.

Cases (``--cases``, default all):

* ``matched``: RegretNet 2x2-uniform, batch 256, 25 misreport steps, one start
  (``misreport_candidates=0``): the settings of the side-by-side comparison with the
  public implementation (0.058 s a step then);
* ``default``: RegretNet 2x2-uniform with its defaults (16 restart candidates a step;
  0.086 s then);
* ``algnet``: ALGNet 2x2-uniform with its defaults (10 refinement steps compiled).

    python bench/regretnet_step.py                 # writes bench/results/regretnet_step.json
    python bench/regretnet_step.py --cases matched --rounds 3 --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from automech.device import configure_threads
from automech.methods import get_method
from automech.problems import get_setting
from automech.runs import Run
from automech.training import FitContext

RESULTS = Path(__file__).parent / "results" / "regretnet_step.json"

#: case -> (method, setting, options besides compile)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "matched": (
        "regretnet",
        "2x2-uniform",
        {"batch_size": 256, "misreport_steps": 25, "misreport_candidates": 0},
    ),
    "default": ("regretnet", "2x2-uniform", {}),
    "algnet": ("algnet", "2x2-uniform", {}),
}

#: Seconds per step measured before this bench existed (issue 24), for the record only:
#: the speed-up reported is against the eager path timed in the same process.
EARLIER = {"matched": 0.058, "default": 0.086}


def reference(repeats: int = 20) -> float:
    """Seconds of one float32 512 x 512 matrix product (median of ``repeats``)."""
    a = torch.randn(512, 512, generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Stepper:
    """One run's training steps, as the trainer makes them."""

    def __init__(self, method: str, setting: str, options: dict[str, Any], run_dir: Path):
        self.meth = get_method(method)
        s = get_setting(setting)
        self.opts = self.meth.Options.resolve(options)
        self.ctx = FitContext(setting=s, options=self.opts, seed=0, run=Run(run_dir))
        torch.manual_seed(0)
        self.mech = self.meth.build(self.ctx)
        self.optimizer = torch.optim.Adam(self.mech.parameters(), lr=self.opts.lr)
        self.ctx.rng = np.random.default_rng([0, 0])
        self.ctx.state = self.meth.start(self.mech, self.ctx)
        self.ctx.lr = self.opts.lr
        self.done = 0

    def steps(self, count: int) -> float:
        """Seconds per step over ``count`` steps."""
        start = time.perf_counter()
        for _ in range(count):
            self.ctx.step = self.done
            values, indices = self.meth.sample(self.mech, self.ctx)
            self.meth.step(self.mech, self.optimizer, values, indices, self.ctx)
            self.done += 1
        return (time.perf_counter() - start) / count


def run_case(name: str, rounds: int, steps: int, tmp: Path) -> dict[str, Any]:
    method, setting, options = CASES[name]
    eager = Stepper(method, setting, {**options, "compile": "off"}, tmp / f"{name}-e")
    fused = Stepper(method, setting, {**options, "compile": "on"}, tmp / f"{name}-c")
    eager.steps(2)  # warm-up: allocator, first-call costs
    compile_seconds = fused.steps(1)
    fused.steps(1)
    rows = []
    for _ in range(rounds):
        ref = reference()
        e = eager.steps(steps)
        c = fused.steps(steps)
        rows.append({"reference": ref, "eager": e, "compiled": c})
    med = {k: statistics.median(r[k] for r in rows) for k in ("reference", "eager", "compiled")}
    in_ref = {
        k: statistics.median(r[k] / r["reference"] for r in rows) for k in ("eager", "compiled")
    }
    out = {
        "case": name,
        "method": method,
        "setting": setting,
        "options": options,
        "steps_per_round": steps,
        "rounds": rows,
        "reference_seconds": med["reference"],
        "eager_seconds": med["eager"],
        "compiled_seconds": med["compiled"],
        "eager_in_reference_units": in_ref["eager"],
        "compiled_in_reference_units": in_ref["compiled"],
        "speedup": statistics.median(r["eager"] / r["compiled"] for r in rows),
        "compile_seconds": compile_seconds,
    }
    if name in EARLIER:  # alone on a quiet machine; compare only with a quiet run
        out["earlier_seconds_alone"] = EARLIER[name]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=20, help="steps per round and path")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases or args.rounds < 1 or args.steps < 1 or args.threads < 1:
        print(
            f"regretnet_step.py: cases must be of {', '.join(CASES)} (got {args.cases!r}); "
            "--rounds, --steps and --threads >= 1",
            file=sys.stderr,
        )
        sys.exit(2)
    configure_threads(args.threads)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="regretnet-step-") as tmp:
        rows = []
        for name in cases:
            rows.append(run_case(name, args.rounds, args.steps, Path(tmp)))
            r = rows[-1]
            print(
                f"[regretnet_step] {name}: eager {r['eager_seconds']:.4f} s, compiled "
                f"{r['compiled_seconds']:.4f} s ({r['speedup']:.2f}x), compile "
                f"{r['compile_seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    result = {
        "benchmark": "regretnet_step",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            ["python", "bench/regretnet_step.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in load_start],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "cases": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

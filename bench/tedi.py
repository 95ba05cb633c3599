"""Reproduce TEDI's Table 1 rows (Ma et al., AAMAS 2026) on this machine, with wall time.

1. Baseline rows (VCG, Separable-OPT, Bundle-OPT, our Shared-Bundle-OPT and, where it
   applies and is available, MD-LotteryAMA / MD-MenuNet) on ``--samples`` test profiles
   of the shared protocol.
2. TEDI runs (``automech.experiment.train`` with the method's defaults unless ``--set``),
   scored by the shared protocol on ``--samples`` profiles (objective = principal utility,
   revenue, IR) and regret on ``--regret-profiles`` of them with a reduced misreport budget
   (TEDI is not differentiable in bids: random + scaled misreports, each solved by the
   inner solver).  With ``--set`` the run goes to ``runs/tedi-SETTING-key=value`` and its
   row to ``tedi_variants`` (the ``tedi`` rows are the defaults').  Variant rows that used
   options since removed (``snapshots``, ``burn_in``, ``chain_start``, the trainer's
   ``average``, ``init=shared-bundle``) stay in the results as history; they run at
   commit ``cff777a``, not here.
3. ``--scaling``: seconds per TEDI training step for n = 3, m in {10, 20, 30}.
4. ``--flops``: floating-point operations of one training step (loss, backward, chain
   moves) for n = 3, m in {10, 20, 30}, counted by ``torch.utils.flop_counter`` (matrix
   products only, which is where the work is), with the ``--set`` overrides; next to the
   paper's TFLOPS column of Table 1 (390 for m = 10, 5,600 for m = 30, whole training).

Writes/updates ``bench/results/tedi.json``.  Single-threaded torch (the machine is shared:
more threads only fight).

    python bench/tedi.py --baselines
    python bench/tedi.py --learned-baselines --settings U-1x10-cp0-cd0 B-1x10-cp0-cd0
    python bench/tedi.py --cases B-1x10-cp0-cd0 U-1x10-cp0-cd0
    python bench/tedi.py --scaling
    python bench/tedi.py --flops --set chains=8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from automech import RegretSearch, evaluate, get_setting
from automech.experiment import parse_assignments, train
from automech.mechanisms import VCG
from automech.mechanisms.classical.cost_baselines import BundleOPT, SeparableOPT, SharedBundleOPT

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "tedi.json"
#: Table 1 of the paper: TEDI, MD-MenuNet, MD-LotteryAMA, Separable-OPT, Bundle-OPT.
PAPER = {
    "U-1x10-cp0-cd0": {
        "tedi": 3.4620,
        "md-menunet": 3.4472,
        "separable-opt": 2.5000,
        "bundle-opt": 3.4477,
        "vcg": 0.0,
    },
    "B-1x10-cp0-cd0": {
        "tedi": 4.9128,
        "md-menunet": 4.0565,
        "separable-opt": 5.0000,
        "bundle-opt": 3.3059,
        "vcg": 0.0,
    },
    "U-3x10-cp1-cd0": {
        "tedi": 1.7285,
        "md-lotteryama": 1.2050,
        "separable-opt": 1.3019,
        "bundle-opt": 0.3616,
        "vcg": "<0",
    },
    "U-3x10-cp0-cd0.5": {
        "tedi": 2.1989,
        "md-lotteryama": 0.3089,
        "separable-opt": 1.8752,
        "bundle-opt": 0.4709,
        "vcg": 0.0,
    },
}
TARGETS = {
    "B-1x10-cp0-cd0": 4.85,
    "U-1x10-cp0-cd0": 3.44,
    "U-3x10-cp1-cd0": 1.65,
    "U-3x10-cp0-cd0.5": 2.1,
}
SEARCH = RegretSearch(profiles=500, random=64, scales=16, grid=0)


def _load() -> dict:
    return json.loads(OUT.read_text()) if OUT.exists() else {}


def _merge(into: dict, update: dict) -> None:
    """Recursive update: rows already in the file that ``update`` does not name are kept."""
    for key, val in update.items():
        if isinstance(val, dict) and isinstance(into.get(key), dict):
            _merge(into[key], val)
        else:
            into[key] = val


def _save(update: dict) -> None:
    data = _load()
    _merge(data, update)
    data["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg": os.getloadavg(),
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(data, indent=2))


def _row(ev, seconds: float, setting: str, key: str) -> dict:
    paper = PAPER.get(setting, {}).get(key)
    row = {
        "objective": ev.objective_value,
        "objective_se": ev.objective_se,
        "revenue": ev.revenue,
        "cost": ev.revenue - ev.objective_value,
        "regret_mean": ev.regret_mean,
        "regret_max": ev.regret_max,
        "ir_violation_rate": ev.ir_violation_rate,
        "samples": ev.samples,
        "regret_profiles": ev.regret_samples,
        "seconds": seconds,
        "paper": paper,
    }
    if isinstance(paper, float) and paper > 0:
        row["rel_diff"] = ev.objective_value / paper - 1
    return row


def baselines(settings, samples: int) -> None:
    for name in settings:
        s = get_setting(name)
        rows = {}
        for cls in (VCG, SeparableOPT, BundleOPT, SharedBundleOPT):
            t = time.perf_counter()
            mech = cls(s)
            ev = evaluate(mech, s, samples=samples, search=SEARCH)
            rows[cls.name] = _row(ev, time.perf_counter() - t, name, cls.name)
            print(
                name, cls.name, f"{ev.objective_value:.4f}", rows[cls.name].get("paper"), flush=True
            )
        _save({"baselines": {name: rows}})


#: The paper's learned baselines (Section 4.2.1) and the automech method each one is:
#: RochetNet as MD-MenuNet for one bidder, the lottery AMA on unlimited supply otherwise.
LEARNED_BASELINES = {"md-menunet": "rochetnet", "md-lotteryama": "lottery-ama"}


def learned_baselines(settings, samples: int, seed: int) -> None:
    """MD-MenuNet (n = 1) or MD-LotteryAMA (n > 1) with automech's defaults for the method,
    trained on the setting's own objective (principal utility), scored like TEDI."""
    for name in settings:
        s = get_setting(name)
        key = "md-menunet" if s.num_bidders == 1 else "md-lotteryama"
        method = LEARNED_BASELINES[key]
        t = time.perf_counter()
        mech, _ = train(
            s,
            method,
            {},
            seed=seed,
            out=ROOT / "runs" / f"{method}-{name}",
            eval_samples=1_000,
            search=None,
        )
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        ev = evaluate(mech, s, samples=samples, search=SEARCH)
        row = _row(ev, time.perf_counter() - t, name, key)
        row.update(method=method, train_seconds=train_s, seed=seed)
        print(name, key, f"{ev.objective_value:.4f}", row.get("paper"), flush=True)
        _save({"baselines": {name: {key: row}}})


#: Options measured to give no gain and removed; their ``tedi_variants`` rows in
#: ``bench/results/tedi.json`` stay as history and run at commit ``cff777a``.
REMOVED = {"snapshots", "burn_in", "chain_start", "average"}
REMOVED_VALUES = {("init", "shared-bundle")}


def tedi(cases, samples: int, overrides: dict, seed: int) -> None:
    removed = sorted(k for k in overrides if k in REMOVED) + sorted(
        f"{k}={v}" for k, v in overrides.items() if (k, v) in REMOVED_VALUES
    )
    if removed:
        raise SystemExit(
            f"bench/tedi.py: {', '.join(removed)} removed (no gain, see "
            f"docs/results.md); those variant rows run at commit cff777a"
        )
    for name in cases:
        s = get_setting(name)
        t = time.perf_counter()
        variant = "".join(f"-{k}={v}" for k, v in sorted(overrides.items()))
        mech, run = train(
            s,
            "tedi",
            overrides,
            seed=seed,
            out=ROOT / "runs" / f"tedi-{name}{variant}",
            eval_samples=1_000,
            search=None,
        )
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        ev = evaluate(mech, s, samples=samples, search=SEARCH)
        row = _row(ev, time.perf_counter() - t, name, "tedi")
        selected = [r["selected_step"] for r in run.history() if "selected_step" in r]
        row.update(
            train_seconds=train_s,
            target=TARGETS.get(name),
            selected_step=selected[-1] if selected else None,
            reached=ev.objective_value >= TARGETS.get(name, float("inf")),
            options=overrides,
            seed=seed,
        )
        print(name, "tedi", json.dumps(row), flush=True)
        _save({"tedi": {name: row}} if not overrides else {"tedi_variants": {name + variant: row}})


def scaling(steps: int) -> None:
    """Seconds per training step for n = 3, m = 10, 20, 30 (U-3xm-cp1-cd0, defaults): the
    loop's own time (from the run's history, set-up excluded) and the whole fit."""
    from automech.experiment import resolve_options
    from automech.methods import get_method
    from automech.runs import Run
    from automech.training import FitContext

    out = {}
    for m in (10, 20, 30):
        s = get_setting(f"U-3x{m}-cp1-cd0")
        meth = get_method("tedi")
        opts = resolve_options(
            meth,
            s,
            {
                "steps": steps,
                "validate_every": 10**9,
                "log_every": 10**9,
                "validation_samples": 8,
                "checkpoint_every": 10**9,
            },
        )
        path = ROOT / "runs" / f"scaling-m{m}"
        if path.exists():
            import shutil

            shutil.rmtree(path)
        t = time.perf_counter()
        run = Run(path)
        meth.fit(FitContext(setting=s, options=opts, seed=0, run=run))
        total = time.perf_counter() - t
        loop = [r["seconds"] for r in run.history() if "seconds" in r][-1]
        out[f"m={m}"] = {
            "seconds_per_step": loop / steps,
            "seconds_total": total,
            "steps": steps,
            "batch_size": opts.batch_size,
            "langevin_steps": opts.langevin_steps,
            "metropolis_steps": opts.metropolis_steps,
        }
        print(m, out[f"m={m}"], flush=True)
    _save({"scaling_n3": out})


#: Table 1's TFLOPS of a whole TEDI training run, n = 3.
PAPER_TFLOP = {10: 390.0, 30: 5600.0}


def flops(overrides: dict) -> None:
    """Floating-point operations per training step (one step at beta_0 from the linear
    start: the network's cost does not depend on its weights) for U-3xm-cp1-cd0."""
    from torch.utils.flop_counter import FlopCounterMode

    from automech.experiment import resolve_options
    from automech.methods import get_method
    from automech.training import FitContext

    out = {}
    for m in (10, 20, 30):
        s = get_setting(f"U-3x{m}-cp1-cd0")
        meth = get_method("tedi")
        opts = resolve_options(meth, s, {**overrides, "init": "linear"})
        torch.manual_seed(0)
        ctx = FitContext(
            setting=s,
            options=opts,
            seed=0,
            run=None,
            rng=np.random.default_rng(0),
            temperature=opts.temperature,
        )
        mech = meth.build(ctx)
        ctx.state = meth.start(mech, ctx)
        values, ctx.indices = meth.sample(mech, ctx)
        with FlopCounterMode(display=False) as counter:
            loss, _ = meth.loss(mech, values, ctx)
            loss.backward()
            meth.after_step(mech, ctx)
        per_step = counter.get_total_flops()
        out[f"m={m}"] = {
            "gflop_per_step": per_step / 1e9,
            "tflop_per_run": per_step * opts.steps / 1e12,
            "steps": opts.steps,
            "paper_tflop_per_run": PAPER_TFLOP.get(m),
        }
        print(m, out[f"m={m}"], flush=True)
    variant = "".join(f"-{k}={v}" for k, v in sorted(overrides.items()))
    _save({"flops_n3": {variant or "defaults": out}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baselines", action="store_true")
    ap.add_argument(
        "--learned-baselines",
        action="store_true",
        help="MD-MenuNet (RochetNet, n = 1) / MD-LotteryAMA (n > 1) rows",
    )
    ap.add_argument("--settings", nargs="*", default=list(PAPER))
    ap.add_argument("--cases", nargs="*", default=[])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--set", nargs="*", default=[], help="TEDI option overrides key=value")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--scaling-steps", type=int, default=10)
    ap.add_argument("--flops", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.baselines:
        baselines(args.settings, args.samples)
    if args.learned_baselines:
        learned_baselines(args.settings, args.samples, args.seed)
    if args.cases:
        tedi(args.cases, args.samples, parse_assignments(args.set), args.seed)
    if args.scaling:
        scaling(args.scaling_steps)
    if args.flops:
        flops(parse_assignments(args.set))


if __name__ == "__main__":
    main()

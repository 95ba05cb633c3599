"""Reproduce the RegretNet / ALGNet / MyersonNet targets, with honest regret.

For each case ``METHOD:SETTING`` this script

1. trains METHOD on SETTING with the method's defaults (``--set key=value`` overrides)
   through :func:`automech.experiment.train`, into ``bench/runs/METHOD-SETTING-seedS``
   (rerunning resumes an interrupted run and does not retrain a finished one);
   (a finished run is reused, flagged ``reused_finished_run``; its training time is then
   the one recorded in its history, ``training_seconds_in_loop``);
2. scores the result with the shared protocol (:func:`automech.evaluate`): revenue on
   ``--samples`` test profiles (with its standard error) and regret by the shared
   misreport search on ``--regret-profiles`` of them, with the budget given by
   ``--random``, ``--ascent-starts`` and ``--ascent-steps`` (recorded in the output);
3. measures the regret the *training-time attacker* sees on the same profiles
   (RegretNet: ``misreport_steps`` Adam steps from one prior draw;
   ALGNet: the final misreporter network, saved as ``misreporter.pt`` in the run
   directory), and reports how much the shared protocol finds beyond it
   (``protocol / attacker``);
4. optionally (``--time-thorough P``) times the papers' THOROUGH search (1,000 restarts x
   2,000 Adam steps) on P profiles and extrapolates to its 10,000 profiles.

It records wall time, training steps per second (from the run's history), the machine
and the load average, and writes ``bench/results/METHOD-SETTING.json``.

    python bench/regretnet.py                                  # regretnet on 1x2 and 2x2
    python bench/regretnet.py --cases algnet:2x2-uniform
    python bench/myersonnet.py                                 # myersonnet cases
    python bench/regretnet.py --cases regretnet:2x2-uniform --set steps=200 --quick
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

from automech import RegretSearch, evaluate, get_setting
from automech.evaluation.protocol import TEST_SEED
from automech.evaluation.regret import THOROUGH
from automech.experiment import parse_assignments, train
from automech.mechanisms import Myerson, SeparateMyerson
from automech.methods import get_method
from automech.runs import Run

ROOT = Path(__file__).resolve().parent
#: Exact optimal / reference revenues (shared/reference/benchmarks.md).
REFERENCE = {
    "1x2-uniform": ("optimal (Manelli-Vincent), exact", 0.549201),
    "2x2-uniform": ("RegretNet / ALGNet, published", 0.878),
    "3x1-uniform": ("Myerson, exact", 0.53125),
    "3x1-exponential": ("Myerson, exact: 3/e - 3/(2e^2) + 1/(3e^3)", 0.917234),
    "2x1-uniform": ("Myerson, exact", 0.416667),
}
DEFAULT_CASES = {
    "regretnet": ["regretnet:1x2-uniform", "regretnet:2x2-uniform"],
    "algnet": ["algnet:1x2-uniform", "algnet:2x2-uniform"],
    "myersonnet": ["myersonnet:3x1-uniform", "myersonnet:3x1-exponential"],
}


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
    }


def training_attacker_regret(
    method: str, mechanism, values: torch.Tensor, options: dict, run_dir: Path
) -> dict | None:
    """Regret the training-time attacker finds on ``values`` (mean over profiles, bidders)."""
    if method == "regretnet":
        from automech.methods.regretnet import attacker_regret

        r = attacker_regret(
            mechanism, values, steps=options["misreport_steps"], lr=options["misreport_lr"]
        )
        return {
            "attacker": f"{options['misreport_steps']} Adam steps from one prior draw "
            "(no warm start)",
            "regret_mean": float(r.mean()),
            "regret_max": float(r.max()),
        }
    if method == "algnet":
        from automech.methods.algnet import load_misreporter, misreporter_regret

        misreporter = load_misreporter(run_dir, mechanism.setting)
        r = misreporter_regret(mechanism, values, misreporter)
        if r is None:
            return {
                "attacker": "none: the run directory holds no trained misreporter (misreporter.pt)",
                "regret_mean": None,
                "regret_max": None,
            }
        refined = misreporter_regret(
            mechanism, values, misreporter, options["refine_steps"], options["refine_lr"]
        )
        return {
            "attacker": "final misreporter network",
            "regret_mean": float(r.mean()),
            "regret_max": float(r.max()),
            "refined": {
                "attacker": f"misreporter + {options['refine_steps']} Adam steps "
                "(the training attacker)",
                "regret_mean": float(refined.mean()),
                "regret_max": float(refined.max()),
            },
        }
    return None


def time_thorough(mechanism, setting, profiles: int) -> dict:
    """THOROUGH's cost on ``profiles`` profiles, extrapolated to its 10,000."""
    search = RegretSearch(**{**THOROUGH.to_dict(), "profiles": profiles})
    start = time.perf_counter()
    report = evaluate(mechanism, setting, samples=profiles, search=search)
    seconds = time.perf_counter() - start
    return {
        "profiles": profiles,
        "seconds": seconds,
        "extrapolated_seconds_for_10000": seconds * THOROUGH.profiles / profiles,
        "regret_mean_on_these_profiles": report.regret_mean,
    }


def run_case(case: str, args, overrides: dict) -> dict:
    method, setting_name = case.split(":")
    setting = get_setting(setting_name)
    meth = get_method(method)
    options = meth.resolve(setting, meth.Options.resolve(overrides)).to_dict()
    tag = f"-{args.tag}" if args.tag else ""
    out = ROOT / "runs" / f"{method}-{setting_name}-seed{args.seed}{tag}"
    print(f"[{case}] training into {out}", file=sys.stderr, flush=True)
    reused = False
    if (out / "checkpoint.pt").exists():
        state = Run(out).checkpoint().get("training_state") or {}
        reused = bool(state.get("finished"))
    start = time.perf_counter()
    mechanism, run = train(
        setting,
        method,
        overrides,
        seed=args.seed,
        out=out,
        search=None,
        eval_samples=1_000,
        progress=sys.stderr.isatty(),
    )
    wall = time.perf_counter() - start
    history = run.history()
    train_seconds = max((r.get("seconds", 0.0) for r in history), default=0.0)
    steps = options.get("steps", 0)
    print(f"[{case}] trained in {wall:.0f} s; evaluating", file=sys.stderr, flush=True)

    search = RegretSearch(
        profiles=args.regret_profiles,
        random=args.random,
        ascent_starts=args.ascent_starts,
        ascent_steps=args.ascent_steps,
    )
    if method == "myersonnet":
        search = RegretSearch(profiles=args.regret_profiles, random=args.random)
    start = time.perf_counter()
    report = evaluate(mechanism, setting, samples=args.samples, search=search)
    eval_seconds = time.perf_counter() - start
    values = torch.as_tensor(setting.sample(args.samples, TEST_SEED), dtype=mechanism.dtype)[
        : args.regret_profiles
    ]
    attacker = training_attacker_regret(method, mechanism, values, options, run.path)
    result = {
        "case": case,
        "method": method,
        "setting": setting_name,
        "seed": args.seed,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": options,
        "run_dir": str(out),
        "revenue": report.revenue,
        "revenue_se": report.revenue_se,
        "test_samples": report.samples,
        "ir_violation_rate": report.ir_violation_rate,
        "infeasible_rate": report.infeasible_rate,
        "regret_protocol": {
            "mean": report.regret_mean,
            "se": report.regret_se,
            "max": report.regret_max,
            "per_bidder": report.regret_per_bidder,
            "profiles": report.regret_samples,
            "search": report.search,
            "seconds": eval_seconds,
        },
        "regret_training_attacker": attacker,
        "train_regret_last_logged": next(
            (r["train_regret"] for r in reversed(history) if "train_regret" in r), None
        ),
        "reused_finished_run": reused,
        "wall_seconds_training": wall,
        "training_seconds_in_loop": train_seconds,
        "steps": steps,
        "steps_per_second": steps / train_seconds if train_seconds else None,
    }
    if attacker and attacker["regret_mean"] and report.regret_mean is not None:
        result["protocol_over_attacker"] = report.regret_mean / attacker["regret_mean"]
    if method == "myersonnet":
        ref = evaluate(Myerson(setting), setting, samples=args.samples, search=None)
        result["myerson_revenue_same_profiles"] = ref.revenue
        result["ratio_to_myerson"] = report.revenue / ref.revenue
    elif setting.num_items > 1 and SeparateMyerson.applicable(setting) is None:
        ref = evaluate(SeparateMyerson(setting), setting, samples=args.samples, search=None)
        result["separate_myerson_revenue_same_profiles"] = ref.revenue
    if setting_name in REFERENCE:
        label, value = REFERENCE[setting_name]
        result["reference"] = {"what": label, "revenue": value, "ratio": report.revenue / value}
    if args.time_thorough:
        print(
            f"[{case}] timing THOROUGH on {args.time_thorough} profiles",
            file=sys.stderr,
            flush=True,
        )
        result["thorough_timing"] = time_thorough(mechanism, setting, args.time_thorough)
    return result


def main(argv=None, default_method: str = "regretnet") -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        default=",".join(DEFAULT_CASES[default_method]),
        help="comma-separated METHOD:SETTING",
    )
    parser.add_argument(
        "--set",
        dest="set_",
        action="append",
        default=[],
        help="method option key=value, applied to every case (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=100_000, help="test profiles")
    parser.add_argument("--regret-profiles", type=int, default=10_000)
    parser.add_argument(
        "--random", type=int, default=1_000, help="random misreports per profile and bidder"
    )
    parser.add_argument("--ascent-starts", type=int, default=8)
    parser.add_argument("--ascent-steps", type=int, default=400)
    parser.add_argument(
        "--time-thorough",
        type=int,
        default=0,
        metavar="P",
        help="time the THOROUGH search on P profiles and extrapolate",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small evaluation (10,000 test profiles, regret on 500)",
    )
    parser.add_argument(
        "--tag",
        default="",
        help="suffix of the run directory and result "
        "file names (to keep runs with other options apart)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.regret_profiles, args.random = 10_000, 500, 256
    torch.set_num_threads(args.threads)
    overrides = parse_assignments(args.set_)
    args.out.mkdir(parents=True, exist_ok=True)
    for case in args.cases.split(","):
        result = run_case(case.strip(), args, overrides)
        tag = f"-{args.tag}" if args.tag else ""
        path = args.out / f"{result['method']}-{result['setting']}{tag}.json"
        path.write_text(json.dumps(result, indent=2))
        print(
            json.dumps(
                {k: result[k] for k in ("case", "revenue", "revenue_se")}
                | {
                    "regret_protocol": result["regret_protocol"]["mean"],
                    "regret_training_attacker": (result["regret_training_attacker"] or {}).get(
                        "regret_mean"
                    ),
                    "steps_per_second": result["steps_per_second"],
                }
            ),
            flush=True,
        )
        print(f"[{case}] wrote {path}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

"""Robustness: every learned method, with its defaults, on priors that are not U[0,1].

Issue 20, item 2.  For each prior of :data:`BATTERY` (values in dollars and in cents,
shifted and asymmetric supports, exponential and lognormal values, a correlated prior, a
finite prior, unit demand on a shifted support, two bidders) and each learned method that
applies to it (``get_method(name).refusal(setting)``), train with the method's defaults
through ``automech.experiment.train`` (the path of ``automech train``) with
``baseline=True``, so that the best strategyproof classical mechanism is scored on the same
test profiles, and record:

* the design's revenue and its standard error (``exact``: an expectation over a finite
  prior's support, standard error 0);
* the best classical baseline (name, revenue, se), ``below_baseline`` (more than two
  standard errors of the difference below it) and the gap;
* the optimum where one is known (:data:`BATTERY`, with its source) and revenue / optimum;
* regret (mean, max) from the shared protocol's misreport search, the IR violation rate;
* steps used (the stopping rule's ``training`` record of ``metrics.json``), training and
  wall seconds.

The LP runs on finite priors only, as it is (``grid=0``): there its optimum is exact.
``--set KEY=VALUE`` overrides an option of every method that has it (``steps=50`` for a
smoke run).  Every row is trained in its own process with one torch thread when
``--jobs`` > 1 (one thread in this process otherwise); rows are ordered as the battery
and the method list, whatever the schedule, and the same seed gives the same numbers.
Prints JSON (and a Markdown table with ``--markdown``); writes
bench/results/robustness.json (``--out`` to change).

    python bench/robustness.py                                  # everything (hours)
    python bench/robustness.py --priors 1x2-uniform-100 --methods rochetnet --set steps=30
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from automech.device import configure_threads
from automech.errors import AutomechError
from automech.evaluation import TEST_PROFILES, RegretSearch
from automech.experiment import parse_assignments, train
from automech.methods import REGISTRY, get_method
from automech.problems import Setting
from automech.problems.finite_types import support_size

RESULTS = Path(__file__).parent / "results" / "robustness.json"

#: Manelli & Vincent (2006): the optimal revenue of 1x2 additive U[0,1], (12 + 2 sqrt 2)/27.
MANELLI_VINCENT = (12 + 2 * math.sqrt(2)) / 27

#: 1x2 additive U[4,5]^2: virtual values 2v - 5 >= 3 > 0 on the whole support, so pure
#: bundling is optimal (Menicucci, Hurkens & Jeon 2015; Thirumulanathan, Sundaresan &
#: Narahari 2019 find the bundle-sale structure for high c).  The bundle v1 + v2 has a
#: triangular law on [8, 10]; at price 8 + x (x <= 1) it sells with probability 1 - x^2/2,
#: and the best x solves 1.5 x^2 + 8 x - 1 = 0.  (The LP on a 24 x 24 midpoint grid of the
#: square, 8.082682, equals the best bundle price on that grid exactly.)
_X = (math.sqrt(70) - 8) / 3
SHIFTED_BUNDLE = (8 + _X) * (1 - _X**2 / 2)

#: Two bidders, one item, i.i.d. exponential with mean mu: Myerson's virtual value is
#: v - mu, so the optimum is second price with reserve mu, earning
#: E[(max(v1, v2) - mu)^+] = int_mu^inf (2 e^{-x/mu} - e^{-2x/mu}) dx = mu (2/e - 1/(2 e^2)).
EXP_MEAN = 50.0
EXPONENTIAL_2X1 = EXP_MEAN * (2 / math.e - 1 / (2 * math.e**2))

#: lognormal(mu, sigma) has mean exp(mu + sigma^2 / 2): sigma 0.5, mean 50.
LOGNORMAL_SIGMA = 0.5
LOGNORMAL_MU = math.log(50.0) - LOGNORMAL_SIGMA**2 / 2

FOUR_PROFILES = {
    "kind": "discrete",
    "profiles": [[[1.0], [2.0]], [[3.0], [1.0]], [[2.0], [2.0]], [[4.0], [3.0]]],
    "probabilities": [0.1, 0.2, 0.3, 0.4],
}

#: One bidder whose type is one of four listed value pairs, in dollars.
LISTED_TYPES = {
    "kind": "discrete",
    "types": [[[10.0, 40.0], [40.0, 10.0], [30.0, 30.0], [50.0, 50.0]]],
    "type_probabilities": [[0.25, 0.25, 0.3, 0.2]],
}

#: Name -> (setting dict without its name, known optimum or None, where it comes from).
#: An optimum of "lp" is the LP's own optimum on the finite prior, solved when the
#: battery is built.
BATTERY: dict[str, tuple[dict[str, Any], float | str | None, str]] = {
    "1x2-uniform-100": (
        {"bidders": 1, "items": 2, "prior": {"kind": "uniform", "low": 0.0, "high": 100.0}},
        100 * MANELLI_VINCENT,
        "Manelli & Vincent (2006), 100 x (12 + 2 sqrt 2)/27 (exact)",
    ),
    "1x2-uniform-0.01": (
        {"bidders": 1, "items": 2, "prior": {"kind": "uniform", "low": 0.0, "high": 0.01}},
        0.01 * MANELLI_VINCENT,
        "Manelli & Vincent (2006), 0.01 x (12 + 2 sqrt 2)/27 (exact)",
    ),
    "1x2-shifted-4-5": (
        {"bidders": 1, "items": 2, "prior": {"kind": "uniform", "low": 4.0, "high": 5.0}},
        SHIFTED_BUNDLE,
        "pure bundling at 8 + (sqrt 70 - 8)/3 (exact): virtual values > 0 on the support "
        "(Menicucci, Hurkens & Jeon 2015); Pavlov (2011) / Thirumulanathan et al. (2019)",
    ),
    "1x2-asym-4-16-4-7": (
        {
            "bidders": 1,
            "items": 2,
            "prior": {"kind": "uniform", "low": [4.0, 4.0], "high": [16.0, 7.0]},
        },
        9.7778,
        "issue 20 (Daskalakis, Deckelbaum & Tzamos 2017 example; separate Myerson 9.3333), "
        "given to 4 decimals",
    ),
    "1x2-exponential-50": (
        {"bidders": 1, "items": 2, "prior": {"kind": "exponential", "mean": EXP_MEAN}},
        None,
        "no closed form encoded here: the best classical baseline is the bar",
    ),
    "1x2-lognormal-50": (
        {
            "bidders": 1,
            "items": 2,
            "prior": {"kind": "lognormal", "mu": LOGNORMAL_MU, "sigma": LOGNORMAL_SIGMA},
        },
        None,
        "none known (mean 50, sigma 0.5): the best classical baseline is the bar",
    ),
    "2x2-correlated-100": (
        {
            "bidders": 2,
            "items": 2,
            "prior": {
                "kind": "correlated",
                "center_low": 25.0,
                "center_high": 75.0,
                "spread": 25.0,
            },
        },
        None,
        "none known (TEDI paper's correlated prior x 100): the best classical baseline is the bar",
    ),
    "2x1-discrete-4": (
        {"bidders": 2, "items": 1, "prior": FOUR_PROFILES},
        "lp",
        "the LP's optimum on the 4 listed profiles (exact: automech.methods.lp.solve)",
    ),
    "1x2-discrete-types": (
        {"bidders": 1, "items": 2, "prior": LISTED_TYPES},
        "lp",
        "the LP's optimum on the 4 listed types (exact: automech.methods.lp.solve)",
    ),
    "1x2-unit-shifted-2-3": (
        {
            "bidders": 1,
            "items": 2,
            "valuation": "unit-demand",
            "prior": {"kind": "uniform", "low": 2.0, "high": 3.0},
        },
        None,
        "no closed form encoded here (Thirumulanathan et al. 2019 characterise its structure)",
    ),
    "2x2-uniform-100": (
        {"bidders": 2, "items": 2, "prior": {"kind": "uniform", "low": 0.0, "high": 100.0}},
        None,
        "none known: the best classical baseline is the bar",
    ),
    "1x2-unlimited-100": (
        {
            "bidders": 1,
            "items": 2,
            "supply": "unlimited",
            "objective": {"kind": "revenue-minus-cost", "production_cost": 0.0},
            "prior": {"kind": "uniform", "low": 0.0, "high": 100.0},
        },
        100 * MANELLI_VINCENT,
        "TEDI's problem class with one bidder and no cost is 1x2 U[0,100]: Manelli & "
        "Vincent (2006) x 100 (exact)",
    ),
    "2x1-exponential-50": (
        {"bidders": 2, "items": 1, "prior": {"kind": "exponential", "mean": EXP_MEAN}},
        EXPONENTIAL_2X1,
        "Myerson (1981): second price with reserve 50, 50 (2/e - 1/(2 e^2)) (exact)",
    ),
}

#: The learned (or optimised) static methods, in registry order.
LEARNED = [name for name in REGISTRY if get_method(name).kind == "static"]


def setting_of(name: str) -> Setting:
    return Setting.from_dict({"name": name, **BATTERY[name][0]})


def finite(setting: Setting) -> bool:
    return support_size(setting.prior) is not None


def known_optimum(name: str) -> float | None:
    value = BATTERY[name][1]
    if value == "lp":
        from automech.methods.lp import solve

        return float(solve(setting_of(name))[1]["objective"])
    return None if value is None else float(value)  # type: ignore[arg-type]


def refusal(method: str, setting: Setting) -> str | None:
    """Why ``method`` gets no row on ``setting`` (None when it runs)."""
    if method == "lp" and not finite(setting):
        return "this bench runs the LP on finite priors only (grid=0, where it is exact)"
    meth = get_method(method)
    return meth.refusal(setting) or meth.conflict(
        setting, meth.resolve(setting, meth.Options.resolve({}))
    )


def options_for(method: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The ``--set`` overrides that ``method`` has an option for."""
    fields = {f.name for f in dataclasses.fields(get_method(method).Options)}
    return {k: v for k, v in overrides.items() if k in fields}


def _worker_init() -> None:
    configure_threads(1)


def run_row(task: dict[str, Any]) -> dict[str, Any]:
    """Train and score one (prior, method) pair; a failure is recorded, not raised."""
    prior, method = task["prior"], task["method"]
    setting = setting_of(prior)
    out = Path(task["runs"]) / f"{prior}-{method}-seed{task['seed']}"
    row: dict[str, Any] = {
        "prior": prior,
        "method": method,
        "options": task["options"],
        "resumed": out.exists(),
    }
    start = time.perf_counter()
    try:
        _, run = train(
            setting,
            method,
            task["options"],
            seed=task["seed"],
            out=out,
            eval_samples=task["samples"],
            search=RegretSearch(profiles=task["regret_profiles"]),
            baseline=True,
        )
    except Exception as err:  # noqa: BLE001 - one failed row must not lose the battery
        row.update(
            status="error",
            error=f"{type(err).__name__}: {err}",
            wall_seconds=round(time.perf_counter() - start, 2),
        )
        return row
    wall = time.perf_counter() - start
    m = run.read_json("metrics.json")
    seconds = [r["seconds"] for r in run.history() if "seconds" in r]
    optimum = task["optimum"]
    base = m.get("baseline")
    row.update(
        status="ok",
        revenue=m["revenue"],
        revenue_se=m["revenue_se"],
        exact=m.get("exact", False),
        samples=m["samples"],
        note=m.get("note"),
        baseline=None
        if base is None
        else {k: base[k] for k in ("mechanism", "revenue", "revenue_se", "samples")},
        below_baseline=m.get("below_baseline"),
        gap_to_baseline=m.get("gap_to_baseline"),
        gap_to_baseline_percent=None
        if base is None or not base["revenue"]
        else 100 * m["gap_to_baseline"] / base["revenue"],
        optimum=optimum,
        ratio_to_optimum=None if optimum is None else m["revenue"] / optimum,
        within_1pct_of_optimum=None if optimum is None else m["revenue"] >= 0.99 * optimum,
        regret_mean=m["regret_mean"],
        regret_max=m["regret_max"],
        regret_profiles=m["regret_samples"],
        ir_violation_rate=m["ir_violation_rate"],
        infeasible_rate=m["infeasible_rate"],
        training=m.get("training"),
        train_seconds=round(max(seconds), 2) if seconds else None,
        wall_seconds=round(wall, 2),
    )
    if task["keep_runs"]:
        row["run_dir"] = str(out)
    return row


def summarise(rows: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] == "ok"]
    judged = [r for r in ok if r["below_baseline"] is not None]
    below = [r for r in judged if r["below_baseline"]]
    with_opt = [r for r in ok if r["optimum"] is not None]
    return {
        "rows": len(rows),
        "errors": [
            {"prior": r["prior"], "method": r["method"], "error": r["error"]}
            for r in rows
            if r["status"] == "error"
        ],
        "skipped": len(skipped),
        "at_or_above_baseline": len(judged) - len(below),
        "compared_with_baseline": len(judged),
        "below_baseline": [
            {
                "prior": r["prior"],
                "method": r["method"],
                "revenue": r["revenue"],
                "baseline": r["baseline"]["mechanism"],
                "baseline_revenue": r["baseline"]["revenue"],
                "gap": r["gap_to_baseline"],
                "gap_percent": r["gap_to_baseline_percent"],
            }
            for r in below
        ],
        "with_known_optimum": len(with_opt),
        "within_1pct_of_optimum": sum(bool(r["within_1pct_of_optimum"]) for r in with_opt),
        "short_of_optimum_by_more_than_1pct": [
            {"prior": r["prior"], "method": r["method"], "ratio": r["ratio_to_optimum"]}
            for r in with_opt
            if not r["within_1pct_of_optimum"]
        ],
    }


def _num(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}" if abs(x) >= 1 or x == 0 else f"{x:.{digits}g}"


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| prior | method | revenue ± se | best baseline | optimum | ratio | regret mean / max "
        "| IR viol. | steps | wall s |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['prior']} | {r['method']} | error: {r['error']} |||||||")
            continue
        se = "exact" if r["exact"] else _num(r["revenue_se"])
        b = r["baseline"]
        base = "-" if b is None else f"{b['mechanism']} {_num(b['revenue'])}"
        if r["below_baseline"]:
            base += " **(design below)**"
        steps = r["training"]["steps_used"] if r["training"] else "-"
        lines.append(
            f"| {r['prior']} | {r['method']} | {_num(r['revenue'])} ± {se} | {base} "
            f"| {_num(r['optimum'])} | {_num(r['ratio_to_optimum'])} "
            f"| {_num(r['regret_mean'], 2)} / {_num(r['regret_max'], 2)} "
            f"| {_num(r['ir_violation_rate'], 3)} | {steps} | {r['wall_seconds']:.0f} |"
        )
    return "\n".join(lines)


def _fail(message: str) -> None:
    """Bad input: one line naming the problem, exit code 2."""
    print(f"robustness.py: {message}", file=sys.stderr)
    sys.exit(2)


def _names(raw: str | None, known: list[str], what: str) -> list[str]:
    if raw is None:
        return list(known)
    names = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = [s for s in names if s not in known]
    if unknown or not names:
        _fail(f"unknown {what} {unknown or raw!r}; known: {', '.join(known)}")
    return names


def merged(
    old: dict[str, Any],
    rows: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    info: dict[str, Any],
    key: str,
    order: list[str],
    redone: set[tuple[str, str]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """``--merge``: the rows of an earlier results file ``old`` whose (``key``, method) is
    not in ``redone``, with this run's rows, in ``order`` then registry order; the skips
    and the per-problem info (``old[key + "s"]``) of both."""
    kept = [r for r in old["rows"] if (r[key], r["method"]) not in redone]
    place = {name: i for i, name in enumerate(order)}
    rank = {name: i for i, name in enumerate(LEARNED)}
    rows = sorted(kept + rows, key=lambda r: (place.get(r[key], 99), rank.get(r["method"], 99)))
    skipped = old.get("skipped", []) + [s for s in skipped if s not in old.get("skipped", [])]
    return rows, skipped, {**old.get(key + "s", {}), **info}


def machine(load_start: tuple[float, float, float]) -> dict[str, Any]:
    """The machine a results file was measured on, with the load at start and now."""
    return {
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads_per_row": 1,
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--priors", help=f"comma list (default all: {', '.join(BATTERY)})")
    parser.add_argument("--methods", help=f"comma list (default all: {', '.join(LEARNED)})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=TEST_PROFILES, help="test profiles")
    parser.add_argument("--regret-profiles", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (1 thread each)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an option of every method that has it",
    )
    parser.add_argument("--runs", type=Path, help="runs root (default: a temporary directory)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of an existing --out file that this run does not redo "
        "(rerun a few rows after a change; each row records its own command)",
    )
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument(
        "--render",
        action="store_true",
        help="print the Markdown table of an existing --out file (and its summary); run nothing",
    )
    args = parser.parse_args(argv)
    if args.render:
        if not args.out.is_file():
            _fail(f"--render: no results file {args.out}")
        saved = json.loads(args.out.read_text())
        print(markdown(saved["rows"]))
        print(json.dumps(saved.get("summary"), indent=2))
        return saved
    if args.jobs < 1 or args.samples < 1 or args.regret_profiles < 1:
        _fail("--jobs, --samples and --regret-profiles must be >= 1")
    priors = _names(args.priors, list(BATTERY), "prior(s)")
    methods = _names(args.methods, LEARNED, "method(s)")
    try:
        overrides = parse_assignments(args.set)
        for method in methods:  # bad values now, not after hours of other rows
            get_method(method).Options.resolve(options_for(method, overrides))
    except AutomechError as err:
        _fail(str(err))
    unused = [k for k in overrides if not any(options_for(m, {k: 0}) for m in methods)]
    if unused:
        _fail(f"--set {unused[0]}: none of the methods {', '.join(methods)} has that option")
    configure_threads(1)

    load_start = os.getloadavg()
    started = time.perf_counter()
    tmp = None if args.runs else tempfile.TemporaryDirectory(prefix="robustness-")
    runs_root = args.runs or Path(tmp.name)  # type: ignore[union-attr]
    tasks, skipped, info = [], [], {}
    for prior in priors:
        setting = setting_of(prior)
        optimum = known_optimum(prior)
        info[prior] = {
            "setting": setting.to_dict(),
            "value_unit": setting.value_unit,
            "optimum": optimum,
            "optimum_source": BATTERY[prior][2],
        }
        for method in methods:
            reason = refusal(method, setting)
            if reason:
                skipped.append({"prior": prior, "method": method, "reason": reason})
                continue
            tasks.append(
                {
                    "prior": prior,
                    "method": method,
                    "options": options_for(method, overrides),
                    "seed": args.seed,
                    "samples": args.samples,
                    "regret_profiles": args.regret_profiles,
                    "optimum": optimum,
                    "runs": str(runs_root),
                    "keep_runs": args.runs is not None,
                }
            )
    try:
        if args.jobs == 1:
            rows = []
            for t in tasks:
                rows.append(run_row(t))
                _progress(rows[-1])
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_worker_init) as pool:
                futures = [pool.submit(run_row, t) for t in tasks]
                rows = []
                for f in futures:  # submission order: deterministic whatever the schedule
                    rows.append(f.result())
                    _progress(rows[-1])
    finally:
        if tmp is not None:
            tmp.cleanup()

    command = " ".join(["python", "bench/robustness.py", *(argv or sys.argv[1:])])
    for row in rows:
        row["command"] = command
    if args.merge and args.out.is_file():
        redone = {(r["prior"], r["method"]) for r in rows + skipped}
        rows, skipped, info = merged(
            json.loads(args.out.read_text()), rows, skipped, info, "prior", list(BATTERY), redone
        )
    result = {
        "benchmark": "robustness",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(load_start),
        "command": command,
        "seed": args.seed,
        "samples": args.samples,
        "regret_profiles": args.regret_profiles,
        "jobs": args.jobs,
        "overrides": overrides,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "priors": info,
        "rows": rows,
        "skipped": skipped,
        "summary": summarise(rows, skipped),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if args.markdown:
        print()
        print(markdown(rows))
    return result


def _progress(row: dict[str, Any]) -> None:
    if row["status"] == "ok":
        flag = " BELOW BASELINE" if row["below_baseline"] else ""
        text = f"revenue {row['revenue']:.6g}{flag}, {row['wall_seconds']:.0f} s"
    else:
        text = row["error"]
    print(f"[robustness] {row['prior']} {row['method']}: {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    result = main()
    sys.exit(1 if result["summary"]["errors"] else 0)

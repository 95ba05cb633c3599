"""An honest leaderboard: every learned method's defaults, audited with converged regret.

Issue 23, item 6.  For each setting of :data:`SETTINGS` (1x2, 2x2, 2x3, 2x5 and 3x10
additive U[0,1], and 2x2 unit-demand U[0,1]) and each learned static method that applies
(``get_method(name).refusal(setting)`` is None), train with the method's defaults through
``automech.experiment.train`` (the path of ``automech train``) with ``baseline=True``, so
that the best strategyproof classical mechanism is scored on the same test profiles, then
audit the design with the shared protocol and its budget ladder,
``evaluate(mech, setting, samples=S, search=RegretSearch(profiles=R), ladder=Ladder())``
(:mod:`automech.evaluation.ladder`: the misreport search rerun with its budget doubled
until mean regret moves by less than 5 % and less than two standard errors).  Each row
records

* revenue and its standard error on ``--samples`` test profiles (the protocol's seed);
* regret mean, standard error and max of the last rung, every rung (budget, mean, se,
  max, seconds), whether and at which budget the ladder converged;
* regret-adjusted revenue ``(sqrt(P) - sqrt(R))^2`` with R the mean regret summed over
  bidders (Rahme, Jelassi and Weinberg, "Auction Learning as a Two-Player Game", ICLR
  2021, section 3);
* how strategyproofness is known (:func:`how_strategyproof`): "by construction" (menus:
  RochetNet, the one-bidder LP, GemNet after its price adjustment; affine maximizers;
  MyersonNet), "certified" (a ReLU/sparsemax RegretNet or ALGNet network whose regret on
  ``--certify-profiles`` profiles was bounded by MILP, :mod:`automech.evaluation.certify`;
  the certificate is kept as ``certificate.json`` in the run directory), or "sampled"
  (RegretNet and ALGNet as trained by default, tanh networks: only approximately
  strategyproof, regret known from the search alone);
* the best classical baseline on the same profiles, training seconds and steps used
  (``metrics.json``'s ``baseline`` and ``training``; "loop s" the gradient loop's time from
  the run history, "train wall s" all of ``train`` -- for GemNet its AMA start and price
  adjustment, for every method the revenue evaluation and the baseline), IR violation and
  infeasibility;
* the published figures for that setting and method (:data:`PUBLISHED`, from
  ``../shared/reference/benchmarks.md`` with the source it names), and the setting's
  references (exact optima and baselines, You et al. 2026's re-attacked model with its
  adjusted revenue, RegretFormer, AMenuNet).

The LP runs on one-bidder settings only, on a ``--lp-grid`` grid per item (default 15:
HiGHS solves the 1x2 grid in about 14 s, bench/results/lp_scaling.json): off the grid its
one-bidder table is a menu, DSIC for every bid; with several bidders its rounded table is
DSIC on the grid only and a coarse grid is far below the other designs (lp_scaling's
2x2 rows), so it gets no row there.

``--set KEY=VALUE`` overrides an option of every method that has it (``steps=5`` for a
smoke run).  With ``--jobs`` > 1 every row runs in its own process with one torch thread
(one thread in this process otherwise); rows are ordered by setting and method whatever
the schedule, and the same seed gives the same numbers.  Prints JSON (and Markdown
tables with ``--markdown``); writes bench/results/leaderboard.json (``--out``).

    python bench/leaderboard.py --jobs 2 --runs runs/leaderboard --markdown  # hours
    python bench/leaderboard.py --settings 1x2-uniform --methods rochetnet --set steps=30
    python bench/leaderboard.py --render   # the tables of bench/results/leaderboard.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from automech.device import configure_threads
from automech.errors import AutomechError
from automech.evaluation import TEST_PROFILES, TEST_SEED, Ladder, RegretSearch, evaluate
from automech.experiment import parse_assignments, train
from automech.methods import get_method
from automech.problems import Setting, get_setting

_SPEC = importlib.util.spec_from_file_location(
    "robustness_bench", Path(__file__).with_name("robustness.py")
)
assert _SPEC is not None and _SPEC.loader is not None
robustness = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(robustness)

RESULTS = Path(__file__).parent / "results" / "leaderboard.json"

#: The settings of issue 23, item 6 (registered names).
SETTINGS = [
    "1x2-uniform",
    "2x2-uniform",
    "2x3-uniform",
    "2x5-uniform",
    "3x10-uniform",
    "2x2-unit-uniform",
]

#: The learned static methods, in registry order (bench/robustness.py's list).
LEARNED: list[str] = list(robustness.LEARNED)

#: Points per item of the LP's grid on a continuous one-bidder prior.
LP_GRID = 15

#: Profiles certified per ReLU/sparsemax RegretNet or ALGNet row, and seconds per MILP.
CERTIFY_PROFILES = 100
CERTIFY_TIME_LIMIT = 60.0

#: File of the certificate in a run directory (written here, reused when it matches).
CERTIFICATE = "certificate.json"

LOTTERY = (
    "Curry, Sandholm & Dickerson (2023), Differentiable Economics for Randomized Affine "
    "Maximizer Auctions (lottery-affine-maximizer-auctions.txt)"
)
AMENU = "Duan et al. (2023), AMenuNet paper (secondary source, via benchmarks.md)"
YOU = (
    "You, Zhuang, Wang, Wang (arXiv 2601.13489, 2026): their own model under their attack "
    "(benchmarks.md)"
)
REGRETFORMER = (
    "RegretFormer (Ivanov et al., NeurIPS 2022), regret budget 1e-3 by its own attack "
    "(1,000 Adam steps from one start; benchmarks.md)"
)
EXACT = "exact (benchmarks.md, known optima and closed-form baselines)"


def _pub(
    what: str,
    revenue: float,
    source: str,
    method: str | None = None,
    regret: str | None = None,
    adjusted: float | None = None,
    optimum: bool = False,
) -> dict[str, Any]:
    return {
        "what": what,
        "method": method,
        "revenue": revenue,
        "regret": regret,
        "revenue_adjusted": adjusted,
        "optimum": optimum,
        "source": source,
    }


#: Setting -> the figures of ../shared/reference/benchmarks.md for it.  ``method`` names
#: the automech method the figure is for (None: a reference for the whole setting);
#: ``regret`` is the published text ("0" for designs DSIC by construction).
PUBLISHED: dict[str, list[dict[str, Any]]] = {
    "1x2-uniform": [
        _pub(
            "optimum (Manelli-Vincent 2006): items 2/3, bundle (4 - sqrt 2)/3",
            0.549201,
            EXACT + ": (12 + 2 sqrt 2)/27",
            regret="0",
            optimum=True,
        ),
        _pub("best pure bundle (price 0.8165)", 0.544331, EXACT, regret="0"),
    ],
    "2x2-uniform": [
        _pub("separate Myerson", 0.833333, EXACT, regret="0"),
        _pub("grand bundle (2nd price, reserve 0.8165)", 0.839244, EXACT, regret="0"),
        _pub("Lottery AMA", 0.868, f"{LOTTERY}, Table 2", "lottery-ama", "0"),
        _pub("AMA (Sandholm-Likhodedov)", 0.862, f"{LOTTERY}, Table 2", "deterministic-ama", "0"),
        _pub("MBARP", 0.871, f"{LOTTERY}, Table 2", regret="0"),
        _pub("RegretNet", 0.878, f"{LOTTERY}, Table 2", "regretnet", "< 0.001"),
        _pub("ALGNet", 0.879, f"{LOTTERY}, Table 2", "algnet", "0.00058"),
        _pub("You et al. model, re-attacked", 0.899, YOU, regret="0.00122 (total)", adjusted=0.832),
        _pub("RegretFormer", 0.908, REGRETFORMER, regret="<= 0.001"),
    ],
    "2x3-uniform": [
        _pub("RegretFormer", 1.416, REGRETFORMER, regret="<= 0.001"),
    ],
    "2x5-uniform": [
        _pub("separate Myerson", 2.083333, EXACT, regret="0"),
        _pub("grand bundle", 2.188431, EXACT, regret="0"),
        _pub("Lottery AMA", 2.2354, AMENU, "lottery-ama", "0"),
        _pub("AMenuNet", 2.2768, AMENU, regret="0"),
        _pub("You et al. model, re-attacked", 2.337, YOU, regret="0.0020 (total)", adjusted=2.196),
        _pub("RegretFormer", 2.453, REGRETFORMER, regret="<= 0.001"),
    ],
    "3x10-uniform": [
        _pub("separate Myerson", 5.3125, EXACT, regret="0"),
        _pub("grand bundle", 5.003021, EXACT, regret="0"),
        _pub("Lottery AMA (4096 allocations)", 5.345, f"{LOTTERY}, Table 3", "lottery-ama", "0"),
        _pub("RegretNet", 5.541, f"{LOTTERY}, Table 3", "regretnet", "0.002"),
        _pub("ALGNet", 5.562, f"{LOTTERY}, Table 3", "algnet", "0.002"),
        _pub("AMenuNet", 5.5896, AMENU, regret="0"),
        _pub("You et al. model, re-attacked", 5.785, YOU, regret="0.0101 (total)", adjusted=5.264),
        _pub("RegretFormer", 6.121, REGRETFORMER, regret="<= 0.001"),
    ],
    "2x2-unit-uniform": [],
}

#: Method -> (how strategyproofness is known, why), for the methods whose designs are DSIC
#: by construction; RegretNet and ALGNet are "sampled" unless certified, the LP and GemNet
#: depend on the design (:func:`how_strategyproof`).
BY_CONSTRUCTION = {
    "rochetnet": "a menu: the bidder takes its favourite entry (taxation principle)",
    "lottery-ama": "an affine maximizer with its VCG-style payments",
    "deterministic-ama": "an affine maximizer with its VCG-style payments",
    "myersonnet": "monotone virtual values, second price on them (Myerson)",
    "tedi": "a menu of pricing functions (TEDI's construction)",
}

#: A searched regret above this share of the value unit on a design DSIC by construction
#: is flagged in the row (a numerical tie or a bug; the figure is reported as found).
CONSTRUCTION_SLACK = 1e-4


def how_strategyproof(method: str, mech: Any, certificate: dict[str, Any] | None) -> dict:
    """How the design's strategyproofness is known: ``how`` is "by construction",
    "certified" or "sampled", with ``why``."""
    if method in BY_CONSTRUCTION:
        return {"how": "by construction", "why": BY_CONSTRUCTION[method]}
    if method == "gemnet":
        if getattr(mech, "adjusted", False):
            return {
                "how": "by construction",
                "why": "menus that depend on the others' bids only, price-adjusted so that no "
                "profile over-allocates (config: adjusted)",
            }
        return {
            "how": "sampled",
            "why": "an unadjusted GemNet network: DSIC menus, but feasibility is not "
            "certified (the evaluator's infeasible rate says how often it over-allocates)",
        }
    if method == "lp":
        if mech.setting.num_bidders == 1:
            return {"how": "by construction", "why": "one bidder: the LP's table is a menu"}
        return {"how": "sampled", "why": "the LP's rounded table is DSIC on its grid only"}
    if certificate is not None:
        proven = certificate["proven"]
        return {
            "how": "certified",
            "why": f"MILP certificate (HiGHS) on {certificate['profiles']} profiles: certified "
            f"regret mean {certificate['certified_regret_mean']:.3g}, max "
            f"{certificate['certified_regret_max']:.3g}"
            + ("" if proven else " (upper bounds: some MILPs reached the time limit)"),
        }
    from automech.evaluation.certify import refusal as certify_refusal

    problem = certify_refusal(mech)
    return {
        "how": "sampled",
        "why": "approximately strategyproof: regret from the misreport search only"
        + (
            f"; certification applies only to activation=relu, allocation=sparsemax "
            f"networks ({problem.split('; ')[-1]})"
            if problem and "; " in problem
            else ""
        ),
    }


def options_for(method: str, setting: Setting, overrides: dict[str, Any], lp_grid: int) -> dict:
    """The method's options: ``--set`` overrides it has, and the LP's grid."""
    opts = robustness.options_for(method, overrides)
    if method == "lp" and "grid" not in opts:
        opts["grid"] = lp_grid
    return opts


def refusal(method: str, setting: Setting) -> str | None:
    """Why ``method`` gets no row on ``setting`` (None when it runs)."""
    if method == "lp" and setting.num_bidders > 1:
        return (
            "this bench runs the LP on one-bidder settings only (with several bidders its "
            "rounded grid table is DSIC on the grid only; see bench/lp_scaling.py)"
        )
    meth = get_method(method)
    return meth.refusal(setting) or meth.conflict(
        setting, meth.resolve(setting, meth.Options.resolve({}))
    )


def _certificate(task: dict[str, Any], mech: Any, setting: Setting, out: Path) -> dict | None:
    """The MILP certificate of a certifiable network on the first profiles (reused from
    ``out/certificate.json`` when it was made with the same arguments); None otherwise."""
    from automech.evaluation.certify import certify
    from automech.evaluation.certify import refusal as certify_refusal
    from automech.evaluation.profiles import profile_regrets

    k = min(task["certify_profiles"], task["samples"])
    if k < 1 or task["method"] not in ("regretnet", "algnet") or certify_refusal(mech):
        return None
    key = {"profiles": k, "time_limit": task["certify_time_limit"], "samples": task["samples"]}
    path = out / CERTIFICATE
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("arguments") == key:
            return old
    values = setting.test_profiles(task["samples"], TEST_SEED)[:k]
    searched = profile_regrets(
        mech, setting, RegretSearch(profiles=k), seed=TEST_SEED, samples=task["samples"]
    )
    report = certify(mech, values, time_limit=task["certify_time_limit"], searched=searched)
    data = {"arguments": key, **report.to_dict()}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def run_row(task: dict[str, Any]) -> dict[str, Any]:
    """Train, audit and score one (setting, method) pair; a failure is recorded, not raised."""
    name, method = task["setting"], task["method"]
    setting = get_setting(name)
    out = Path(task["runs"]) / f"{name}-{method}-seed{task['seed']}"
    row: dict[str, Any] = {
        "setting": name,
        "method": method,
        "options": task["options"],
        "resumed": out.exists(),
    }
    start = time.perf_counter()
    try:
        mech, run = train(
            setting,
            method,
            task["options"],
            seed=task["seed"],
            out=out,
            eval_samples=task["samples"],
            search=None,  # regret comes from the ladder below
            baseline=True,
        )
        trained = time.perf_counter() - start
        audit = evaluate(
            mech,
            setting,
            samples=task["samples"],
            search=RegretSearch(profiles=task["regret_profiles"]),
            ladder=Ladder(max_rungs=task["max_rungs"]),
        )
        certificate = _certificate(task, mech, setting, out)
        sp = how_strategyproof(method, mech, certificate)
    except Exception as err:  # noqa: BLE001 - one failed row must not lose the board
        row.update(
            status="error",
            error=f"{type(err).__name__}: {err}",
            wall_seconds=round(time.perf_counter() - start, 2),
        )
        return row
    m = run.read_json("metrics.json")
    base = m.get("baseline")
    seconds = [r["seconds"] for r in run.history() if "seconds" in r]
    published = PUBLISHED.get(name, [])
    optimum = next((p["revenue"] for p in published if p["optimum"]), None)
    rungs = [dict(rung) for rung in audit.regret_ladder or []]
    notes = []
    unit = float(setting.value_unit)
    if sp["how"] == "by construction" and (audit.regret_max or 0) > CONSTRUCTION_SLACK * unit:
        notes.append(
            f"searched regret max {audit.regret_max:.3g} on a design DSIC by construction "
            "(a numerical tie or a bug)"
        )
    row.update(
        status="ok",
        revenue=audit.revenue,
        revenue_se=audit.revenue_se,
        samples=audit.samples,
        regret_mean=audit.regret_mean,
        regret_se=audit.regret_se,
        regret_max=audit.regret_max,
        regret_profiles=audit.regret_samples,
        regret_converged=audit.regret_converged,
        regret_budget=audit.regret_budget,
        regret_ladder=rungs,
        revenue_adjusted=audit.revenue_adjusted,
        strategyproof=sp["how"],
        strategyproof_why=sp["why"],
        certificate=None
        if certificate is None
        else {k: v for k, v in certificate.items() if k != "per_profile"},
        ir_violation_rate=audit.ir_violation_rate,
        infeasible_rate=audit.infeasible_rate,
        baseline=None
        if base is None
        else {k: base[k] for k in ("mechanism", "revenue", "revenue_se", "samples")},
        below_baseline=m.get("below_baseline"),
        gap_to_baseline=m.get("gap_to_baseline"),
        optimum=optimum,
        ratio_to_optimum=None if optimum is None else audit.revenue / optimum,
        published=[p for p in published if p["method"] == method],
        training=m.get("training"),
        train_seconds=round(max(seconds), 2) if seconds else None,
        train_wall_seconds=round(trained, 2),
        audit_seconds=round(audit.seconds, 2),
        wall_seconds=round(time.perf_counter() - start, 2),
        notes=notes,
    )
    if task["keep_runs"]:
        row["run_dir"] = str(out)
    return row


# ------------------------------------------------------------------ tables


def _num(x: float | None, digits: int = 4) -> str:
    return robustness._num(x, digits)


def converged_text(row: dict[str, Any]) -> str:
    """ "yes at budget k (r rungs)" or "no after r rungs (last two means)"."""
    rungs = row["regret_ladder"]
    if row["regret_converged"]:
        return f"yes at {row['regret_budget']}x ({len(rungs)} rungs)"
    last = " -> ".join(_num(r["regret_mean"], 3) for r in rungs[-2:])
    return f"no after {len(rungs)} rungs ({last})"


def _published_text(row: dict[str, Any]) -> str:
    text = "; ".join(f"{_num(p['revenue'])} (rgt {p['regret']})" for p in row["published"])
    if row["optimum"] is not None:
        text += ("; " if text else "") + f"optimum {_num(row['optimum'])}"
    return text or "-"


def markdown(rows: list[dict[str, Any]], settings: list[str]) -> str:
    """The leaderboard, a ladder table (regret at each rung) and the published references."""
    head = (
        "| setting | method | revenue ± se | regret mean ± se / max | converged | adjusted "
        "| strategyproof | best baseline | loop s / steps | train wall s | published |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['setting']} | {r['method']} | error: {r['error']} |||||||||")
            continue
        b = r["baseline"]
        base = "-" if b is None else f"{b['mechanism']} {_num(b['revenue'])}"
        if r["below_baseline"]:
            base += " **(design below)**"
        steps = r["training"]["steps_used"] if r["training"] else "-"
        secs = r["train_seconds"] if r["train_seconds"] is not None else r["train_wall_seconds"]
        lines.append(
            f"| {r['setting']} | {r['method']} | {_num(r['revenue'])} ± {_num(r['revenue_se'])} "
            f"| {_num(r['regret_mean'], 3)} ± {_num(r['regret_se'], 2)} / "
            f"{_num(r['regret_max'], 3)} | {converged_text(r)} | {_num(r['revenue_adjusted'])} "
            f"| {r['strategyproof']} | {base} | {secs:.1f} / {steps} "
            f"| {r['train_wall_seconds']:.0f} | {_published_text(r)} |"
        )
    ok = [r for r in rows if r["status"] == "ok"]
    most = max((len(r["regret_ladder"]) for r in ok), default=0)
    ladder = [
        "| setting | method | "
        + " | ".join(f"rung {i + 1}" for i in range(most))
        + " |\n|---|---|"
        + "---|" * most
    ]
    for r in ok:
        cells = [
            f"{g['budget']}x: {_num(g['regret_mean'], 3)} ({g['seconds']:.1f} s)"
            for g in r["regret_ladder"]
        ]
        cells += [""] * (most - len(cells))
        ladder.append(f"| {r['setting']} | {r['method']} | " + " | ".join(cells) + " |")
    refs = [
        "| setting | figure | revenue | regret | adjusted | source |\n|---|---|---|---|---|---|"
    ]
    for name in settings:
        for p in PUBLISHED.get(name, []):
            refs.append(
                f"| {name} | {p['what']} | {_num(p['revenue'])} | {p['regret']} "
                f"| {_num(p['revenue_adjusted'])} | {p['source']} |"
            )
    return "\n\n".join(["\n".join(lines), "\n".join(ladder), "\n".join(refs)])


# ------------------------------------------------------------------ command line


def _fail(message: str) -> None:
    """Bad input: one line naming the problem, exit code 2."""
    print(f"leaderboard.py: {message}", file=sys.stderr)
    sys.exit(2)


def _settings(raw: str | None) -> list[str]:
    if raw is None:
        return list(SETTINGS)
    names = [s.strip() for s in raw.split(",") if s.strip()]
    if not names:
        _fail(f"--settings {raw!r} names no setting")
    for name in names:
        try:
            setting = get_setting(name)
        except AutomechError as err:
            _fail(f"unknown setting {name!r} ({err}); the leaderboard's: {', '.join(SETTINGS)}")
        if not isinstance(setting, Setting):
            _fail(f"setting {name!r} is not a static auction setting")
    return names


def _methods(raw: str | None) -> list[str]:
    if raw is None:
        return list(LEARNED)
    names = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = [s for s in names if s not in LEARNED]
    if unknown or not names:
        _fail(f"unknown method(s) {unknown or raw!r}; known: {', '.join(LEARNED)}")
    return names


def _worker_init() -> None:
    configure_threads(1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", help=f"comma list (default: {', '.join(SETTINGS)})")
    parser.add_argument("--methods", help=f"comma list (default all: {', '.join(LEARNED)})")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every row")
    parser.add_argument("--samples", type=int, default=TEST_PROFILES, help="test profiles")
    parser.add_argument(
        "--regret-profiles", type=int, default=1000, help="profiles the ladder searches"
    )
    parser.add_argument(
        "--max-rungs", type=int, default=Ladder().max_rungs, help="most rungs of the ladder"
    )
    parser.add_argument("--lp-grid", type=int, default=LP_GRID, help="the LP's points per item")
    parser.add_argument(
        "--certify-profiles",
        type=int,
        default=CERTIFY_PROFILES,
        help="profiles certified by MILP for a ReLU/sparsemax RegretNet or ALGNet (0: none)",
    )
    parser.add_argument(
        "--certify-time-limit", type=float, default=CERTIFY_TIME_LIMIT, help="seconds per MILP"
    )
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
        help="keep the rows of an existing --out file that this run does not redo",
    )
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    parser.add_argument(
        "--render",
        action="store_true",
        help="print the Markdown tables of the --out file and exit (runs nothing)",
    )
    parser.add_argument(
        "--fold",
        type=Path,
        metavar="FILE",
        help="merge the rows of another results file FILE (a run with its own --out, e.g. "
        "in a second process) into --out and exit (runs nothing)",
    )
    args = parser.parse_args(argv)
    if args.fold is not None:
        try:
            other = json.loads(args.fold.read_text())
            base = json.loads(args.out.read_text()) if args.out.is_file() else None
            if base is None:
                folded = other
            else:
                redone = {(r["setting"], r["method"]) for r in other["rows"]}
                rows, skips, infos = robustness.merged(
                    base,
                    other["rows"],
                    other["skipped"],
                    other["settings"],
                    "setting",
                    list(SETTINGS),
                    redone,
                )
                folded = {**base, "rows": rows, "skipped": skips, "settings": infos}
                folded["folded"] = [*base.get("folded", []), other["command"]]
                folded["errors"] = [
                    {"setting": r["setting"], "method": r["method"], "error": r["error"]}
                    for r in rows
                    if r["status"] == "error"
                ]
        except (OSError, ValueError, KeyError, TypeError) as err:
            _fail(f"--fold: cannot merge {args.fold} into {args.out} ({err})")
        args.out.write_text(json.dumps(folded, indent=2) + "\n")
        return folded
    if args.render:
        if not args.out.is_file():
            _fail(f"--render: no results file {args.out}")
        try:
            saved = json.loads(args.out.read_text())
            print(markdown(saved["rows"], list(saved["settings"])))
        except (ValueError, KeyError, TypeError) as err:
            _fail(f"--render: {args.out} is not a leaderboard results file ({err})")
        return saved
    if args.jobs < 1 or args.samples < 1 or args.regret_profiles < 1 or args.lp_grid < 1:
        _fail("--jobs, --samples, --regret-profiles and --lp-grid must be >= 1")
    if args.certify_profiles < 0 or not args.certify_time_limit > 0:
        _fail("--certify-profiles must be >= 0 and --certify-time-limit > 0")
    settings = _settings(args.settings)
    methods = _methods(args.methods)
    try:
        ladder = Ladder(max_rungs=args.max_rungs)
        overrides = parse_assignments(args.set)
        for method in methods:  # bad values now, not after hours of other rows
            get_method(method).Options.resolve(robustness.options_for(method, overrides))
    except AutomechError as err:
        _fail(str(err))
    unused = [k for k in overrides if not any(robustness.options_for(m, {k: 0}) for m in methods)]
    if unused:
        _fail(f"--set {unused[0]}: none of the methods {', '.join(methods)} has that option")
    configure_threads(1)

    load_start = os.getloadavg()
    started = time.perf_counter()
    tmp = None if args.runs else tempfile.TemporaryDirectory(prefix="leaderboard-")
    runs_root = args.runs or Path(tmp.name)  # type: ignore[union-attr]
    tasks, skipped, info = [], [], {}
    for name in settings:
        setting = get_setting(name)
        info[name] = {"setting": setting.to_dict(), "published": PUBLISHED.get(name, [])}
        for method in methods:
            reason = refusal(method, setting)
            if reason:
                skipped.append({"setting": name, "method": method, "reason": reason})
                continue
            tasks.append(
                {
                    "setting": name,
                    "method": method,
                    "options": options_for(method, setting, overrides, args.lp_grid),
                    "seed": args.seed,
                    "samples": args.samples,
                    "regret_profiles": args.regret_profiles,
                    "max_rungs": ladder.max_rungs,
                    "certify_profiles": args.certify_profiles,
                    "certify_time_limit": args.certify_time_limit,
                    "runs": str(runs_root),
                    "keep_runs": args.runs is not None,
                }
            )
    command = " ".join(
        ["python", "bench/leaderboard.py", *(sys.argv[1:] if argv is None else argv)]
    )
    old = json.loads(args.out.read_text()) if args.merge and args.out.is_file() else None

    def write(rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The results file with the rows so far (merged with ``old``): written after every
        row, so that a run stopped by a time limit keeps what it finished."""
        for row in rows:
            row["command"] = command
        board, skips, infos = rows, skipped, info
        if old is not None:
            redone = {(r["setting"], r["method"]) for r in rows}
            board, skips, infos = robustness.merged(
                old, rows, skipped, info, "setting", list(SETTINGS), redone
            )
        result = {
            "benchmark": "leaderboard",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": robustness.machine(load_start),
            "command": command,
            "seed": args.seed,
            "samples": args.samples,
            "regret_profiles": args.regret_profiles,
            "ladder": ladder.to_dict(),
            "lp_grid": args.lp_grid,
            "certify_profiles": args.certify_profiles,
            "jobs": args.jobs,
            "overrides": overrides,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "finished": len(rows) == len(tasks),
            "settings": infos,
            "rows": board,
            "skipped": skips,
            "errors": [
                {"setting": r["setting"], "method": r["method"], "error": r["error"]}
                for r in board
                if r["status"] == "error"
            ],
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return result

    rows: list[dict[str, Any]] = []
    try:
        if args.jobs == 1:
            for t in tasks:
                rows.append(run_row(t))
                _progress(rows[-1])
                write(rows)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_worker_init) as pool:
                futures = [pool.submit(run_row, t) for t in tasks]
                for f in futures:  # submission order: deterministic whatever the schedule
                    rows.append(f.result())
                    _progress(rows[-1])
                    write(rows)
    finally:
        if tmp is not None:
            tmp.cleanup()
    result = write(rows)
    print(json.dumps(result, indent=2))
    if args.markdown:
        print()
        print(markdown(result["rows"], list(result["settings"])))
    return result


def _progress(row: dict[str, Any]) -> None:
    if row["status"] == "ok":
        text = (
            f"revenue {row['revenue']:.6g}, regret {row['regret_mean']:.3g} "
            f"({converged_text(row)}), {row['strategyproof']}, {row['wall_seconds']:.0f} s"
        )
    else:
        text = row["error"]
    print(f"[leaderboard] {row['setting']} {row['method']}: {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    result = main()
    sys.exit(1 if result["errors"] else 0)

"""The command-line side of dynamic settings.

``automech train`` and ``automech evaluate`` hand over to :func:`train` and
:func:`evaluate` here when the setting is a registered dynamic setting (or the run
directory holds a dynamic AMA); ``automech settings`` appends :func:`settings_table`.
Errors are :class:`~automech.errors.AutomechError` s, reported by the CLI's
``_clean_errors`` as one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from automech.dynamic.evaluate import DynamicEvaluation, evaluate_dynamic
from automech.dynamic.experiment import is_dynamic_run, load_dynamic, train_dynamic
from automech.dynamic.optimise import DYNAMIC_METHODS
from automech.dynamic.registry import dynamic_setting_names, get_dynamic_setting, is_dynamic
from automech.errors import AutomechError
from automech.evaluation.protocol import TEST_SEED
from automech.experiment import options_from_file, parse_assignments


def rows(report: DynamicEvaluation) -> dict[str, dict[str, Any]]:
    """The mechanism's row and the dynamic VCG row (same profiles)."""
    main = {"objective": report.objective, "objective_value": report.objective_value,
            "objective_se": report.objective_se, "revenue": report.revenue,
            "revenue_se": report.revenue_se, "welfare": report.welfare,
            "welfare_se": report.welfare_se, "ir_violation_rate": report.ir_violation_rate,
            "ic_max_gain": report.ic_max_gain, "ic_violation_rate": report.ic_violation_rate,
            "samples": report.samples}
    out = {report.mechanism: main}
    if report.vcg and report.mechanism != "dynamic-vcg":
        out["dynamic-vcg"] = {"objective": report.objective, **report.vcg,
                              "samples": report.samples}
    return out


def table(title: str, results: dict[str, dict[str, Any]]) -> Table:
    first = next(iter(results.values()))
    objective = first["objective"]
    t = Table(title=title)
    cols = ["mechanism", objective, "± se"]
    if objective != "revenue":
        cols += ["revenue"]
    cols += ["welfare", "IR viol.", "IC max gain"]
    for col in cols:
        t.add_column(col, justify="left" if col == "mechanism" else "right")

    def fmt(x, digits=4):
        return "-" if x is None else (f"{x:.2e}" if digits == "e" else f"{x:.{digits}f}")

    for name, r in results.items():
        cells = [name, fmt(r["objective_value"]), fmt(r["objective_se"])]
        if objective != "revenue":
            cells.append(fmt(r.get("revenue")))
        cells += [fmt(r.get("welfare")), fmt(r.get("ir_violation_rate"), 3),
                  fmt(r.get("ic_max_gain"), "e")]
        t.add_row(*cells)
    return t


def settings_table() -> Table:
    t = Table(title="dynamic settings (any n, m of a family; methods: "
                    f"{', '.join(DYNAMIC_METHODS)})")
    for col in ("name", "n", "MDP", "prior", "objective"):
        t.add_column(col)
    for name in dynamic_setting_names():
        env = get_dynamic_setting(name)
        t.add_row(name, str(env.n), env.mdp.describe(), env.describe_prior(), env.objective)
    return t


def train(setting: str, method: str, *, steps: int | None, seed: int, out: Path | None,
          assignments: list[str], config: Path | None, eval_samples: int, as_json: bool,
          console: Console, progress: bool) -> None:
    """``automech train DYNAMIC-SETTING --method M``."""
    if method not in DYNAMIC_METHODS:
        raise AutomechError(f"unknown method {method!r} for dynamic setting {setting!r}; "
                            f"known: {', '.join(DYNAMIC_METHODS)}")
    options = options_from_file(config) if config else {}
    options.update(parse_assignments(assignments))
    if steps is not None:
        if "steps" not in DYNAMIC_METHODS[method].defaults:
            raise AutomechError(f"method {method!r} takes no --steps (it has no gradient "
                                "steps); use --set candidates=N")
        options["steps"] = steps
    mech, run, report = train_dynamic(setting, method, options, seed=seed, out=out,
                                      eval_samples=eval_samples, progress=progress)
    results = rows(report)
    if as_json:
        print(json.dumps({"run": str(run.path), "setting": report.setting,
                          "results": results}, indent=2))
        return
    console.print(table(f"{report.setting}: {method}, seed {seed}", results))
    console.print(f"run directory: {run.path}")


def evaluate(run: Path, *, setting: str | None, samples: int, seed: int | None,
             as_json: bool, console: Console, progress: bool) -> None:
    """``automech evaluate RUN`` for a run directory holding a dynamic AMA."""
    mech = load_dynamic(run)
    if setting is not None and setting != mech.env.name:
        raise AutomechError(f"a dynamic AMA is tied to its MDP: run {str(run)!r} was "
                            f"designed for {mech.env.name!r}, not {setting!r}")
    report = evaluate_dynamic(mech, samples=samples,
                              seed=TEST_SEED if seed is None else seed, progress=progress)
    results = rows(report)
    if as_json:
        print(json.dumps({"setting": report.setting, "results": results}, indent=2))
        return
    console.print(table(f"{report.setting}: {mech.env.describe()}", results))


__all__ = ["train", "evaluate", "settings_table", "is_dynamic", "is_dynamic_run"]

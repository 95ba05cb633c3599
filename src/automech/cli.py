"""The ``automech`` command line."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from automech.device import configure_threads, default_device
from automech.errors import AutomechError, NotApplicableError
from automech.evaluation import THOROUGH, DynamicEvaluation, Evaluation, RegretSearch, evaluate
from automech.evaluation.protocol import TEST_PROFILES, TEST_SEED
from automech.experiment import load, options_from_file, parse_assignments, save
from automech.experiment import train as train_run
from automech.mechanisms import CLASSICAL
from automech.methods import METHODS, get_method
from automech.problems import Setting, get_setting, setting_names, setting_tables
from automech.runs import Run

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Automated mechanism design: settings, mechanisms, one evaluation.",
)
#: Default misreport-search profiles, the same for every command (the protocol's default).
REGRET_PROFILES = RegretSearch().profiles

console = Console(width=None if sys.stdout.isatty() else 110)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 110)

#: The keys of ``--json`` output, per mechanism.
JSON_KEYS = (
    "revenue",
    "revenue_se",
    "revenue_adjusted",
    "welfare",
    "ir_violation_rate",
    "regret_mean",
    "regret_se",
    "regret_max",
    "regret_converged",
    "regret_budget",
    "regret_ladder",
    "samples",
)


@contextlib.contextmanager
def _clean_errors() -> Iterator[None]:
    """Report automech's own errors as one line and exit code 2, not a traceback."""
    try:
        yield
    except AutomechError as err:
        # escaped (messages may hold brackets) and never wrapped: one line per error
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        raise typer.Exit(2) from None


def _search(regret_profiles: int, thorough: bool, no_regret: bool) -> RegretSearch | None:
    if no_regret:
        return None
    if thorough:
        return THOROUGH
    return RegretSearch(profiles=regret_profiles)


def _row(report: Evaluation | DynamicEvaluation | dict) -> dict:
    """One mechanism's row: an evaluation (static or dynamic) or its dict form
    (``metrics.json``); figures a kind does not measure are None."""
    data = report if isinstance(report, dict) else report.to_dict()
    row = {k: data.get(k) for k in JSON_KEYS}
    seconds = data.get("seconds")
    row.update(
        regret_samples=data.get("regret_samples"),
        infeasible_rate=data.get("infeasible_rate"),
        objective=data.get("objective"),
        objective_value=data.get("objective_value"),
        seconds=None if seconds is None else round(seconds, 3),
    )
    return row


def _rows(report: Evaluation | DynamicEvaluation | dict) -> dict[str, dict]:
    """The evaluated mechanism's row, then those of the baselines its evaluation scored on
    the same profiles (a dynamic evaluation's dynamic VCG), by mechanism name."""
    data = report if isinstance(report, dict) else report.to_dict()
    rows = {data["mechanism"]: _row(data)}
    rows.update({name: _row(row) for name, row in (data.get("baselines") or {}).items()})
    if data.get("baseline"):  # the best classical mechanism, on the same profiles
        best = data["baseline"]
        rows[f"{best['mechanism']} (best classical)"] = _row(best)
    return rows


def _table(title: str, rows: dict[str, dict]) -> Table:
    """One row per mechanism; an objective column first when the setting's objective is
    not revenue (e.g. revenue minus production cost), since that is what is optimised;
    regret-adjusted revenue next to revenue where regret was measured; under the table,
    whether the budget ladder's regret converged."""
    objective = bool({r.get("objective") for r in rows.values()} - {None, "revenue"})
    # regret-adjusted revenue, (sqrt(P) - sqrt(R))^2, where regret was measured
    adjusted = any(r.get("revenue_adjusted") is not None for r in rows.values())
    # under the table, for each row searched with the budget ladder: the budget at which
    # regret converged, or that it did not, with the last two rungs
    lines = []
    for name, r in rows.items():
        rungs = r.get("regret_ladder") or []
        if r.get("regret_converged") is None or not rungs:
            continue
        if r["regret_converged"]:
            lines.append(
                f"{name}: regret converged at budget x{r.get('regret_budget')} "
                f"({len(rungs)} rungs, {sum(x['seconds'] for x in rungs):.1f} s)"
            )
        else:
            last = ", ".join(f"x{x['budget']}: {x['regret_mean']:.5f}" for x in rungs[-2:])
            lines.append(f"{name}: regret NOT converged after {len(rungs)} rungs ({last})")
    table = Table(title=title, caption="\n".join(lines) or None)
    cols = [
        "mechanism",
        *(["objective"] if objective else []),
        "revenue",
        "± se",
        *(["adj. rev."] if adjusted else []),
        "welfare",
        "IR viol.",
        "infeasible",
        "regret mean",
        "regret max",
    ]
    for col in cols:
        if col == "mechanism":  # never wrapped: "grand-bundle (best classical)" on one line
            table.add_column(col, justify="left", no_wrap=True)
        else:
            table.add_column(col, justify="right")

    def fmt(x, digits=4):
        return "-" if x is None else f"{x:.{digits}f}"

    for name, r in rows.items():
        shown = [fmt(r.get("objective_value"))] if objective else []
        table.add_row(
            name,
            *shown,
            fmt(r["revenue"]),
            fmt(r["revenue_se"]),
            *([fmt(r.get("revenue_adjusted"))] if adjusted else []),
            fmt(r["welfare"]),
            fmt(r["ir_violation_rate"], 3),
            fmt(r["infeasible_rate"], 3),
            fmt(r["regret_mean"], 5),
            fmt(r["regret_max"], 5),
        )
    return table


def _print_basis(report: Any) -> None:
    """Say what the figures are: exact expectations over a finite support, or sample
    estimates of a finite prior too large to enumerate."""
    data = report if isinstance(report, dict) else report.to_dict()
    if data.get("exact"):
        console.print(
            f"[dim]exact expectations over the prior's {data['samples']:,} "
            "profiles (standard errors 0)[/]"
        )
    elif data.get("note"):
        console.print(f"[dim]note: {escape(str(data['note']))}[/]")


@app.callback()
def _startup() -> None:
    """Automated mechanism design: settings, mechanisms, one evaluation.

    Torch threads: the cores this process may use, or AUTOMECH_THREADS; the device: CUDA
    when present, or AUTOMECH_DEVICE (cpu, cuda, cuda:N).
    """
    with _clean_errors():
        configure_threads()
        default_device()


@app.command()
def settings() -> None:
    """List the named settings (static and dynamic) with their sizes and priors."""
    for title, rows in setting_tables():
        table = Table(title=title)
        for col in rows[0] if rows else ():
            table.add_column(col)
        for row in rows:
            table.add_row(*row.values())
        console.print(table)


@app.command()
def baselines(
    setting: str = typer.Argument(..., help="setting name or .toml file"),
    samples: int = typer.Option(TEST_PROFILES, help="test profiles"),
    seed: int | None = typer.Option(None, help="seed of the test profiles"),
    regret_profiles: int = typer.Option(REGRET_PROFILES, help="profiles searched for misreports"),
    thorough: bool = typer.Option(False, help="the papers' regret budget (slow)"),
    no_regret: bool = typer.Option(False, help="skip the misreport search"),
    save_dir: Path | None = typer.Option(
        None, "--save", help="save each mechanism to SAVE/<name> for `automech evaluate`"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Evaluate every applicable classical mechanism on SETTING."""
    with _clean_errors():
        s = get_setting(setting)
        search = _search(regret_profiles, thorough, no_regret)
        rows, skipped = {}, {}
        if getattr(s, "kind", "static") != "static":
            raise AutomechError(
                f"{s.name} is a dynamic setting: its baseline, the dynamic "
                "VCG, is scored next to every design by `automech train` and "
                "`automech evaluate`"
            )
        assert isinstance(s, Setting)  # static
        for cls in CLASSICAL:
            reason = cls.applicable(s)
            if reason:
                skipped[cls.name] = reason
                continue
            try:
                mech = cls(s)
            except NotApplicableError as err:
                skipped[cls.name] = str(err)
                continue
            kwargs: dict[str, Any] = {} if seed is None else {"seed": seed}
            report = evaluate(
                mech, s, samples=samples, search=search, progress=not as_json, **kwargs
            )
            rows[cls.name] = _row(report)
            if save_dir:
                save(mech, save_dir / cls.name)
        if as_json:
            print(json.dumps({"setting": s.name, "results": rows, "skipped": skipped}, indent=2))
            return
        console.print(_table(f"{s.name}: {s.describe()}", rows))
        for name, reason in skipped.items():
            console.print(f"[dim]skipped {name}: {reason}[/]")


@app.command(name="evaluate")
def evaluate_cmd(
    run: Path = typer.Argument(..., help="run directory"),
    setting: str | None = typer.Option(None, help="evaluate on another setting"),
    samples: int = typer.Option(TEST_PROFILES, help="test profiles"),
    seed: int | None = typer.Option(None, help="seed of the test profiles"),
    regret_profiles: int = typer.Option(REGRET_PROFILES, help="profiles searched for misreports"),
    thorough: bool = typer.Option(False, help="the papers' regret budget (slow)"),
    no_regret: bool = typer.Option(False, help="skip the misreport search"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    ladder: bool = typer.Option(
        True,
        "--ladder/--fixed-budget",
        help="double the search budget until regret converges (default), or one fixed "
        "budget (--thorough is always a fixed budget)",
    ),
) -> None:
    """Evaluate a saved mechanism with the shared protocol."""
    with _clean_errors():
        mech = load(run)
        s = get_setting(setting) if setting else mech.setting
        kwargs: dict[str, Any] = {} if seed is None else {"seed": seed}
        report = evaluate(
            mech,
            s,
            samples=samples,
            search=_search(regret_profiles, thorough, no_regret),
            progress=not as_json,
            ladder=ladder and not thorough,
            **kwargs,
        )
        if as_json:
            print(json.dumps({"setting": s.name, "results": _rows(report)}, indent=2))
            return
        console.print(_table(f"{s.name}: {s.describe()}", _rows(report)))
        _print_basis(report)


def _audit_target(target: str, setting: str | None, torch_: bool, black_box: bool) -> tuple:
    """The mechanism TARGET names and the setting to audit it on: a run directory (its
    own setting by default), ``module:callable`` (``--setting`` required) or an ONNX file
    (default: the setting its ``automech export`` metadata records)."""
    from automech.mechanisms import Mechanism
    from automech.mechanisms.external import (
        ONNX_SUFFIX,
        BlackBox,
        external_mechanism,
        is_callable_spec,
        onnx_setting,
    )

    path = Path(target)
    if target.lower().endswith(ONNX_SUFFIX):
        s = get_setting(setting) if setting else onnx_setting(path)
        if s is None:
            raise AutomechError(
                f"{target} records no setting (no automech.setting metadata): give --setting"
            )
    elif path.is_dir():
        if torch_:
            raise AutomechError("--torch is for a module:callable target, not a run directory")
        run_mech = load(path)
        s = get_setting(setting) if setting else run_mech.setting
    elif is_callable_spec(target):
        if setting is None:
            raise AutomechError(f"auditing {target} needs --setting (a name or .toml file)")
        s = get_setting(setting)
    else:
        raise AutomechError(
            f"TARGET {target!r} is none of: a run directory, module:callable "
            f"(e.g. mypackage.auctions:first_price), a file ending in {ONNX_SUFFIX}"
        )
    if path.is_dir() and not target.lower().endswith(ONNX_SUFFIX):
        mech: Any = run_mech
    else:
        if not isinstance(s, Setting):
            raise AutomechError(
                f"{s.name} is a dynamic setting: a callable or ONNX file is audited on a "
                "static setting (bidders x items)"
            )
        mech = external_mechanism(target, s, torch_callable=torch_)
    if black_box and getattr(mech, "differentiable", False):
        if not isinstance(mech, Mechanism):
            raise AutomechError(f"--black-box is for static mechanisms; {target} is dynamic")
        mech = BlackBox(mech)
    return mech, s


@app.command()
def audit(
    target: str = typer.Argument(
        ..., help="a run directory, module:callable on the Python path, or a FILE.onnx"
    ),
    setting: str | None = typer.Option(
        None,
        help="setting name or .toml file (default: the run's, or the ONNX file's metadata)",
    ),
    torch_: bool = typer.Option(
        False,
        "--torch",
        help="the callable takes and returns torch tensors (the search uses gradients)",
    ),
    black_box: bool = typer.Option(
        False, "--black-box", help="search without gradients, as for a NumPy callable or ONNX"
    ),
    samples: int = typer.Option(TEST_PROFILES, help="test profiles"),
    seed: int | None = typer.Option(None, help="seed of the test profiles"),
    regret_profiles: int = typer.Option(REGRET_PROFILES, help="profiles searched for misreports"),
    thorough: bool = typer.Option(False, help="the papers' regret budget (slow)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Audit any mechanism with the shared protocol: revenue, IR, feasibility and regret.

    TARGET is a saved run; or `module:callable`, a function of bids, a float64 array
    (B, n, m), returning (allocation (B, n, m), payments (B, n)) as NumPy arrays (with
    --torch: torch tensors, differentiable, so the misreport search uses gradient
    ascent), imported from the Python path or the current directory; or an ONNX file
    with that signature (run by onnxruntime; `automech export RUN --format onnx` writes
    one).  --json prints the same JSON as `automech evaluate --json`.
    """
    with _clean_errors():
        mech, s = _audit_target(target, setting, torch_, black_box)
        kwargs: dict[str, Any] = {} if seed is None else {"seed": seed}
        report = evaluate(
            mech,
            s,
            samples=samples,
            search=_search(regret_profiles, thorough, False),
            progress=not as_json and sys.stderr.isatty(),
            **kwargs,
        )
        if as_json:
            print(json.dumps({"setting": s.name, "results": _rows(report)}, indent=2))
            return
        console.print(_table(f"{s.name}: {s.describe()}", _rows(report)))
        _print_basis(report)
        if not getattr(mech, "differentiable", True):
            console.print("[dim]no gradients: the misreport search used no gradient stage[/]")


@app.command()
def train(
    setting: str = typer.Argument(..., help="setting name or .toml file"),
    method: str = typer.Option(
        ..., help=f"one of: {', '.join(METHODS)} (`automech methods NAME` lists its options)"
    ),
    steps: int | None = typer.Option(None, help="training steps (gradient methods)"),
    seed: int = typer.Option(0, help="seed of everything random in the run"),
    out: Path | None = typer.Option(None, help="run directory (default runs/...)"),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="method option key=value (repeatable; "
        "`automech methods NAME` lists them with types, "
        "defaults and ranges)",
    ),
    config: Path | None = typer.Option(None, help="TOML file of method options"),
    eval_samples: int = typer.Option(TEST_PROFILES, help="test profiles for the final evaluation"),
    regret_profiles: int = typer.Option(REGRET_PROFILES, help="profiles searched for misreports"),
    as_json: bool = typer.Option(False, "--json", help="print the final evaluation as JSON"),
    baseline: bool = typer.Option(
        True,
        "--baseline/--no-baseline",
        help="also score the best strategyproof classical mechanism on the same profiles",
    ),
    ladder: bool = typer.Option(
        True,
        "--ladder/--fixed-budget",
        help="regret of the final evaluation: double the search budget until it converges "
        "(default), or one fixed budget",
    ),
) -> None:
    """Design a mechanism for SETTING with METHOD; write a run directory.

    The result is printed next to the best strategyproof classical mechanism scored on the
    same test profiles (recorded in metrics.json), with a warning when the design earns
    less.

    Rerunning with the same --out resumes from the run's last checkpoint (written every
    checkpoint_every steps and at least every checkpoint_seconds; the command says from
    which step), and a finished run is reused, not retrained; a different config in that
    directory is refused.
    """
    with _clean_errors():
        s = get_setting(setting)
        options = options_from_file(config) if config else {}
        options.update(parse_assignments(set_))
        if steps is not None:
            if "steps" not in get_method(method).Options.defaults():
                raise AutomechError(
                    f"method {method!r} takes no --steps (it has no training "
                    f"steps); `automech methods {method}` lists its options"
                )
            if "steps" in options and options["steps"] != steps:
                raise AutomechError(
                    f"--steps {steps} and the option steps={options['steps']!r} disagree; "
                    "give the steps once"
                )
            options["steps"] = steps
        mech, run = train_run(
            s,
            method,
            options,
            seed=seed,
            out=out,
            eval_samples=eval_samples,
            search=RegretSearch(profiles=regret_profiles),
            progress=not as_json and sys.stderr.isatty(),
            notify=lambda line: err_console.print(line, markup=False, highlight=False),
            baseline=baseline,
            ladder=ladder,
        )
        report = run.read_json("metrics.json")
        if as_json:
            print(json.dumps({"run": str(run.path), "results": _rows(report)}, indent=2))
            return
        console.print(_table(f"{s.name}: {method}, seed {seed}", _rows(report)))
        _print_basis(report)
        if report.get("below_baseline"):
            best = report["baseline"]
            what = "revenue" if report.get("objective") == "revenue" else report["objective"]
            err_console.print(
                f"[bold yellow]warning:[/] this design earns less than a classical "
                f"mechanism: {what} {report['objective_value']:.4f} against "
                f"{best['mechanism']}'s {best['objective_value']:.4f} on the same profiles; "
                "train longer or use the classical mechanism",
                soft_wrap=True,
            )
        console.print(f"run directory: {run.path}")


@app.command()
def sweep(
    file: Path = typer.Argument(..., help="sweep file (.toml): settings x methods x seeds"),
    backend: str = typer.Option("local", help="local (process pool) or ray"),
    address: str | None = typer.Option(
        None, help="Ray cluster address (--backend ray); default: start a local Ray instance"
    ),
    db: Path = typer.Option(Path("automech-results.db"), help="results database (SQLite)"),
    workers: int | None = typer.Option(None, help="jobs at a time (default: the cores)"),
    runs_root: Path | None = typer.Option(
        None, help="run directories go under RUNS_ROOT/NAME (default: the file's runs_root or runs)"
    ),
    dry_run: bool = typer.Option(False, help="list the jobs and their state; run nothing"),
) -> None:
    """Run a sweep's jobs, skipping finished ones and resuming interrupted ones."""
    from rich.markup import escape as _escape

    from automech.sweeps import Store, aggregate, load_sweep, render, run_sweep

    with _clean_errors():
        spec = load_sweep(file)
        for note in spec.notes:
            console.print(f"[dim]note: {_escape(note)}[/]")
        with Store(db) as store:
            if dry_run:
                for job in spec.jobs:
                    stored = store.row(job)
                    state = "skipped" if job.skip else stored["status"] if stored else "new"
                    console.print(f"{state:8} {job.describe()}", markup=False, highlight=False)
                return
            try:
                summary = run_sweep(
                    spec,
                    store,
                    backend=backend,
                    workers=workers,
                    address=address,
                    runs_root=runs_root,
                    log=lambda line: console.print(line, highlight=False, markup=False),
                )
            except KeyboardInterrupt:
                err_console.print("interrupted: finished jobs are saved; rerun to resume")
                raise typer.Exit(130) from None
            width = console.width if sys.stdout.isatty() else 200
            sys.stdout.write(
                render(
                    aggregate(store.rows(spec.name)),
                    "table",
                    title=f"sweep {spec.name}",
                    width=width,
                )
            )
            console.print(
                f"{summary['ran']} job(s) run in {summary['seconds']:.1f} s "
                f"({summary['done']} done, {summary['failed']} failed); "
                f"results in {db}"
            )
            if summary["failed"]:
                for row in store.rows(spec.name):
                    if row["status"] == "failed":
                        first = (row["error"] or "").splitlines()[:1]
                        err_console.print(
                            f"failed: {row['setting']} {row['method']} seed "
                            f"{row['seed']}: {first[0] if first else '?'}",
                            markup=False,
                            highlight=False,
                        )
                raise typer.Exit(1)


@app.command()
def results(
    sweep: str | None = typer.Option(None, help="only this sweep (default: all)"),
    db: Path = typer.Option(Path("automech-results.db"), help="results database (SQLite)"),
    fmt: str = typer.Option("table", "--format", help="table, csv, json or markdown"),
) -> None:
    """The comparison table: mean, std and best over seeds per setting and method."""
    from automech.sweeps import Store, aggregate, render

    with _clean_errors():
        with Store(db, create=False) as store:
            known = store.sweeps()
            if sweep is not None and sweep not in known:
                raise AutomechError(
                    f"no sweep {sweep!r} in {str(db)!r}; sweeps: {', '.join(known) or 'none'}"
                )
            title = (
                f"sweep {sweep}" if sweep else (f"sweep {known[0]}" if len(known) == 1 else None)
            )
            width = console.width if sys.stdout.isatty() else 200
            sys.stdout.write(render(aggregate(store.rows(sweep)), fmt, title=title, width=width))


@app.command()
def describe(
    run: Path = typer.Argument(..., help="run directory"),
    samples: int = typer.Option(100_000, help="test profiles on which usage is counted"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """List what a saved mechanism offers (menu entries or allocations used, with their
    prices or boosts and how often each is chosen); also writes RUN/describe.json."""
    with _clean_errors():
        if samples < 1:
            raise AutomechError(f"--samples must be >= 1, got {samples}")
        mech = load(run)
        values = mech.setting.test_profiles(samples, TEST_SEED)
        info = mech.describe(values)
        info["samples"] = samples
        Run(run).write_json("describe.json", info)
        if as_json:
            print(json.dumps(info, indent=2))
            return
        entries = info.get("entries")
        if not entries:
            console.print_json(json.dumps(info))
            return
        table = Table(title=f"{mech.name}: {len(entries)} entries used on {samples} profiles")
        for key in entries[0]:
            table.add_column(key, justify="right")
        for entry in entries:
            table.add_row(*(_cell(v) for v in entry.values()))
        console.print(table)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


@app.command(name="plot")
def plot_cmd(
    run: Path = typer.Argument(..., help="run directory"),
    out: Path | None = typer.Option(None, help="folder for the PNG files (default RUN/figures)"),
    bidder: int = typer.Option(0, help="bidder whose value square is plotted (0-based)"),
    others: str = typer.Option(
        "mean", help="where the other values are held: mean, mid (of the support box) or a number"
    ),
    items: str = typer.Option("0,1", help="the two items on the axes (0-based), e.g. 0,1"),
) -> None:
    """Write PNG figures of a run: allocation and payment maps, menu entries, training
    curves and the regret histogram."""
    with _clean_errors():
        from automech.plot import save_all

        try:
            pair = tuple(int(x) for x in items.split(","))
        except ValueError:
            raise AutomechError(f"--items must be two integers like 0,1; got {items!r}") from None
        paths, skipped = save_all(run, out, bidder=bidder, others=others, items=pair)
        for name, path in paths.items():
            console.print(f"{name:<11} {path}", markup=False, highlight=False)
        for name, reason in skipped.items():
            console.print(f"[dim]skipped {name}: {escape(reason)}[/]")


@app.command(name="report")
def report_cmd(
    runs: list[Path] = typer.Argument(..., help="run directories (several: side by side)"),
    out: Path = typer.Option(
        Path("report.html"),
        help="output file: .html (self-contained) or .md (figures written beside it)",
    ),
    baseline_samples: int = typer.Option(20_000, help="test profiles for the classical baselines"),
    bidder: int = typer.Option(0, help="bidder of the allocation maps (0-based)"),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="embed the figures"),
) -> None:
    """Write one report of RUNS: setting, hyperparameters, evaluation, classical baselines,
    reference numbers, the mechanism's entries and figures."""
    with _clean_errors():
        from automech.report import write as write_report

        path = write_report(
            runs, out, baseline_samples=baseline_samples, bidder=bidder, figures=figures
        )
        console.print(f"report: {path}", markup=False, highlight=False)


@app.command()
def methods(
    name: str | None = typer.Argument(None, help="a method: print its options"),
    setting: str | None = typer.Option(
        None, help="only the methods that apply to this setting (name or .toml file)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """List the design methods and the settings each applies to, or one method's options
    (type, default, valid range, meaning)."""
    with _clean_errors():
        if name is not None:
            meth = get_method(name)
            infos = meth.Options.describe()
            if as_json:
                print(
                    json.dumps(
                        {
                            "method": name,
                            "description": meth.describe(),
                            "options": [i.to_dict() for i in infos],
                        },
                        indent=2,
                    )
                )
                return
            table = Table(title=f"{name}: {meth.describe()}")
            for col in ("option", "type", "default", "range", "meaning"):
                table.add_column(col)
            for i in infos:
                table.add_row(i.name, i.type, json.dumps(i.default), i.range, i.doc)
            console.print(table if infos else f"{name}: {meth.describe()} (no options)")
            return
        candidates = (
            [get_setting(setting)] if setting else [*(get_setting(n) for n in setting_names())]
        )
        rows: dict[str, dict[str, Any]] = {}
        for key in METHODS:
            meth = METHODS[key]
            fits = [s.name for s in candidates if not meth.refusal(s)]
            if setting and not fits:
                continue
            rows[key] = {
                "kind": meth.kind,
                "description": meth.describe(),
                "options": len(meth.Options.describe()),
                "settings": fits,
            }
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        table = Table(title="design methods (`automech methods NAME` for its options)")
        for col in ("method", "kind", "options", "applies to", "description"):
            table.add_column(col)
        for key, r in rows.items():
            shown = ", ".join(r["settings"][:4]) + (
                f" (+{len(r['settings']) - 4})" if len(r["settings"]) > 4 else ""
            )
            table.add_row(key, r["kind"], str(r["options"]), shown or "-", r["description"])
        console.print(table)


@app.command(name="export")
def export_cmd(
    run: Path = typer.Argument(..., help="run directory"),
    fmt: str = typer.Option(
        ..., "--format", help="json (menus, affine maximizers, posted prices) or onnx (networks)"
    ),
    out: str | None = typer.Option(
        None, help="output file (default RUN/mechanism.json or .onnx); - prints the JSON"
    ),
) -> None:
    """Export a saved mechanism to run without automech: a self-contained JSON
    description (its rule in words and its numbers) or an ONNX graph."""
    with _clean_errors():
        from automech.export import FORMATS, describe_json, export_run, to_json

        if out == "-" and fmt in FORMATS:
            if fmt != "json":
                raise AutomechError("--out - (standard output) is for --format json only")
            sys.stdout.write(to_json(describe_json(load(run))))
            return
        path = export_run(run, fmt, out)
        console.print(f"{fmt}: {path}", markup=False, highlight=False)


@app.command(name="certify")
def certify_cmd(
    run: Path = typer.Argument(..., help="run directory of a ReLU/sparsemax RegretNet network"),
    profiles: int = typer.Option(100, help="test profiles certified (the protocol's first)"),
    time_limit: float = typer.Option(
        60.0, help="seconds per bidder and profile (the bound stays valid when reached)"
    ),
    seed: int = typer.Option(TEST_SEED, help="seed of the test profiles"),
    workers: int = typer.Option(1, help="processes, each certifying a share of the profiles"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Certify the exact regret of a piecewise-linear RegretNet network (options
    activation=relu, allocation=sparsemax) by mixed-integer linear programming (HiGHS):
    per profile the certified max regret over bidders, its MIP gap, the regret the
    sampled search finds on the same profiles and how much it missed (Curry et al.,
    NeurIPS 2020)."""
    with _clean_errors():
        from automech.evaluation import check_samples
        from automech.evaluation.certify import certify, check_certifiable
        from automech.evaluation.profiles import profile_regrets

        check_samples(profiles, "--profiles")
        check_samples(workers, "--workers")
        if not time_limit > 0:
            raise AutomechError(f"--time-limit must be > 0, got {time_limit}")
        mech = check_certifiable(load(run))
        total = max(TEST_PROFILES, profiles)
        values = mech.setting.test_profiles(total, seed)[:profiles]
        searched = profile_regrets(
            mech, search=RegretSearch(profiles=profiles), seed=seed, samples=total
        )

        def tick(done: int, of: int) -> None:
            if not as_json and sys.stderr.isatty():
                err_console.print(f"certified {done}/{of}", end="\r", highlight=False)

        report = certify(
            mech, values, time_limit=time_limit, searched=searched, workers=workers, progress=tick
        )
        data = report.to_dict()
        if as_json:
            print(json.dumps(data, indent=2))
            return
        table = Table(title=f"{mech.setting.name}: certified regret of {mech.name} ({run})")
        for col in ("profile", "certified", "MIP gap", "searched", "missed", "seconds"):
            table.add_column(col, justify="right")
        for row in data["per_profile"]:
            table.add_row(
                str(row["profile"]),
                f"{row['certified_regret']:.6f}",
                f"{row['gap']:.1e}",
                f"{row['searched_regret']:.6f}",
                f"{row['missed']:.6f}",
                f"{row['seconds']:.1f}",
            )
        console.print(table)
        console.print(
            f"certified regret mean {data['certified_regret_mean']:.6f} "
            f"(max {data['certified_regret_max']:.6f}; means over profiles and bidders); "
            f"sampled search {data['searched_regret_mean']:.6f}, missed "
            f"{data['missed_mean']:.6f} on average, {data['missed_max']:.6f} at most; "
            + ("every MILP solved to optimality" if data["proven"] else "some hit the time limit")
            + f"; {data['seconds_per_profile']:.1f} s per profile",
            markup=False,
            highlight=False,
        )


@app.command()
def serve(
    run: Path = typer.Argument(..., help="run directory of a static mechanism"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    log: Path | None = typer.Option(None, "--log", help="audit log (default RUN/audit.db)"),
    max_batch: int = typer.Option(1024, help="most bid profiles per request"),
    fsync: bool = typer.Option(
        False, help="fsync every commit: the log survives power loss too (slower)"
    ),
) -> None:
    """Serve RUN's mechanism over HTTP: POST /auction, GET /mechanism, GET /health.

    Every auction is committed to the audit log (SQLite) before it is answered;
    `automech log RUN` lists and verifies it.  One process, one torch thread
    (AUTOMECH_THREADS overrides); runs whose evaluation shows IR violations or
    infeasible allocations are refused."""
    import os

    with _clean_errors():
        import uvicorn

        from automech.serve import create_app

        if not os.environ.get("AUTOMECH_THREADS"):
            configure_threads(1)
        application = create_app(run, log_path=log, max_batch=max_batch, fsync=fsync)
        where = log or run / "audit.db"
        err_console.print(
            f"serving {application.state.mechanism.name} from {run} on http://{host}:{port}"
            f" (audit log {where})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    uvicorn.run(application, host=host, port=port, log_level="warning")


@app.command(name="log")
def log_cmd(
    run: Path = typer.Argument(..., help="run directory"),
    log: Path | None = typer.Option(None, "--log", help="audit log (default RUN/audit.db)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    verify: bool = typer.Option(
        True, "--verify/--no-verify", help="recompute every outcome from its bids and seed"
    ),
    last: int | None = typer.Option(None, help="print only the last LAST entries"),
) -> None:
    """List the auctions in RUN's audit log and verify them: every allocation and payment
    recomputed from the bids, every realised allocation from its seed, every entry made
    by RUN's checkpoint (its sha256).  Exit 2 when one does not verify."""
    from automech.audit import AUDIT_DB, AuditError, checkpoint_sha256, compact, open_log
    from automech.audit import verify as verify_log
    from automech.mechanisms.base import Mechanism

    with _clean_errors():
        path = log or run / AUDIT_DB
        with open_log(path) as audit:
            entries = list(audit.entries())
        checked = None
        if verify:
            mech = load(run)
            if not isinstance(mech, Mechanism):
                raise AuditError(f"{str(run)!r} holds a dynamic mechanism, which is never served")
            result = verify_log(entries, mech, checkpoint_sha256(run))
            if not result.ok:
                raise AuditError(
                    f"{len(result.problems)} of {result.entries} entries in {str(path)!r} do "
                    f"not verify against {str(run)!r}; first: {result.problems[0]}"
                )
            checked = result.entries
        shown = entries if last is None else entries[-last:] if last > 0 else []
        if as_json:
            out = {"log": str(path), "entries": len(entries), "verified": checked is not None}
            out["shown"] = [e.to_dict() for e in shown]
            print(json.dumps(out, indent=2))
            return
        table = Table(title=f"{path}: {len(entries)} auction(s)")
        seq_width = len(str(entries[-1].seq)) if entries else 3
        fixed = {"seq": seq_width, "time (UTC)": 19, "id": 8, "seed": 19}
        for col in ("seq", "time (UTC)", "id", "bids", "payments", "realised", "seed"):
            table.add_column(
                col,
                justify="right" if col in ("seq", "seed") else "left",
                no_wrap=col in fixed,
                min_width=fixed.get(col),
                overflow="ellipsis",
            )
        for e in shown:
            table.add_row(
                str(e.seq),
                e.time[:19].replace("T", " "),
                e.id[:8],
                compact(e.bids),
                compact(e.payments),
                compact(e.realised),
                str(e.seed),
            )
        console.print(table)
        if checked is not None:
            console.print(f"verified: all {checked} entries recompute from their bids and seeds")


@app.command(name="design")
def design_cmd(
    problem: str = typer.Argument(..., help="setting name or .toml file (a data file of bids too)"),
    budget: str = typer.Option("10m", help="time budget: 90s, 10m, 1h or plain seconds"),
    out: Path | None = typer.Option(None, help="design directory (default runs/design-SETTING)"),
    approximate: bool = typer.Option(
        False, "--approximate", help="also train RegretNet/ALGNet (shown, never chosen)"
    ),
    seed: int = typer.Option(0, help="seed of every training run"),
    as_json: bool = typer.Option(False, "--json", help="print design.json instead of a table"),
    samples: int = typer.Option(TEST_PROFILES, hidden=True, help="test profiles"),
    regret_profiles: int = typer.Option(REGRET_PROFILES, hidden=True, help="profiles searched"),
    max_steps: int | None = typer.Option(None, hidden=True, help="cap every method's steps"),
    only: list[str] = typer.Option([], hidden=True, help="only these learned methods"),
) -> None:
    """Find the best exactly strategyproof mechanism for PROBLEM within a time budget:
    classical baselines, then the learned methods that apply; writes OUT/design.json,
    OUT/chosen (for evaluate, serve, export) and OUT/report.html."""
    from automech.design import design, parse_budget, summary_rows

    with _clean_errors():
        seconds = parse_budget(budget)
        result = design(
            problem,
            seconds,
            out=out,
            include_approximate=approximate,
            seed=seed,
            progress=not as_json and sys.stderr.isatty(),
            notify=None
            if as_json
            else lambda line: err_console.print(line, markup=False, highlight=False),
            samples=samples,
            regret_profiles=regret_profiles,
            max_steps=max_steps,
            methods=only or None,
        )
        if as_json:
            print(json.dumps({"out": str(result.out), **result.to_dict()}, indent=2))
            return
        s = result.setting
        label = "revenue" if s.objective.name == "revenue" else s.objective.name
        table = Table(title=f"{s.name}: {s.describe()} (budget {seconds:.0f} s)")
        cols = (label, "95% interval", "regret", "IR viol.", "infeas.", "steps", "time s")
        table.add_column("candidate", no_wrap=True)
        for col in cols:
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("status", no_wrap=True)

        def fmt(x, digits=4):
            return "-" if x is None else f"{x:.{digits}f}"

        kind = None
        for r in summary_rows(result):
            if kind is not None and r["kind"] != kind:
                table.add_section()  # classical above, learned below
            kind, ci = r["kind"], r["interval"]
            table.add_row(
                r["name"],
                fmt(r["score"]),
                "-" if ci is None else f"{ci[0]:.3f}-{ci[1]:.3f}",
                fmt(r["regret_mean"]),
                fmt(r["ir_violation_rate"], 3),
                fmt(r["infeasible_rate"], 3),
                "-" if r["steps"] is None else str(r["steps"]),
                f"{r['seconds']:.1f}",
                r["status_short"],
                style="bold" if r["chosen"] else None,
            )
        console.print(table)
        console.print(f"chosen: {escape(result.reason)}", soft_wrap=True)
        for c in result.candidates:
            if c.status != "evaluated":
                console.print(
                    f"[dim]{c.status} {c.name}: {escape(str(c.reason))}[/]", soft_wrap=True
                )
        where = f"{result.out}/chosen" + (f", {result.report}" if result.report else "")
        console.print(
            f"[dim]saved: {escape(where)} ({result.out}/design.json lists every candidate)[/]"
        )


def main() -> None:  # pragma: no cover - console entry point
    app()

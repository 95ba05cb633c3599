"""The sweep file: what to run, validated field by field, expanded to jobs.

A sweep file is TOML::

    name = "compare-2x2"                       # default: the file's stem
    settings = ["1x2-uniform", "2x2-uniform"]  # names or setting .toml files
    methods = ["rochetnet", "lottery-ama"]     # pairs that do not apply are skipped
    seeds = [0, 1, 2, 3]                       # or a count: seeds = 4
    eval_samples = 100000                      # test profiles of each job's evaluation
    regret_profiles = 1000                     # profiles searched for misreports (0: none)
    runs_root = "runs"                         # run dirs: runs_root/name/SETTING-METHOD-seedS

    [options]              # for every method that has the option; skipped (noted) otherwise
    steps = 2000
    [options.rochetnet]    # for one method only; every key must be one of its options
    lr = 0.001

    [grid]                 # option variants: every combination is run (per method that
    lr = [0.01, 0.001]     # has the option; [grid.METHOD] for one method)

    [[jobs]]               # explicit jobs, in addition to (or instead of) the grid above
    setting = "2x3-uniform"
    method = "rochetnet"
    seeds = [0]            # or seed = 0
    options = { steps = 500 }

Settings may be static or dynamic (``seq-sales-3x2`` with ``grid-search``...): a method
of the other kind is skipped with a note, like any pair that does not apply.  Options are
checked against each method's typed options (``automech methods NAME``).

Errors name the offending field (``field 'methods[1]': unknown method ...``).
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automech.errors import AutomechError
from automech.evaluation import TEST_PROFILES, RegretSearch
from automech.methods import METHODS
from automech.problems import get_setting

#: Defaults of the per-job evaluation budget (small: a sweep has many jobs).
EVAL_SAMPLES = TEST_PROFILES
REGRET_PROFILES = RegretSearch().profiles

_TOP_KEYS = {
    "name",
    "description",
    "settings",
    "methods",
    "seeds",
    "options",
    "grid",
    "jobs",
    "eval_samples",
    "regret_profiles",
    "runs_root",
}
_JOB_KEYS = {"setting", "method", "seed", "seeds", "options"}
_SAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


class SweepError(AutomechError, ValueError):
    """A sweep file is malformed; the message names the field."""

    def __init__(self, field: str, problem: str, source: str | None = None) -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}field '{field}': {problem}")
        self.field = field
        self.problem = problem


def safe_name(text: str) -> str:
    """``text`` usable as one path component."""
    return _SAFE.sub("_", text).strip("_") or "_"


@dataclass(frozen=True)
class Job:
    """One (setting, method, options, seed) run with its evaluation budget."""

    sweep: str
    setting: str  # the setting's name (label in the results)
    setting_spec: dict[str, Any] = field(repr=False, compare=False)
    method: str = ""
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict, compare=False)
    variant: str = ""  # "" or the grid values, e.g. "lr=0.01"
    eval_samples: int = EVAL_SAMPLES
    regret_profiles: int = REGRET_PROFILES
    skip: str | None = field(default=None, compare=False)  # why the method does not apply

    @property
    def options_json(self) -> str:
        return json.dumps(self.options, sort_keys=True)

    @property
    def evaluation_json(self) -> str:
        return json.dumps(
            {"eval_samples": self.eval_samples, "regret_profiles": self.regret_profiles},
            sort_keys=True,
        )

    @property
    def key(self) -> tuple[str, str, str, int, str, str]:
        """The store's unique key."""
        return (
            self.sweep,
            self.setting,
            self.method,
            self.seed,
            self.options_json,
            self.evaluation_json,
        )

    def run_dir(self, runs_root: str | Path) -> Path:
        tag = f"-{safe_name(self.variant)}" if self.variant else ""
        name = f"{safe_name(self.setting)}-{self.method}{tag}-seed{self.seed}"
        return Path(runs_root).resolve() / safe_name(self.sweep) / name

    def describe(self) -> str:
        tag = f" [{self.variant}]" if self.variant else ""
        return f"{self.setting} {self.method}{tag} seed {self.seed}"


@dataclass
class Sweep:
    name: str
    jobs: list[Job]
    runs_root: str = "runs"
    notes: list[str] = field(default_factory=list)
    source: str | None = None

    @property
    def runnable(self) -> list[Job]:
        return [j for j in self.jobs if j.skip is None]

    @property
    def skipped(self) -> list[Job]:
        return [j for j in self.jobs if j.skip is not None]


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file."""
    path = Path(path)
    if not path.is_file():
        raise AutomechError(f"sweep file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise AutomechError(f"sweep file {str(path)!r} is not valid TOML: {err}") from None
    return parse_sweep(data, source=str(path), default_name=path.stem, base_dir=path.parent)


def parse_sweep(
    data: dict[str, Any],
    source: str | None = None,
    default_name: str | None = None,
    base_dir: Path | None = None,
) -> Sweep:
    """Validate the dict form of a sweep file and expand it to jobs."""

    def err(fld: str, problem: str) -> SweepError:
        return SweepError(fld, problem, source)

    if not isinstance(data, dict):
        raise err("<top>", "must be a table")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise err(unknown[0], f"unknown key; known keys: {', '.join(sorted(_TOP_KEYS))}")

    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise err("name", "required: a non-empty string naming the sweep")
    if safe_name(name) != name:
        raise err("name", f"{name!r} may only hold letters, digits and . _ = + -")
    eval_samples = _int(data, "eval_samples", EVAL_SAMPLES, 1, err)
    regret_profiles = _int(data, "regret_profiles", REGRET_PROFILES, 0, err)
    runs_root = data.get("runs_root", "runs")
    if not isinstance(runs_root, str) or not runs_root:
        raise err("runs_root", "must be a non-empty string (a directory)")

    settings_cache: dict[str, Any] = {}
    labels: dict[str, tuple[str, dict]] = {}

    def setting(value: Any, fld: str) -> Any:
        if not isinstance(value, str) or not value:
            raise err(fld, f"must be a setting name or .toml file, got {value!r}")
        if value not in settings_cache:
            target = value
            if (
                base_dir is not None
                and value.endswith(".toml")
                and not Path(value).is_absolute()
                and (base_dir / value).is_file()
            ):
                target = str(base_dir / value)
            try:
                s = get_setting(target)
            except AutomechError as e:
                raise err(fld, str(e)) from None
            label = s.name or Path(value).stem
            spec = s.to_dict()
            if label in labels and labels[label][1] != spec:
                raise err(
                    fld,
                    f"setting name {label!r} is also used by "
                    f"{labels[label][0]!r} for a different setting",
                )
            labels[label] = (fld, spec)
            settings_cache[value] = s
        return settings_cache[value]

    def method(value: Any, fld: str) -> str:
        if not isinstance(value, str) or value not in METHODS:
            raise err(fld, f"unknown method {value!r}; known: {', '.join(METHODS)}")
        return value

    def seeds(value: Any, fld: str) -> list[int]:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise err(fld, f"a count of seeds must be at least 1, got {value}")
            return list(range(value))
        if not isinstance(value, list) or not value:
            raise err(fld, "must be a non-empty list of integers (or a count)")
        for i, s in enumerate(value):
            if not isinstance(s, int) or isinstance(s, bool) or s < 0:
                raise err(f"{fld}[{i}]", f"must be a non-negative integer, got {s!r}")
        if len(set(value)) != len(value):
            raise err(fld, "lists a seed twice")
        return list(value)

    def str_list(key: str) -> list[Any]:
        value = data.get(key)
        if not isinstance(value, list) or not value:
            raise err(key, "must be a non-empty list")
        return value

    notes: list[str] = []
    jobs: list[Job] = []

    # ---------------------------------------------------------------- the grid
    has_grid = "settings" in data or "methods" in data
    if has_grid or "jobs" not in data:
        for key in ("settings", "methods", "seeds"):
            if key not in data:
                raise err(key, "required (or list explicit [[jobs]])")
        set_list = [setting(v, f"settings[{i}]") for i, v in enumerate(str_list("settings"))]
        meth_list = [method(v, f"methods[{i}]") for i, v in enumerate(str_list("methods"))]
        if len(set(meth_list)) != len(meth_list):
            raise err("methods", "lists a method twice")
        seed_list = seeds(data["seeds"], "seeds")
        options = _split_per_method(data.get("options", {}), "options", meth_list, err)
        grid = _split_per_method(data.get("grid", {}), "grid", meth_list, err)
        skipped_keys: dict[str, list[str]] = {}
        variants: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for m in meth_list:
            defaults = _option_names(m)
            opts = {}
            for k, v in options["*"].items():
                if k in defaults:
                    opts[k] = v
                else:
                    skipped_keys.setdefault(k, []).append(m)
            opts.update(options[m])
            axes = {}
            for k, v in grid["*"].items():
                if k in defaults:
                    axes[k] = v
                else:
                    skipped_keys.setdefault(f"grid.{k}", []).append(m)
            axes.update(grid[m])
            for k, v in axes.items():
                if not isinstance(v, list) or not v:
                    where = f"grid.{m}.{k}" if k in grid[m] else f"grid.{k}"
                    raise err(where, "must be a non-empty list of values")
            variants[m] = []
            for combo in itertools.product(*axes.values()):
                chosen = dict(zip(axes, combo))
                label = ",".join(f"{k}={_fmt(v)}" for k, v in chosen.items())
                fld = f"options.{m}" if options[m] else "options"
                variants[m].append((label, _check(m, {**opts, **chosen}, fld, err)))
        for k, ms in skipped_keys.items():
            notes.append(f"option {k!r} not used by {', '.join(ms)} (no such option)")
        for s in set_list:
            for m in meth_list:
                reason = _applicable(m, s)
                if reason:
                    notes.append(f"skipped {m} on {s.name}: {reason}")
                for label, opts in variants[m]:
                    for seed in seed_list:
                        jobs.append(
                            Job(
                                name,
                                s.name,
                                s.to_dict(),
                                m,
                                seed,
                                opts,
                                label,
                                eval_samples,
                                regret_profiles,
                                reason,
                            )
                        )
    elif "grid" in data or "options" in data:
        raise err(
            "grid" if "grid" in data else "options",
            "applies to the settings x methods grid; give options per [[jobs]] entry",
        )

    # ---------------------------------------------------------------- explicit jobs
    entries = data.get("jobs", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise err("jobs", "must be an array of tables ([[jobs]])")
    for i, entry in enumerate(entries):
        at = f"jobs[{i}]"
        bad = sorted(set(entry) - _JOB_KEYS)
        if bad:
            raise err(f"{at}.{bad[0]}", f"unknown key; known: {', '.join(sorted(_JOB_KEYS))}")
        for key in ("setting", "method"):
            if key not in entry:
                raise err(f"{at}.{key}", "required")
        s = setting(entry["setting"], f"{at}.setting")
        m = method(entry["method"], f"{at}.method")
        if ("seed" in entry) == ("seeds" in entry):
            raise err(f"{at}.seeds", "give exactly one of seed = N or seeds = [...]")
        seed_list = seeds(
            [entry["seed"]] if "seed" in entry else entry["seeds"],
            f"{at}.seed" if "seed" in entry else f"{at}.seeds",
        )
        given = entry.get("options", {})
        if not isinstance(given, dict):
            raise err(f"{at}.options", "must be a table of method options")
        opts = _check(m, given, f"{at}.options", err)
        label = ",".join(f"{k}={_fmt(v)}" for k, v in sorted(opts.items()))
        reason = _applicable(m, s)
        if reason:
            notes.append(f"skipped {m} on {s.name} ({at}): {reason}")
        for seed in seed_list:
            jobs.append(
                Job(
                    name,
                    s.name,
                    s.to_dict(),
                    m,
                    seed,
                    opts,
                    label,
                    eval_samples,
                    regret_profiles,
                    reason,
                )
            )

    unique: dict[tuple, Job] = {}
    dirs: dict[Path, Job] = {}
    for job in jobs:
        if job.key in unique:
            continue
        other = dirs.get(job.run_dir(runs_root))
        if other is not None:
            raise err(
                "jobs",
                f"{job.describe()} and {other.describe()} would share the run "
                "directory; give them different options",
            )
        unique[job.key] = job
        dirs[job.run_dir(runs_root)] = job
    if len(unique) < len(jobs):
        notes.append(f"{len(jobs) - len(unique)} duplicate job(s) listed once")
    if not unique:
        raise err("jobs", "the sweep has no jobs")
    return Sweep(name, list(unique.values()), runs_root, notes, source)


# ------------------------------------------------------------------------- helpers


def _option_names(method: str) -> set[str]:
    """The options of ``method`` (its typed ``Options`` fields)."""
    return set(METHODS[method].Options.defaults())


def _applicable(method: str, setting: Any) -> str | None:
    """None if ``method`` applies to ``setting``, else why not (the check
    :func:`automech.experiment.train` makes: the kinds first, then the method's own)."""
    return METHODS[method].refusal(setting)


def _int(data: dict, key: str, default: int, low: int, err) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise err(key, f"must be an integer >= {low}, got {value!r}")
    return value


def _split_per_method(table: Any, where: str, methods: list[str], err) -> dict[str, dict[str, Any]]:
    """``{"steps": 1, "rochetnet": {"lr": 2}}`` -> ``{"*": {"steps": 1}, "rochetnet": {...}}``."""
    if not isinstance(table, dict):
        raise err(where, "must be a table")
    out: dict[str, dict[str, Any]] = {"*": {}, **{m: {} for m in methods}}
    for key, value in table.items():
        if isinstance(value, dict) and key in METHODS:
            if key not in methods:
                raise err(f"{where}.{key}", f"method {key!r} is not in this sweep's methods")
            for k in value:
                if k not in _option_names(key):
                    known = ", ".join(sorted(_option_names(key))) or "none"
                    raise err(
                        f"{where}.{key}.{k}",
                        f"method {key!r} has no option {k!r}; options: {known}",
                    )
            out[key] = dict(value)
        else:
            if not any(key in _option_names(m) for m in methods):
                raise err(
                    f"{where}.{key}",
                    f"no method of this sweep has this option (methods: {', '.join(methods)})",
                )
            out["*"][key] = value
    return out


def _check(method: str, given: dict[str, Any], fld: str, err) -> dict[str, Any]:
    """The options given explicitly, type-checked and coerced against the method's."""
    try:
        resolved = METHODS[method].Options.resolve(given).to_dict()
    except AutomechError as e:
        raise err(fld, str(e)) from None
    return {k: resolved[k] for k in sorted(given)}


def _fmt(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value

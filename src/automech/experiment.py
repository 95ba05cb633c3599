"""One run end to end: resolve options, fit, save, evaluate, write the run directory."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from automech import __version__
from automech.errors import AutomechError
from automech.evaluation import RegretSearch, evaluate
from automech.mechanisms.base import Mechanism
from automech.methods import get_method
from automech.problems.setting import Setting
from automech.runs import METRICS, Run, open_run


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so the same seed gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["lr=0.01", "allocations=64"]`` -> ``{"lr": 0.01, "allocations": 64}``.

    Values are read as TOML values (numbers, booleans, quoted strings, lists); anything
    that is not valid TOML is kept as a bare string.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise AutomechError(f"option {pair!r} must look like key=value")
        key, raw = (s.strip() for s in pair.split("=", 1))
        try:
            out[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw
    return out


def options_from_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise AutomechError(f"options file {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise AutomechError(f"options file {str(path)!r} is not valid TOML: {err}") from None


def resolve_options(defaults: dict[str, Any], given: dict[str, Any], method: str) -> dict[str, Any]:
    """Defaults overridden by ``given``; unknown keys and wrong types are refused."""
    out = dict(defaults)
    for key, value in given.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise AutomechError(f"method {method!r} has no option {key!r}; options: {known}")
        default = defaults[key]
        if isinstance(default, bool) and not isinstance(value, bool):
            raise AutomechError(f"option {key!r} must be true or false, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise AutomechError(f"option {key!r} must be a number, got {value!r}")
            if isinstance(default, int) and not float(value).is_integer():
                raise AutomechError(f"option {key!r} must be an integer, got {value!r}")
            value = type(default)(value)
        out[key] = value
    return out


def train(setting: Setting, method: str, options: dict[str, Any] | None = None, seed: int = 0,
          out: str | Path | None = None, eval_samples: int = 10_000,
          search: RegretSearch | None = RegretSearch(), progress: bool = False,
          ) -> tuple[Mechanism, Run]:
    """Fit ``method`` on ``setting``, save it and its evaluation into a run directory.

    Rerunning with the same ``out`` resumes from the checkpoint when the method supports it
    (the config must match).
    """
    meth = get_method(method)
    problem = meth.applicable(setting)
    if problem:
        raise AutomechError(f"method {method!r} does not apply to "
                            f"{setting.name or 'this setting'}: {problem}")
    opts = meth.resolve(setting, resolve_options(meth.defaults, options or {}, method))
    out = Path(out) if out else Path("runs") / f"{setting.name or 'setting'}-{method}-seed{seed}"
    config = {"automech": __version__, "setting": setting.to_dict(), "method": method,
              "options": opts, "seed": seed}
    run = open_run(out, config)
    seed_everything(seed)
    mechanism = meth.fit(setting, opts, seed, run, progress=progress)
    run.save(mechanism, training_state={"finished": True})
    report = evaluate(mechanism, setting, samples=eval_samples, search=search,
                      progress=progress)
    run.write_json(METRICS, report.to_dict())
    return mechanism, run

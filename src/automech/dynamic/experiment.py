"""One dynamic run end to end, in the package's run-directory layout::

    config.json      {"kind": "dynamic", setting (dict form), method, options, seed, version}
    checkpoint.pt    {"kind": "dynamic", "mechanism": "dynamic-ama", "setting": {...},
                      "state_dict": {"weights": w, "boosts": b}, "training_state": {...}}
    history.jsonl    training and validation scores
    metrics.json     the final exact evaluation (with the dynamic VCG beside it)

:func:`load_dynamic` rebuilds the AMA from ``checkpoint.pt`` alone (the environment by
its registered name); :func:`is_dynamic_run` tells such a run from a static one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from automech import __version__
from automech.dynamic.ama import DynamicAMA
from automech.dynamic.envs import DynamicEnv
from automech.dynamic.evaluate import DynamicEvaluation, evaluate_dynamic
from automech.dynamic.optimise import get_dynamic_method
from automech.dynamic.registry import get_dynamic_setting
from automech.errors import AutomechError, RunError
from automech.experiment import resolve_options, seed_everything
from automech.runs import CHECKPOINT, METRICS, Run, open_run

KIND = "dynamic"


def save_dynamic(mechanism: DynamicAMA, run: Run,
                 training_state: dict[str, Any] | None = None) -> None:
    """Write ``checkpoint.pt`` atomically."""
    payload = {"kind": KIND, "mechanism": mechanism.name,
               "setting": mechanism.env.to_dict(), "config": {},
               "state_dict": mechanism.state_dict(), "training_state": training_state}
    tmp = run.path / f".{CHECKPOINT}.tmp"
    torch.save(payload, tmp)
    tmp.replace(run.path / CHECKPOINT)


def is_dynamic_run(path: str | Path) -> bool:
    """True when ``path`` is a run directory whose checkpoint holds a dynamic AMA."""
    file = Path(path) / CHECKPOINT
    if not file.is_file():
        return False
    try:
        payload = torch.load(file, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - unreadable: let the static loader report it
        return False
    return isinstance(payload, dict) and payload.get("kind") == KIND


def load_dynamic(path: str | Path) -> DynamicAMA:
    """The dynamic AMA saved in run directory ``path``."""
    payload = Run(path).checkpoint() if Path(path).is_dir() else None
    if payload is None:
        raise RunError(f"run directory {str(path)!r} does not exist")
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise RunError(f"checkpoint in {str(path)!r} is not a dynamic AMA checkpoint")
    try:
        env = get_dynamic_setting(payload["setting"]["name"])
        state = payload["state_dict"]
        return DynamicAMA(env, state["weights"], state["boosts"])
    except (KeyError, TypeError) as err:
        raise RunError(f"checkpoint in {str(path)!r} does not rebuild a dynamic AMA: "
                       f"{err}") from None


def train_dynamic(setting: str | DynamicEnv, method: str,
                  options: dict[str, Any] | None = None, seed: int = 0,
                  out: str | Path | None = None, eval_samples: int = 10_000,
                  ic_profiles: int = 200, progress: bool = False,
                  ) -> tuple[DynamicAMA, Run, DynamicEvaluation]:
    """Optimise a dynamic AMA for ``setting`` with ``method``; save and evaluate it."""
    env = get_dynamic_setting(setting) if isinstance(setting, str) else setting
    meth = get_dynamic_method(method)
    problem = meth.applicable(env)
    if problem:
        raise AutomechError(f"method {method!r} does not apply to {env.name}: {problem}")
    opts = resolve_options(meth.defaults, options or {}, method)
    out = Path(out) if out else Path("runs") / f"{env.name}-{method}-seed{seed}"
    config = {"automech": __version__, "kind": KIND, "setting": env.to_dict(),
              "method": method, "options": opts, "seed": seed}
    run = open_run(out, config)
    (run.path / "history.jsonl").unlink(missing_ok=True)  # dynamic runs retrain, not resume
    seed_everything(seed)
    start = time.perf_counter()
    mechanism = meth.fit(env, opts, seed, run, progress=progress)
    seconds = time.perf_counter() - start
    save_dynamic(mechanism, run, training_state={"finished": True, "seconds": seconds})
    report = evaluate_dynamic(mechanism, samples=eval_samples, ic_profiles=ic_profiles,
                              progress=progress)
    run.write_json(METRICS, {**report.to_dict(), "train_seconds": seconds})
    return mechanism, run, report

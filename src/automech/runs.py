"""Run directories: where every run keeps its config, metrics and checkpoint.

Layout of a run directory::

    config.json      setting (dict form), method, options, seed, automech version
    checkpoint.pt    mechanism name, its rebuild config, state_dict (+ training state)
    history.jsonl    one JSON line of training metrics per logged step
    metrics.json     the final evaluation (the shared protocol's JSON)

:func:`automech.load` rebuilds the mechanism from ``checkpoint.pt`` alone.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from automech.errors import RunError
from automech.problems import setting_from_dict

if TYPE_CHECKING:
    from automech.mechanisms.base import Design

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
HISTORY = "history.jsonl"
METRICS = "metrics.json"


class Run:
    """A run directory; creating one makes the directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2, default=_jsonable))
        tmp.replace(self.path / name)

    def read_json(self, name: str) -> dict[str, Any]:
        return json.loads((self.path / name).read_text())

    def log(self, record: dict[str, Any]) -> None:
        """Append one line of training metrics to ``history.jsonl``."""
        with open(self.path / HISTORY, "a") as fh:
            fh.write(json.dumps(record, default=_jsonable) + "\n")

    def history(self) -> list[dict[str, Any]]:
        path = self.path / HISTORY
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def save(
        self,
        mechanism: Design,
        training_state: dict[str, Any] | None = None,
        method: str | None = None,
    ) -> None:
        """Write ``checkpoint.pt`` atomically (a kill never leaves a half-written file);
        ``method``: the registered method that fitted it (recorded for loading)."""
        payload = {
            "mechanism": mechanism.name,
            "method": method,
            "config": mechanism.config(),
            "setting": mechanism.setting.to_dict(),
            "state_dict": mechanism.state_dict(),
            "dtype": str(getattr(mechanism, "dtype", "")).removeprefix("torch."),
            "training_state": training_state,
        }
        tmp = self.path / f".{CHECKPOINT}.tmp"
        torch.save(payload, tmp)
        tmp.replace(self.path / CHECKPOINT)

    def checkpoint(self) -> dict[str, Any]:
        path = self.path / CHECKPOINT
        if not path.is_file():
            raise RunError(
                f"no checkpoint in run directory {str(self.path)!r} (expected {CHECKPOINT})"
            )
        return read_data(path)


def read_data(path: str | Path) -> Any:
    """The contents of a ``.pt`` file automech wrote, loaded as data only.

    ``torch.load(..., weights_only=True)``: tensors, numbers, strings, lists and dicts;
    no pickled object is ever constructed, so a crafted file cannot run code.  A file
    that needs pickle (an old or foreign checkpoint, or a planted one) is refused with a
    :class:`RunError` saying so and how to convert a trusted one.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        needs = f" (it names the Python object {found.group(1)})" if found else ""
        raise RunError(
            f"{str(path)!r} is not plain data: loading it would run pickle code{needs}, which "
            "automech never does; if the file is yours and you trust it, convert it once "
            f'with: python -c "import torch; p = {str(path)!r}; '
            'torch.save(torch.load(p, weights_only=False), p)"'
        ) from None
    except Exception as err:  # noqa: BLE001 - any other failure is a bad file
        detail = " ".join(str(err).split())[:200]
        raise RunError(f"cannot read checkpoint {str(path)!r}: {detail}") from None


def open_run(path: str | Path, config: dict[str, Any]) -> Run:
    """The run directory ``path`` for a run described by ``config`` (written to
    ``config.json``).  An existing directory is reused only if it holds the same run
    (the ``automech`` version key aside), so a rerun resumes instead of mixing runs."""
    path = Path(path)
    if (path / CONFIG).exists():
        previous = json.loads((path / CONFIG).read_text())
        previous.pop("automech", None)
        if {k: v for k, v in config.items() if k != "automech"} != previous:
            raise RunError(
                f"run directory {str(path)!r} holds a different run; choose another --out"
            )
    run = Run(path)
    run.write_json(CONFIG, config)
    return run


def rebuild(run_dir: str | Path, lookup: Callable[[str, str | None], type | None]) -> Design:
    """The mechanism saved in ``run_dir``; ``lookup(mechanism, method)`` gives the class
    for the names the checkpoint records (None: unknown).  :func:`automech.load` passes
    the method registry's :func:`~automech.methods.mechanism_class`."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError(f"run directory {str(path)!r} does not exist")
    payload = Run(path).checkpoint()
    if not isinstance(payload, dict) or "setting" not in payload or "state_dict" not in payload:
        raise RunError(
            f"checkpoint in {str(path)!r} is not an automech checkpoint "
            "(expected keys mechanism, config, setting, state_dict)"
        )
    name = payload.get("mechanism")
    cls = lookup(name, payload.get("method")) if isinstance(name, str) else None
    if cls is None:
        raise RunError(f"checkpoint in {str(path)!r} names unknown mechanism {name!r}")
    setting = setting_from_dict(payload["setting"], source=str(path / CHECKPOINT))
    try:
        mechanism = cls(setting, **payload.get("config", {}))
        if payload.get("dtype") == "float64" and getattr(mechanism, "dtype", None) != torch.float64:
            mechanism = mechanism.double()  # rebuilt as saved, not cast down to float32
        mechanism.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        detail = " ".join(str(err).split())
        raise RunError(
            f"checkpoint in {str(path)!r} does not rebuild mechanism {name!r}: {detail}"
        ) from None
    return mechanism.eval()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

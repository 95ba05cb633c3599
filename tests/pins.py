"""Short fixed-seed runs of every method, pinned before the design-layer refactor.

``python tests/pins.py`` rewrites ``tests/data/pinned_runs.json`` (only after a change
whose effect on the numbers is measured and explained); ``tests/test_design_layer.py``
reruns every case and compares.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

PINNED = Path(__file__).parent / "data" / "pinned_runs.json"

#: (method, setting, options): budgets of a few seconds each.
CASES: list[tuple[str, str, dict]] = [
    (
        "rochetnet",
        "1x2-uniform",
        {
            "steps": 30,
            "batch_size": 512,
            "menu_size": 8,
            "validation_samples": 1024,
            "validate_every": 10,
        },
    ),
    (
        "myersonnet",
        "2x1-uniform",
        {"steps": 30, "batch_size": 512, "validation_samples": 1024, "validate_every": 10},
    ),
    (
        "regretnet",
        "2x2-uniform",
        {
            "steps": 20,
            "batch_size": 64,
            "train_profiles": 512,
            "hidden": 16,
            "misreport_steps": 3,
            "validation_samples": 512,
            "validate_every": 10,
        },
    ),
    (
        "algnet",
        "2x2-uniform",
        {
            "steps": 20,
            "batch_size": 64,
            "hidden": 16,
            "misreporter_hidden": 16,
            "misreporter_steps": 2,
            "refine_steps": 2,
            "validation_samples": 512,
            "validate_every": 10,
        },
    ),
    (
        "lottery-ama",
        "2x2-uniform",
        {
            "steps": 30,
            "batch_size": 512,
            "chunk_size": 0,
            "allocations": 32,
            "prune_after": 10,
            "prune_every": 10,
            "prune_samples": 1024,
            "validation_samples": 1024,
            "validate_every": 10,
        },
    ),
    (
        "deterministic-ama",
        "2x2-uniform",
        {"steps": 30, "batch_size": 512, "validation_samples": 1024, "validate_every": 10},
    ),
    (
        "tedi",
        "U-1x10-cp0-cd0",
        {
            "steps": 6,
            "batch_size": 64,
            "groups": [4, 4],
            "pan_hidden": 16,
            "langevin_steps": 2,
            "metropolis_steps": 2,
            "solver_steps": 50,
            "validation_samples": 256,
            "validate_every": 3,
            "init": "bundle",
        },
    ),
    (
        "gemnet",
        "2x2-uniform",
        {
            "steps": 10,
            "batch_size": 256,
            "menu_size": 4,
            "hidden": 16,
            "init": "random",
            "adjust": False,
            "validation_samples": 512,
            "validate_every": 5,
        },
    ),
    ("lp", "2x2-uniform", {"grid": 3}),
    ("grand-bundle", "1x2-uniform", {}),
    ("grid-search", "scheduling-2x3", {"candidates": 32, "profiles": 200}),
    (
        "zeroth-order",
        "seq-sales-3x2",
        {"steps": 20, "batch_size": 32, "validate_every": 10, "validation_samples": 500},
    ),
    (
        "regularized-lp",
        "seq-sales-3x2",
        {"steps": 20, "batch_size": 32, "validate_every": 10, "validation_samples": 500},
    ),
]


def run_case(method: str, setting: str, options: dict) -> dict:
    """Validation curve and final test figures of one short run."""
    from automech.runs import Run

    with tempfile.TemporaryDirectory() as tmp:
        run = _train(method, setting, options, Path(tmp) / "run")
        history = [
            r.get("val_objective", r.get("validation"))
            for r in Run(run.path).history()
            if "val_objective" in r or "validation" in r
        ]
        metrics = run.read_json("metrics.json")
    return {"val_objective": history, "revenue": metrics["revenue"], "welfare": metrics["welfare"]}


def _train(method: str, setting: str, options: dict, out: Path):
    from automech.experiment import train

    return train(setting, method, dict(options), seed=3, out=out, eval_samples=4096, search=None)[1]


def key(method: str, setting: str) -> str:
    return f"{method}@{setting}"


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    out = {key(m, s): run_case(m, s, o) for m, s, o in CASES}
    PINNED.write_text(json.dumps(out, indent=1) + "\n")
    json.dump(out, sys.stdout, indent=1)

"""The CLI's boundary: bad inputs a new user tries, each with its exit code and message.

    python bench/boundary.py            # prints JSON, writes bench/results/boundary.json

Every case must exit with code 2 and one line naming the problem (``tests/test_cli.py``
and ``tests/test_fuzz.py`` check the same properties); the file records what each says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "boundary.json"


class _Planted:
    """Unpickling this would write a file: a crafted checkpoint."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (Path(self.target), "pwned"))


def cases(tmp: Path) -> list[tuple[str, list[str]]]:
    run = tmp / "gb"
    huge = tmp / "huge.toml"
    huge.write_text('bidders = 1000000000\nitems = 2\n[prior]\nkind = "uniform"\n')
    bad = tmp / "bad.toml"
    bad.write_text('bidders = 2\nitems = 2\n[prior]\nkind = "uniform"\nlow = 1\nhigh = 0\n')
    planted = tmp / "planted"
    planted.mkdir()
    good = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save({**good, "config": {"x": _Planted(str(tmp / "marker"))}}, planted / "checkpoint.pt")
    t = ["train", "1x2-uniform", "--out", str(tmp / "new")]
    return [
        ("steps=-5", [*t, "--method", "rochetnet", "--set", "steps=-5"]),
        ("--steps 0", [*t, "--method", "rochetnet", "--steps", "0"]),
        (
            "--steps 3 --set steps=2.5",
            [*t, "--method", "rochetnet", "--steps", "3", "--set", "steps=2.5"],
        ),
        ("menu_size=0", [*t, "--method", "rochetnet", "--set", "menu_size=0"]),
        ("batch_size=0", [*t, "--method", "rochetnet", "--set", "batch_size=0"]),
        ("lr=-1", [*t, "--method", "rochetnet", "--set", "lr=-1"]),
        ("lr=nan", [*t, "--method", "rochetnet", "--set", "lr=nan"]),
        ("temperature=0", [*t, "--method", "rochetnet", "--set", "temperature=0"]),
        ("unknown option", [*t, "--method", "regretnet", "--set", "temperature=5"]),
        ("chunk_size=-1", [*t, "--method", "rochetnet", "--set", "chunk_size=-1"]),
        ("--eval-samples 0", [*t, "--method", "grand-bundle", "--eval-samples", "0"]),
        ("--eval-samples -1", [*t, "--method", "grand-bundle", "--eval-samples", "-1"]),
        ("evaluate --samples 0", ["evaluate", str(run), "--samples", "0"]),
        ("evaluate --setting of another shape", ["evaluate", str(run), "--setting", "2x2-uniform"]),
        (
            "evaluate --setting of another kind",
            ["evaluate", str(run), "--setting", "seq-sales-3x2"],
        ),
        ("evaluate --regret-profiles 0", ["evaluate", str(run), "--regret-profiles", "0"]),
        ("evaluate a missing run", ["evaluate", str(tmp / "nope")]),
        ("evaluate a planted checkpoint", ["evaluate", str(planted)]),
        ("bidders = 1e9 in a TOML file", ["train", str(huge), "--method", "grand-bundle"]),
        ("low > high in a TOML file", ["baselines", str(bad)]),
        ("baselines --samples 0", ["baselines", "1x2-uniform", "--samples", "0"]),
        ("baselines on a dynamic setting", ["baselines", "seq-sales-3x2"]),
        (
            "a static method on a dynamic setting",
            ["train", "seq-sales-3x2", "--method", "rochetnet", "--out", str(tmp / "d")],
        ),
        ("describe --samples 0", ["describe", str(run), "--samples", "0"]),
        ("methods no-such", ["methods", "no-such"]),
        ("AUTOMECH_DEVICE=tpu", ["methods", "lp"]),
    ]


def main() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "automech",
                "train",
                "1x2-uniform",
                "--method",
                "grand-bundle",
                "--out",
                str(tmp / "gb"),
                "--eval-samples",
                "1000",
                "--regret-profiles",
                "10",
            ],
            check=True,
            capture_output=True,
            env=env,
        )
        for name, args in cases(tmp):
            extra = {"AUTOMECH_DEVICE": "tpu"} if name.startswith("AUTOMECH_DEVICE") else {}
            done = subprocess.run(
                [sys.executable, "-m", "automech", *args],
                capture_output=True,
                text=True,
                env={**env, **extra},
            )
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            out.append(
                {
                    "input": name,
                    "exit_code": done.returncode,
                    "message": lines[0] if len(lines) == 1 else lines,
                    "traceback": "Traceback" in done.stderr,
                }
            )
        out.append(
            {
                "input": "planted checkpoint ran code",
                "exit_code": None,
                "message": (tmp / "marker").exists(),
            }
        )
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

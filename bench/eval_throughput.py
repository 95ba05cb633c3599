"""Throughput of the shared evaluation protocol, :func:`automech.evaluate`.

For a few settings and classical mechanisms, times

* ``evaluate(..., search=None)``: revenue, welfare, IR and feasibility only, reported as
  test profiles per second;
* ``evaluate(..., search=RegretSearch(profiles=P))``: the same plus the default misreport
  search on the first P profiles, reported as regret profiles per second (the search
  time is the difference of the two timings) and misreports tried per second.

Each timing is the best (minimum) of ``--repeats`` runs after one warm-up run: the
minimum is the least disturbed by other processes on a shared machine.  By default every
case runs with one torch thread and with torch's default thread count.  Prints JSON and
writes it to ``bench/results/eval_throughput.json``.

    python bench/eval_throughput.py                       # the defaults, 1-2 minutes
    python bench/eval_throughput.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import automech
from automech import RegretSearch, evaluate, get_setting
from automech.device import default_device
from automech.evaluation.regret import _candidates
from automech.methods import mechanism_class

CASES = [
    ("2x2-uniform", "vcg"),
    ("2x2-uniform", "separate-myerson"),
    ("2x2-uniform", "grand-bundle"),
    ("3x10-uniform", "vcg"),
    ("3x10-uniform", "separate-myerson"),
    ("2x2-unit-uniform", "vcg"),
]

RESULTS = Path(__file__).resolve().parent / "results" / "eval_throughput.json"


def timed(fn, repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls after one warm-up call, and the last result."""
    fn()
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def candidates_per_bidder(setting, search: RegretSearch) -> int:
    """Misreports the search tries per (profile, bidder) before any gradient ascent."""
    values = torch.as_tensor(setting.sample(1, 0))
    return int(_candidates(values, 0, setting, search, torch.Generator().manual_seed(0)).shape[1])


def bench_case(
    setting_name: str, mech_name: str, samples: int, regret_profiles: int, repeats: int
) -> dict:
    setting = get_setting(setting_name)
    start = time.perf_counter()
    mechanism = mechanism_class(mech_name)(setting)
    build = time.perf_counter() - start
    search = RegretSearch(profiles=regret_profiles)
    t_plain, plain = timed(lambda: evaluate(mechanism, samples=samples, search=None), repeats)
    t_search, with_search = timed(
        lambda: evaluate(mechanism, samples=samples, search=search), repeats
    )
    t_regret = max(t_search - t_plain, 1e-9)
    cands = candidates_per_bidder(setting, search)
    return {
        "setting": setting_name,
        "mechanism": mech_name,
        "build_seconds": round(build, 4),
        "samples": samples,
        "regret_profiles": regret_profiles,
        "misreports_per_profile_and_bidder": cands,
        "seconds_no_search": round(t_plain, 4),
        "seconds_with_search": round(t_search, 4),
        "profiles_per_s_no_search": round(samples / t_plain, 1),
        "profiles_per_s_with_search": round(samples / t_search, 1),
        "regret_profiles_per_s": round(regret_profiles / t_regret, 1),
        "misreports_per_s": round(regret_profiles * setting.num_bidders * cands / t_regret, 1),
        "revenue": round(plain.revenue, 6),
        "revenue_se": round(plain.revenue_se, 6),
        "regret_max": with_search.regret_max,
    }


def machine_info() -> dict:
    info = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "automech": automech.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_default_threads": torch.get_num_threads(),
        "device": str(default_device()),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples", type=int, default=20_000, help="test profiles per evaluation (default 20000)"
    )
    parser.add_argument(
        "--regret-profiles",
        type=int,
        default=200,
        help="profiles searched for misreports (default 200)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case")
    parser.add_argument(
        "--threads",
        default="1,default",
        help="comma-separated torch thread counts to run with, or 'default' "
        "(torch's own choice); default 1,default",
    )
    parser.add_argument(
        "--cases",
        default=None,
        help="comma-separated SETTING:MECHANISM pairs (default: the built-in list)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args(argv)

    cases = CASES if not args.cases else [tuple(c.split(":", 1)) for c in args.cases.split(",")]
    info = machine_info()
    default_threads = torch.get_num_threads()
    threads = list(
        dict.fromkeys(
            default_threads if t.strip() == "default" else int(t) for t in args.threads.split(",")
        )
    )
    start = time.perf_counter()
    results = []
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        for setting_name, mech_name in cases:
            row = bench_case(
                setting_name, mech_name, args.samples, args.regret_profiles, args.repeats
            )
            row["torch_threads"] = n_threads
            results.append(row)
            print(
                f"[{n_threads} thread(s)] {setting_name:17} {mech_name:17} "
                f"{row['profiles_per_s_no_search']:>10.0f} profiles/s, "
                f"{row['regret_profiles_per_s']:>8.1f} regret profiles/s",
                file=sys.stderr,
            )
    torch.set_num_threads(default_threads)
    if hasattr(os, "getloadavg"):
        info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {
        "benchmark": "eval_throughput",
        "machine": info,
        "parameters": {
            "samples": args.samples,
            "regret_profiles": args.regret_profiles,
            "repeats": args.repeats,
            "threads": threads,
            "search": RegretSearch(profiles=args.regret_profiles).to_dict(),
        },
        "total_seconds": round(time.perf_counter() - start, 1),
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()

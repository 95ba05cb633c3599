"""Load test of ``automech serve``: single-profile auctions per second and latency.

For three learned mechanisms built with random parameters and saved with
:func:`automech.save` (no training; the service's start-up check evaluates them):

* ``lottery-ama``: a lottery AMA with 256 allocations on 2x2-uniform,
* ``menu``: a RochetNet menu of 256 lotteries on 1x2-uniform,
* ``regretnet``: a RegretNet network (2 x 100 hidden units) on 2x2-uniform,

the script starts ``automech serve RUN`` on 127.0.0.1 in a subprocess (one process, one
torch thread), and sends single-profile ``POST /auction`` requests drawn from the prior
over keep-alive connections, at most ``--requests`` or ``--seconds``, whichever comes
first, after a warm-up.  It reports, per mechanism:

* ``sequential``: one connection, one request at a time: throughput, p50/p99/max latency;
* ``concurrent``: ``--connections`` connections (client threads) at once: throughput and
  latency under a queue;
* ``server_cpu_ms_per_auction``: CPU time of the server process per auction (from
  ``/proc``), and ``one_core_capacity`` = 1000 / that: the auctions per second one core
  serves, whatever share of the machine the client and other processes took;
* the same for the menu with ``--fsync`` (every commit fsynced, survives power loss).

Then the kill check: the menu server under sequential load is killed with ``kill -9``
mid-load; every auction the client saw acknowledged must be in the audit log, and every
entry must verify (:func:`automech.audit.verify`).

Prints JSON and writes ``bench/results/serve_load.json`` (``--out``).  About 1-2 minutes.

    python bench/serve_load.py
    python bench/serve_load.py --requests 500 --seconds 3     # quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

import automech
from automech import get_setting, save
from automech.audit import AUDIT_DB, checkpoint_sha256, open_log, verify
from automech.experiment import load
from automech.mechanisms.learned.affine_maximizer import LotteryAMA
from automech.mechanisms.learned.menu import MenuMechanism
from automech.mechanisms.learned.regretnet import RegretNetMechanism

RESULTS = Path(__file__).resolve().parent / "results" / "serve_load.json"
CLOCK = os.sysconf("SC_CLK_TCK")


def build(name: str):
    if name == "lottery-ama":
        return LotteryAMA(get_setting("2x2-uniform"), allocations=256, init_seed=0)
    if name == "menu":
        return MenuMechanism(get_setting("1x2-uniform"), menu_size=256, init_seed=0)
    return RegretNetMechanism(get_setting("2x2-uniform"), hidden=100, layers=2, init_seed=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``automech serve RUN`` on 127.0.0.1 in a subprocess; always killed on exit."""

    def __init__(self, run: Path, *extra: str) -> None:
        self.port = free_port()
        env = dict(os.environ, AUTOMECH_THREADS="1", OMP_NUM_THREADS="1", AUTOMECH_DEVICE="cpu")
        cmd = [sys.executable, "-c", "from automech.cli import main; main()", "serve", str(run)]
        cmd += ["--port", str(self.port), *extra]
        self.proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not start in 120 s")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK  # utime + stime

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def __exit__(self, *exc: object) -> None:
        self.kill()


def bodies(setting, count: int, seed: int = 0) -> list[bytes]:
    profiles = setting.sample(count, seed)
    return [json.dumps({"bids": p.tolist()}).encode() for p in profiles]


def drive(port: int, payloads: list[bytes], seconds: float, acked: list | None = None):
    """Send ``payloads`` in order over one keep-alive connection for at most ``seconds``;
    latencies (s); ``acked`` collects the auction ids answered 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    lat = []
    stop = time.perf_counter() + seconds
    for body in payloads:
        start = time.perf_counter()
        if start > stop:
            break
        try:
            conn.request("POST", "/auction", body, headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            break  # the server is gone (the kill check)
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
        lat.append(time.perf_counter() - start)
        if acked is not None:
            acked.append(json.loads(data)["auction_id"])
    conn.close()
    return lat


def summary(lat: list[float], wall: float) -> dict:
    arr = np.sort(np.asarray(lat)) * 1e3
    return {
        "requests": len(arr),
        "seconds": round(wall, 3),
        "auctions_per_s": round(len(arr) / wall, 1),
        "p50_ms": round(float(np.percentile(arr, 50)), 3),
        "p99_ms": round(float(np.percentile(arr, 99)), 3),
        "max_ms": round(float(arr.max()), 3),
    }


def load_phase(server: Server, payloads: list[bytes], seconds: float, connections: int):
    before, start = server.cpu_seconds(), time.perf_counter()
    if connections == 1:
        lat = drive(server.port, payloads, seconds)
    else:
        parts: list[list[float]] = [[] for _ in range(connections)]
        share = len(payloads) // connections
        threads = [
            threading.Thread(
                target=lambda k=k: parts[k].extend(
                    drive(server.port, payloads[k * share : (k + 1) * share], seconds)
                )
            )
            for k in range(connections)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lat = [x for part in parts for x in part]
    wall = time.perf_counter() - start
    out = summary(lat, wall)
    cpu = server.cpu_seconds() - before
    out["server_cpu_ms_per_auction"] = round(cpu / max(len(lat), 1) * 1e3, 3)
    out["one_core_capacity"] = round(len(lat) / cpu, 1) if cpu > 0 else None
    return out


def bench_one(name: str, root: Path, args, fsync: bool = False) -> dict:
    mech = build(name)
    run = root / (name + ("-fsync" if fsync else ""))
    save(mech, run)
    payloads = bodies(mech.setting, args.requests + args.warmup)
    started = time.perf_counter()
    with Server(run, *(["--fsync"] if fsync else [])) as server:
        startup = time.perf_counter() - started
        drive(server.port, payloads[: args.warmup], 30)
        rest = payloads[args.warmup :]
        out = {
            "setting": mech.setting.name,
            "mechanism": mech.name,
            "config": mech.config(),
            "startup_s": round(startup, 2),
            "sequential": load_phase(server, rest, args.seconds, 1),
        }
        if not fsync and args.connections > 1:
            out["concurrent"] = load_phase(server, rest, args.seconds, args.connections)
            out["concurrent"]["connections"] = args.connections
    with open_log(run / AUDIT_DB) as log:
        out["logged"] = log.count()
    print(f"{run.name}: {json.dumps(out['sequential'])}", file=sys.stderr)
    return out


def kill_check(root: Path, args) -> dict:
    """kill -9 the server mid-load: every acknowledged auction must be in the log."""
    mech = build("menu")
    run = root / "kill"
    save(mech, run)
    payloads = bodies(mech.setting, 100_000, seed=1)
    acked: list[str] = []
    with Server(run) as server:
        client = threading.Thread(target=drive, args=(server.port, payloads, 30, acked))
        client.start()
        time.sleep(args.kill_after)
        server.kill()
        client.join(timeout=30)
    with open_log(run / AUDIT_DB) as log:
        entries = list(log.entries())
    logged = {e.id for e in entries}
    missing = [a for a in acked if a not in logged]
    result = verify(entries, load(run), checkpoint_sha256(run))  # type: ignore[arg-type]
    out = {
        "killed_after_s": args.kill_after,
        "acknowledged": len(acked),
        "logged": len(entries),
        "missing": len(missing),
        "verified": result.ok,
        "problems": result.problems[:3],
    }
    print(f"kill -9: {json.dumps(out)}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="most requests per phase")
    parser.add_argument("--seconds", type=float, default=5.0, help="most seconds per phase")
    parser.add_argument("--warmup", type=int, default=200, help="requests before timing")
    parser.add_argument("--connections", type=int, default=4, help="of the concurrent phase")
    parser.add_argument("--kill-after", type=float, default=2.0, help="seconds of load")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report: dict = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "automech": automech.__version__,
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        },
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        root = Path(tmp)
        report["results"] = {
            name: bench_one(name, root, args) for name in ("lottery-ama", "menu", "regretnet")
        }
        report["results"]["menu-fsync"] = bench_one("menu", root, args, fsync=True)
        report["kill9"] = kill_check(root, args)
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

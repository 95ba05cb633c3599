"""Run a sweep: record every job, skip the finished ones, run (or resume) the rest."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automech.sweeps.backends import check_backend, make_backend
from automech.sweeps.spec import Job, Sweep
from automech.sweeps.store import Store, git_revision


def _payload(job: Job, run_dir: Path) -> dict[str, Any]:
    return {
        "setting": job.setting_spec,
        "method": job.method,
        "options": job.options,
        "seed": job.seed,
        "run_dir": str(run_dir),
        "eval_samples": job.eval_samples,
        "regret_profiles": job.regret_profiles,
    }


def run_sweep(
    sweep: Sweep,
    store: Store,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    runs_root: str | Path | None = None,
    log: Callable[[str], None] = print,
    retry_failed: bool = True,
) -> dict[str, Any]:
    """Run every job of ``sweep`` not yet done; each result is committed as it arrives.

    Jobs already ``done`` are not rerun; ``running`` rows (left by a killed sweep),
    ``pending`` and (with ``retry_failed``) ``failed`` ones are (re)run in the same run
    directory, so methods with checkpoints resume.  Returns counts of this invocation:
    ``{"ran", "done", "failed", "skipped", "already_done", "seconds", "backend"}``.
    """
    check_backend(backend, address, workers)
    with store.lock(sweep.name):
        return _run(sweep, store, backend, workers, address, runs_root, log, retry_failed)


def _run(
    sweep: Sweep,
    store: Store,
    backend: str,
    workers: int | None,
    address: str | None,
    runs_root: str | Path | None,
    log: Callable[[str], None],
    retry_failed: bool,
) -> dict[str, Any]:
    start = time.perf_counter()
    root = Path(runs_root or sweep.runs_root)
    rows = store.sync(sweep.jobs)
    todo: list[tuple[int, Job]] = []
    already = interrupted = 0
    for job in sweep.jobs:
        row = rows[job.key]
        if job.skip:
            continue
        if row["status"] == "done":
            already += 1
            continue
        if row["status"] == "failed" and not retry_failed:
            continue
        if row["status"] == "skipped" and row["attempts"]:  # found not applicable on a run
            continue
        if row["status"] == "running":
            interrupted += 1
        todo.append((row["id"], job))
    summary: dict[str, Any] = {
        "ran": 0,
        "done": 0,
        "failed": 0,
        "skipped": len(sweep.skipped),
        "already_done": already,
        "backend": backend,
        "seconds": 0.0,
    }
    if already:
        log(f"{already} job(s) already done: not rerun")
    if interrupted:
        log(f"{interrupted} interrupted job(s): resuming from their run directories")
    if not todo:
        log("nothing to run")
        summary["seconds"] = time.perf_counter() - start
        return summary

    runner = make_backend(backend, len(todo), workers=workers, address=address)
    summary["backend"] = runner.describe
    log(f"running {len(todo)} job(s) on {runner.describe}")
    rev = git_revision()
    queue = list(reversed(todo))
    flight: dict[Any, tuple[int, Job]] = {}
    finished = 0
    cancel = False
    try:
        while queue or flight:
            while queue and len(flight) < runner.slots:
                job_id, job = queue.pop()
                run_dir = job.run_dir(root)
                store.mark_running(job_id, run_dir, rev)
                flight[runner.submit(_payload(job, run_dir))] = (job_id, job)
            for handle in runner.wait(list(flight)):
                job_id, job = flight.pop(handle)
                result = runner.result(handle)
                store.record(job_id, result)
                finished += 1
                summary["ran"] += 1
                status = result.get("status", "failed")
                summary[status] = summary.get(status, 0) + 1
                log(_line(finished, len(todo), job, result))
    except BaseException:
        cancel = True
        store.mark_pending(
            [job_id for job_id, _ in flight.values()], "interrupted: rerun the sweep to resume"
        )
        raise
    finally:
        runner.close(cancel=cancel)
        summary["seconds"] = time.perf_counter() - start
    return summary


def _line(i: int, n: int, job: Job, result: dict[str, Any]) -> str:
    status = result.get("status", "failed")
    secs = result.get("seconds")
    took = f" ({secs:.1f} s)" if secs is not None else ""
    if status == "done":
        m = result.get("metrics") or {}
        regret = m.get("regret_mean")
        extra = f", regret {regret:.5f}" if regret is not None else ""
        what = f"{m.get('objective', 'revenue')} {m.get('objective_value', float('nan')):.4f}"
        return f"[{i}/{n}] done    {job.describe()}: {what}{extra}{took}"
    if status == "skipped":
        return f"[{i}/{n}] skipped {job.describe()}: {result.get('note')}"
    error = (result.get("error") or "").splitlines()
    return f"[{i}/{n}] FAILED  {job.describe()}: {error[0] if error else 'unknown error'}{took}"

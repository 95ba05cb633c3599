"""Where jobs run: this process, a local process pool, or Ray tasks.

Every backend runs the same top-level function :func:`run_job` on the same plain-data
payload (a dict of JSON values), and hands back the dict it returns; only the driver writes
the results database.  A backend keeps at most :attr:`slots` jobs in flight, so a job is
marked ``running`` exactly while a worker holds it.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import multiprocessing
import os
import select
import socket
import threading
import time
import traceback
from typing import Any

from automech.device import configure_threads

#: ``--backend`` choices.
BACKENDS = ("local", "ray")


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def run_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one job end to end with :func:`automech.experiment.train`; never raises.

    ``payload``: setting (dict form, static or dynamic), method, options, seed, run_dir,
    eval_samples, regret_profiles, threads (torch threads, or None to keep the default).
    Returns ``{"status": "done" | "failed" | "skipped", "metrics", "error", "note",
    "seconds", "host"}``.  Rerunning with the same ``run_dir`` resumes the run when the
    method supports checkpoints.
    """
    start = time.perf_counter()
    out: dict[str, Any] = {
        "status": "failed",
        "metrics": None,
        "error": None,
        "note": None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    try:
        from automech.errors import NotApplicableError
        from automech.evaluation import RegretSearch
        from automech.experiment import train
        from automech.problems import setting_from_dict
        from automech.runs import METRICS

        if payload.get("threads"):
            configure_threads(int(payload["threads"]))
        setting = setting_from_dict(payload["setting"])
        profiles = int(payload.get("regret_profiles", 0))
        try:
            _, run = train(
                setting,
                payload["method"],
                payload.get("options") or {},
                seed=int(payload["seed"]),
                out=payload["run_dir"],
                eval_samples=int(payload["eval_samples"]),
                search=RegretSearch(profiles=profiles) if profiles else None,
                progress=False,
            )
        except NotApplicableError as err:
            out.update(status="skipped", note=str(err))
        else:
            out.update(status="done", metrics=run.read_json(METRICS))
    except Exception as err:  # noqa: BLE001 - a failed job is a result, not a crash
        tail = "".join(traceback.format_exception(err)[-6:])
        out.update(status="failed", error=f"{type(err).__name__}: {err}\n{tail}")
    out["seconds"] = time.perf_counter() - start
    return out


def failure(error: str) -> dict[str, Any]:
    return {
        "status": "failed",
        "metrics": None,
        "error": error,
        "note": None,
        "seconds": None,
        "host": socket.gethostname(),
    }


# ----------------------------------------------------------------------- in this process


class _Done:
    """A finished job's result (hashable, like the other backends' handles)."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result


class InlineBackend:
    """Jobs one after another in this process (``--workers 1``)."""

    name = "inline"

    def __init__(self, threads: int | None = None) -> None:
        self.slots = 1
        self.threads = threads
        self.describe = "this process, one job at a time"

    def submit(self, payload: dict[str, Any]) -> _Done:
        import torch

        before = torch.get_num_threads()
        try:
            return _Done(run_job({**payload, "threads": self.threads}))
        finally:
            torch.set_num_threads(before)

    def wait(self, handles: list) -> list:
        return list(handles)

    def result(self, handle: _Done) -> dict[str, Any]:
        return handle.result

    def close(self, cancel: bool = False) -> None:
        pass


# ----------------------------------------------------------------------- process pool


def _init_worker(threads: int, driver: int) -> None:
    """Pool worker start: exit when the driver process ``driver`` dies (a killed sweep
    leaves no worker behind), use ``threads`` torch threads."""
    threading.Thread(
        target=_watch, args=(driver,), daemon=True, name="automech-driver-watch"
    ).start()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    configure_threads(threads)


def _watch(driver: int) -> None:
    """Block until process ``driver`` ends, then end this process at once."""
    try:
        fd = os.pidfd_open(driver)  # Linux >= 5.3: readable once the process has ended
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd: poll
        while True:
            time.sleep(1.0)
            try:
                os.kill(driver, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass
    select.select([fd], [], [])
    os._exit(1)


def _context():
    """Workers are forked from a fresh server process that has imported automech (and
    torch) once but never run an OpenMP region: forking this process instead could hang
    torch in the workers, and spawning pays the imports (seconds) in every worker."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["automech.sweeps.backends", "automech.experiment"])
        return ctx
    return multiprocessing.get_context("spawn")


class LocalBackend:
    """A pool of ``workers`` processes, each pinned to ``threads`` torch threads."""

    name = "local"

    def __init__(self, workers: int, threads: int) -> None:
        self.slots = workers
        self.threads = threads
        self.describe = f"local pool: {workers} worker(s) x {threads} thread(s)"
        self._pool: cf.ProcessPoolExecutor | None = None

    def _executor(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.slots,
                mp_context=_context(),
                initializer=_init_worker,
                initargs=(self.threads, os.getpid()),
            )
        return self._pool

    def submit(self, payload: dict[str, Any]) -> cf.Future:
        try:
            return self._executor().submit(run_job, {**payload, "threads": self.threads})
        except cf.BrokenExecutor:  # a worker died (killed, out of memory): start afresh
            self._pool = None
            return self._executor().submit(run_job, {**payload, "threads": self.threads})

    def wait(self, handles: list[cf.Future]) -> list[cf.Future]:
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def result(self, handle: cf.Future) -> dict[str, Any]:
        try:
            return handle.result()
        except cf.BrokenExecutor as err:
            self._pool = None
            return failure(f"worker process died: {err}")
        except Exception as err:  # noqa: BLE001 - e.g. an unpicklable result
            return failure(f"{type(err).__name__}: {err}")

    def close(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
            self._pool = None


# ----------------------------------------------------------------------- Ray


class RayBackend:
    """Ray tasks on a local Ray instance (no ``address``) or an existing cluster.

    Every node needs automech installed (same version), and ``runs_root`` should be on a
    file system the nodes share if the run directories are to be kept in one place; the
    results database only ever lives with the driver.
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, workers: int | None = None, jobs: int = 1
    ) -> None:
        try:
            import ray
        except ImportError:
            from automech.errors import AutomechError

            raise AutomechError("the ray backend needs Ray: pip install 'automech[ray]'") from None
        self.ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            # ray.init annotates logging_level as int, but takes level names (its own
            # default is the string "info"): hence the ignores
            if address:
                ray.init(
                    address=address,
                    logging_level="WARNING",  # type: ignore[arg-type]
                    log_to_driver=False,
                )
            else:
                ray.init(
                    num_cpus=workers or cpu_count(),
                    include_dashboard=False,
                    logging_level="WARNING",  # type: ignore[arg-type]
                    log_to_driver=False,
                )
        cpus = int(ray.cluster_resources().get("CPU", 1))
        node_cpus = max(
            [int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
            or [1]
        )
        self.slots = max(1, min(workers or cpus, cpus, jobs))
        self.threads = max(1, min(node_cpus, cpus // self.slots))
        self._task = ray.remote(run_job)
        where = address or "local instance"
        self.describe = (
            f"ray ({where}, {cpus} CPUs): {self.slots} task(s) x {self.threads} thread(s)"
        )

    def submit(self, payload: dict[str, Any]):
        return self._task.options(num_cpus=self.threads, max_retries=0).remote(
            {**payload, "threads": self.threads}
        )

    def wait(self, handles: list) -> list:
        done, _ = self.ray.wait(list(handles), num_returns=1)
        return done

    def result(self, handle) -> dict[str, Any]:
        try:
            return self.ray.get(handle)
        except Exception as err:  # noqa: BLE001 - worker crash, node lost, ...
            return failure(f"ray task failed: {type(err).__name__}: {err}")

    def close(self, cancel: bool = False) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()


def check_backend(name: str, address: str | None = None, workers: int | None = None) -> None:
    """Refuse an unknown backend, an address without Ray, or a worker count below one,
    before anything runs."""
    from automech.errors import AutomechError

    if workers is not None and workers < 1:
        raise AutomechError(f"--workers must be at least 1, got {workers}")
    if name not in BACKENDS:
        raise AutomechError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    if address and name != "ray":
        raise AutomechError("--address applies to --backend ray only")
    if name == "ray" and importlib.util.find_spec("ray") is None:
        raise AutomechError("the ray backend needs Ray: pip install 'automech[ray]'")


def make_backend(name: str, jobs: int, workers: int | None = None, address: str | None = None):
    """The backend ``name`` sized for ``jobs`` jobs.

    local: ``workers`` (default: the cores) processes, at most one per job, each with
    ``cores // workers`` torch threads; one worker runs the jobs in this process.
    """
    from automech.errors import AutomechError

    if workers is not None and workers < 1:
        raise AutomechError(f"--workers must be at least 1, got {workers}")
    if name == "local":
        if address:
            raise AutomechError("--address applies to --backend ray only")
        cores = cpu_count()
        n = max(1, min(workers or cores, max(jobs, 1)))
        threads = max(1, cores // n)
        if n == 1:
            return InlineBackend(threads)
        return LocalBackend(n, threads)
    if name == "ray":
        return RayBackend(address, workers, max(jobs, 1))
    raise AutomechError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")

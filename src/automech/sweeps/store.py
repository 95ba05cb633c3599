"""The results database: one SQLite file, one row per job.

Only the process driving a sweep writes, and it commits each job's result as soon as the
job finishes (WAL journal, ``synchronous=FULL``), so killing the sweep at any moment loses
no finished result.  Readers (``automech results``) may read while a sweep runs.

A job's status is one of ``pending``, ``running``, ``done``, ``failed``, ``skipped``; a row
left ``running`` by a killed sweep is rerun (resuming from its run directory) next time.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from automech.errors import AutomechError
from automech.sweeps.spec import Job

DEFAULT_DB = "automech-results.db"

STATUSES = ("pending", "running", "done", "failed", "skipped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id         INTEGER PRIMARY KEY,
    sweep      TEXT NOT NULL,
    setting    TEXT NOT NULL,
    method     TEXT NOT NULL,
    seed       INTEGER NOT NULL,
    options    TEXT NOT NULL,      -- JSON: the options given to the method
    evaluation TEXT NOT NULL,      -- JSON: eval_samples, regret_profiles
    variant    TEXT NOT NULL DEFAULT '',
    setting_spec TEXT,             -- JSON: the setting's dict form
    status     TEXT NOT NULL DEFAULT 'pending',
    attempts   INTEGER NOT NULL DEFAULT 0,
    git_rev    TEXT,
    metrics    TEXT,               -- JSON: the run's metrics.json
    error      TEXT,
    note       TEXT,
    run_dir    TEXT,
    host       TEXT,
    seconds    REAL,
    created    REAL,
    started    REAL,
    finished   REAL,
    UNIQUE (sweep, setting, method, seed, options, evaluation)
);
CREATE INDEX IF NOT EXISTS jobs_sweep ON jobs (sweep, status);
"""


def git_revision(where: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the automech source (``-dirty`` when it has local edits)."""
    if where is None:
        where = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Store:
    """The jobs table of one SQLite file (created on first use)."""

    def __init__(self, path: str | Path = DEFAULT_DB, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise AutomechError(
                f"no results database at {str(self.path)!r} "
                "(run `automech sweep` first, or pass --db)"
            )
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA busy_timeout = 60000")
            if create:
                self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            if create:
                self.db.executescript(_SCHEMA)
            else:
                self.db.execute("SELECT 1 FROM jobs LIMIT 1")
        except sqlite3.DatabaseError as err:
            raise AutomechError(
                f"{str(self.path)!r} is not an automech results database: {err}"
            ) from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def lock(self, sweep: str) -> Iterator[None]:
        """Hold the sweep's lock: a second driver of the same sweep on the same database
        is refused (it would take this one's running jobs for interrupted ones).  The OS
        releases the lock when the process ends, however it ends."""
        path = self.path.parent / f".{self.path.name}.{sweep}.lock"
        with open(path, "a+") as fh:
            try:
                import fcntl
            except ImportError:  # not POSIX: no lock
                yield
                return
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise AutomechError(
                    f"sweep {sweep!r} is already running on {str(self.path)!r} ({holder})"
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
            fh.flush()
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ writing

    def sync(self, jobs: Iterable[Job]) -> dict[tuple, sqlite3.Row]:
        """Insert the jobs not yet known (pending, or skipped with the reason); return every
        job's row by :attr:`Job.key`."""
        now = time.time()
        jobs = list(jobs)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for job in jobs:
                self.db.execute(
                    "INSERT OR IGNORE INTO jobs (sweep, setting, method, seed, options, "
                    "evaluation, variant, setting_spec, status, note, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        *job.key,
                        job.variant,
                        json.dumps(job.setting_spec),
                        "skipped" if job.skip else "pending",
                        job.skip,
                        now,
                    ),
                )
                if job.skip:  # a method that stopped (or started) applying
                    self.db.execute(
                        "UPDATE jobs SET status = 'skipped', note = ? WHERE "
                        + _KEY
                        + " AND status != 'done'",
                        (job.skip, *job.key),
                    )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return {job.key: self.row(job) for job in jobs}

    def row(self, job: Job) -> sqlite3.Row:
        return self.db.execute("SELECT * FROM jobs WHERE " + _KEY, job.key).fetchone()

    def mark_running(self, job_id: int, run_dir: str | Path, git_rev: str) -> None:
        self.db.execute(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, "
            "run_dir = ?, git_rev = ?, started = ?, error = NULL WHERE id = ?",
            (str(run_dir), git_rev, time.time(), job_id),
        )

    def record(self, job_id: int, result: dict[str, Any]) -> None:
        """Commit a finished job's outcome (the dict :func:`run_job` returns)."""
        status = result.get("status", "failed")
        if status not in STATUSES:
            status = "failed"
        metrics = result.get("metrics")
        self.db.execute(
            "UPDATE jobs SET status = ?, metrics = ?, error = ?, note = COALESCE(?, note), "
            "seconds = ?, host = ?, finished = ? WHERE id = ?",
            (
                status,
                json.dumps(metrics) if metrics is not None else None,
                result.get("error"),
                result.get("note"),
                result.get("seconds"),
                result.get("host", socket.gethostname()),
                time.time(),
                job_id,
            ),
        )

    def mark_pending(self, job_ids: Iterable[int], note: str) -> None:
        for job_id in job_ids:
            self.db.execute(
                "UPDATE jobs SET status = 'pending', note = ? WHERE id = ? AND status = 'running'",
                (note, job_id),
            )

    # ------------------------------------------------------------------ reading

    def sweeps(self) -> list[str]:
        return [
            r[0] for r in self.db.execute("SELECT sweep FROM jobs GROUP BY sweep ORDER BY MIN(id)")
        ]

    def rows(self, sweep: str | None = None) -> list[dict[str, Any]]:
        """Every job (of ``sweep``), JSON columns decoded."""
        if sweep is None:
            cur = self.db.execute("SELECT * FROM jobs ORDER BY id")
        else:
            cur = self.db.execute("SELECT * FROM jobs WHERE sweep = ? ORDER BY id", (sweep,))
        out = []
        for r in cur:
            d = dict(r)
            for k in ("options", "evaluation", "metrics", "setting_spec"):
                if d.get(k) is not None:
                    d[k] = json.loads(d[k])
            out.append(d)
        return out

    def counts(self, sweep: str) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for status, n in self.db.execute(
            "SELECT status, COUNT(*) FROM jobs WHERE sweep = ? GROUP BY status", (sweep,)
        ):
            out[status] = n
        return out


_KEY = "sweep = ? AND setting = ? AND method = ? AND seed = ? AND options = ? AND evaluation = ?"

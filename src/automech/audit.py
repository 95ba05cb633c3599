"""The audit log of a served mechanism: one SQLite row per auction, and its verification.

Every auction ``automech serve`` runs is written here *before* the answer is sent: its
id, UTC time, the bids, the mechanism's fractional allocation and (expected) payments,
the realised allocation drawn from that lottery, the seed of the draw, and the sha256
of the checkpoint file that computed it.  :func:`verify` recomputes every outcome from
the bids with the saved mechanism and every realised allocation from its seed, so an
entry that was altered, or computed by another mechanism, is found.

Durability: the database is in WAL mode and every request's rows are one committed
transaction before the response.  With ``synchronous=NORMAL`` (the default, ``fsync=
False``) a commit is written to the WAL file by the process without an fsync: it
survives the server being killed (``kill -9``; the OS keeps the file), not a power loss
or an OS crash, which can drop the last transactions.  ``fsync=True`` sets
``synchronous=FULL``: every commit is fsynced, survives power loss, and costs one disk
flush per request.

Realisation (:func:`realise`): the allocation is a lottery, so a run of the auction draws
a deterministic allocation with ``numpy.random.default_rng(seed)`` whose probabilities
are exactly the fractional allocation:

* additive bidders, unit supply: per item, one uniform picks the bidder (or nobody)
  with probabilities the item's column (``sum_i x_ij <= 1``);
* unlimited supply: every (bidder, item) pair independently, ``P(win) = x_ij``; a
  unit-demand bidder gets one item (or none) with probabilities its row;
* unit-demand bidders and unit supply (several of each): a Birkhoff-von Neumann
  decomposition of the doubly substochastic matrix (padded to doubly stochastic) into
  matchings, one of which a single uniform picks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from automech.errors import AutomechError
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting
from automech.runs import CHECKPOINT

#: The log's file name inside a run directory (the default of ``automech serve``).
AUDIT_DB = "audit.db"

#: Largest seed (SQLite integers are signed 64-bit).
MAX_SEED = 2**63 - 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS auctions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    time TEXT NOT NULL,
    mechanism_sha256 TEXT NOT NULL,
    bids TEXT NOT NULL,
    allocation TEXT NOT NULL,
    payments TEXT NOT NULL,
    realised TEXT NOT NULL,
    seed INTEGER NOT NULL
)
"""
_COLUMNS = (
    "seq",
    "id",
    "time",
    "mechanism_sha256",
    "bids",
    "allocation",
    "payments",
    "realised",
    "seed",
)


_INSERT = (
    "INSERT INTO auctions (id, time, mechanism_sha256, bids, allocation, payments, "
    "realised, seed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class AuditError(AutomechError):
    """An audit log that cannot be opened or read, or whose entries do not verify."""


def checkpoint_sha256(run_dir: str | Path) -> str:
    """The sha256 (hex) of ``run_dir/checkpoint.pt``: the identity of the mechanism."""
    path = Path(run_dir) / CHECKPOINT
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise AuditError(f"cannot read {str(path)!r}: {err.strerror or err}") from None


def compact(value: Any, digits: int = 3) -> str:
    """Nested lists of numbers as short text: ``[[0.7,0.2],[0.8,0.9]]``."""
    if isinstance(value, list):
        return "[" + ",".join(compact(v, digits) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


# ------------------------------------------------------------------------ realisation


def realise(allocation: np.ndarray, setting: Setting, seed: int) -> np.ndarray:
    """A deterministic allocation (n, m) of 0/1 drawn from the lottery ``allocation``
    (n, m) with ``rng = numpy.random.default_rng(seed)``: bidder i gets item j with
    probability ``allocation[i, j]`` (clipped to [0, 1]), and the draw respects the
    setting's supply and demand:

    * additive, unit supply: ``u = rng.random(m)``; item j goes to the first bidder i
      with ``u[j] < x[0, j] + ... + x[i, j]``, to nobody if none (a column summing to
      more than 1, by float error, is divided by its sum first);
    * unit-demand, unlimited supply, or one bidder: the same along bidder i's row with
      ``u = rng.random(n)``;
    * additive, unlimited supply: ``rng.random((n, m)) < x``;
    * unit-demand, unit supply, several bidders and items: one ``rng.random()`` picks a
      matching of a Birkhoff-von Neumann decomposition (module docstring).
    """
    x = np.minimum(np.maximum(np.asarray(allocation, dtype=np.float64), 0.0), 1.0)
    n, m = x.shape
    rng = np.random.default_rng(seed)
    if setting.unit_demand and setting.unit_supply and n > 1 and m > 1:
        out = np.zeros((n, m), dtype=np.int64)
        pick = _birkhoff(x, rng.random())
        for i in range(n):
            if pick[i] < m:
                out[i, pick[i]] = 1
        return out
    if setting.unit_demand:  # one item or none per bidder (unit supply holds when n == 1)
        return np.asarray(_categorical(x.tolist(), rng.random((n,)).tolist()), dtype=np.int64)
    if setting.unit_supply:  # one bidder or none per item
        cols = _categorical(x.T.tolist(), rng.random((m,)).tolist())
        return np.asarray(cols, dtype=np.int64).reshape(m, n).T.copy()
    return (rng.random((n, m)) < x).astype(np.int64)


def _categorical(rows: list[list[float]], u: list[float]) -> list[list[int]]:
    """Per row r, a 1 at the first k with ``u[r] < rows[r][0] + ... + rows[r][k]``, none if
    there is no such k (rows summing to more than 1 are divided by their sums first).
    Plain Python: the profiles are small, and per-call NumPy overhead would dominate."""
    out = []
    for probs, draw in zip(rows, u, strict=True):
        total = sum(probs)
        if total > 1.0:
            probs = [p / total for p in probs]
        chosen = [0] * len(probs)
        cum = 0.0
        for k, p in enumerate(probs):
            cum += p
            if draw < cum:
                chosen[k] = 1
                break
        out.append(chosen)
    return out


def _birkhoff(x: np.ndarray, u: float) -> np.ndarray:
    """Item of each bidder (m: none) in the matching that ``u`` picks from a
    Birkhoff-von Neumann decomposition of ``x`` (rows and columns summing to <= 1)."""
    n, m = x.shape
    x = x / max(1.0, float(x.sum(axis=1).max()), float(x.sum(axis=0).max()))
    k = n + m
    # pad to doubly stochastic: [[x, diag(1 - rows)], [diag(1 - cols), x^T]]
    full = np.zeros((k, k))
    full[:n, :m] = x
    full[:n, m:] = np.diag(np.clip(1.0 - x.sum(axis=1), 0.0, 1.0))
    full[n:, :m] = np.diag(np.clip(1.0 - x.sum(axis=0), 0.0, 1.0))
    full[n:, m:] = x.T
    acc, last = 0.0, None
    for _ in range(k * k + 1):
        support = full > 1e-12
        rows, cols = linear_sum_assignment((~support).astype(np.float64))
        if not support[rows, cols].all():
            break  # only float residue is left
        weight = float(full[rows, cols].min())
        last = cols[:n].copy()
        acc += weight
        if u < acc:
            break
        full[rows, cols] -= weight
    return np.full(n, m) if last is None else last  # None: never (a perfect matching exists)


# ------------------------------------------------------------------------ the log


@dataclass
class Entry:
    """One audited auction, as stored."""

    seq: int
    id: str
    time: str
    mechanism_sha256: str
    bids: list
    allocation: list
    payments: list
    realised: list
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _COLUMNS}


class AuditLog:
    """The SQLite audit log at ``path`` (created with its table when missing).

    ``fsync``: ``synchronous=FULL`` (survives power loss) instead of ``NORMAL``
    (survives a killed process); both in WAL mode, one commit per :meth:`record`.
    """

    def __init__(self, path: str | Path, fsync: bool = False) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self.db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self.db.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise AuditError(f"cannot open audit log {str(self.path)!r}: {err}") from None
        if str(mode).lower() != "wal":
            raise AuditError(f"audit log {str(self.path)!r} cannot use WAL mode (got {mode})")

    def record(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write ``rows`` (keys: id, time, mechanism_sha256, bids, allocation, payments,
        realised, seed; arrays as lists) in one committed transaction."""
        values = [
            (
                r["id"],
                r["time"],
                r["mechanism_sha256"],
                json.dumps(r["bids"]),
                json.dumps(r["allocation"]),
                json.dumps(r["payments"]),
                json.dumps(r["realised"]),
                int(r["seed"]),
            )
            for r in rows
        ]
        if len(values) == 1:  # autocommit: one statement, its own transaction
            self.db.execute(_INSERT, values[0])
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(_INSERT, values)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM auctions").fetchone()[0])

    def mechanisms(self) -> list[str]:
        """The checkpoint hashes the entries name, each once, by first appearance."""
        rows = self.db.execute(
            "SELECT mechanism_sha256, MIN(seq) AS first FROM auctions "
            "GROUP BY mechanism_sha256 ORDER BY first"
        )
        return [str(r[0]) for r in rows]

    def last(self) -> int:
        """The sequence number of the last entry (0: none): the entries written, as
        entries are never deleted; unlike :meth:`count`, no table scan."""
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM auctions").fetchone()[0])

    def entries(self) -> Iterator[Entry]:
        try:
            cursor = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM auctions ORDER BY seq")
            for row in cursor:
                data = dict(zip(_COLUMNS, row, strict=True))
                for key in ("bids", "allocation", "payments", "realised"):
                    data[key] = json.loads(data[key])
                yield Entry(**data)
        except (sqlite3.Error, ValueError) as err:
            raise AuditError(f"cannot read audit log {str(self.path)!r}: {err}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_log(path: str | Path) -> AuditLog:
    """An existing audit log (reading it never creates one)."""
    path = Path(path)
    if not path.is_file():
        raise AuditError(f"no audit log at {str(path)!r} (`automech serve` writes one)")
    return AuditLog(path)


# ------------------------------------------------------------------------ verification


def tolerance(mechanism: Mechanism) -> float:
    """Outcomes recomputed in another batch may differ by float rounding: this much."""
    scale = float(np.max(mechanism.setting.prior.support()[1]))
    return (1e-9 if mechanism.dtype == torch.float64 else 1e-5) * max(scale, 1.0)


@dataclass
class Verification:
    """What :func:`verify` found: entries checked and one line per failed entry."""

    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(entries: Sequence[Entry], mechanism: Mechanism, sha256: str) -> Verification:
    """Recompute every entry's fractional allocation and payments from its bids with
    ``mechanism`` (within :func:`tolerance`), its realised allocation from its seed
    (exactly), and check it names the mechanism's checkpoint hash ``sha256``."""
    result = Verification(entries=len(entries))
    if not entries:
        return result
    n, m = mechanism.setting.shape
    tol = tolerance(mechanism)
    chunk = 4096
    for start in range(0, len(entries), chunk):
        part = entries[start : start + chunk]
        try:
            bids = np.asarray([e.bids for e in part], dtype=np.float64)
            alloc = np.asarray([e.allocation for e in part], dtype=np.float64)
            pay = np.asarray([e.payments for e in part], dtype=np.float64)
            real = np.asarray([e.realised for e in part], dtype=np.int64)
        except (TypeError, ValueError):
            result.problems.append(
                f"entries {part[0].seq}..{part[-1].seq} hold arrays of the wrong shape"
            )
            continue
        if bids.shape != (len(part), n, m) or pay.shape != (len(part), n):
            result.problems.append(
                f"entries {part[0].seq}..{part[-1].seq} are not for a {n}x{m} setting"
            )
            continue
        want_alloc, want_pay = mechanism.outcome(bids)
        for k, entry in enumerate(part):
            what = []
            if entry.mechanism_sha256 != sha256:
                what.append(f"mechanism hash {entry.mechanism_sha256[:12]} != {sha256[:12]}")
            if alloc[k].shape != (n, m) or np.abs(alloc[k] - want_alloc[k]).max() > tol:
                what.append("allocation differs from the mechanism's")
            if np.abs(pay[k] - want_pay[k]).max() > tol:
                what.append("payments differ from the mechanism's")
            if real[k].shape != (n, m) or not np.array_equal(
                real[k], realise(alloc[k], mechanism.setting, entry.seed)
            ):
                what.append("realised allocation does not follow from the seed")
            if what:
                result.problems.append(f"entry {entry.seq} ({entry.id}): {'; '.join(what)}")
    return result

"""Priors from data: observed valuation profiles in a CSV or Parquet file.

A setting file says::

    [prior]
    kind = "data"
    path = "bids.csv"     # relative to the setting file's directory (or absolute)
    format = "auto"       # "csv", "parquet" or "auto" (from the suffix: .csv, .parquet, .pq)
    holdout = 0.3         # fraction of the profiles held out for evaluation, in (0, 1)
    split_seed = 0        # seed of the train / held-out split
    smoothing = 0.0       # 0: resample training rows; > 0: Gaussian kernel density estimate
    # sha256 = "..."      # optional: refuse the file unless its content has this hash

File layouts (told apart by the columns; indices are 0-based everywhere):

* **wide**: one row per observed profile, one column ``bidder<i>_item<j>`` per bidder
  ``i < n`` and item ``j < m`` (``bidder0_item0``, ``bidder0_item1``...); no other column
  is allowed (extra columns are refused, naming them, so that a typo or a file made for
  another number of bidders or items is caught);
* **long**: columns ``profile``, ``bidder``, ``item`` and ``value``, one row per value:
  every profile id needs exactly one row for each bidder ``0..n-1`` and item ``0..m-1``.
  Profiles keep the order of their first row.

Every value must be a finite number >= 0.  A file needs at least :data:`MIN_PROFILES`
profiles, and the split must leave at least :data:`MIN_TRAINING` training profiles and
one held-out profile.  Errors name the row (counted from 0 after the header, as pandas
does; the CSV line is given too) and the column.

The split: ``round(holdout * N)`` profiles, drawn with ``numpy.random.default_rng(
split_seed)``, are held out; the rest are the training profiles.  Training (every
``setting.sample`` call) only ever sees training profiles:

* ``smoothing = 0``: the empirical distribution, rows drawn with replacement;
* ``smoothing = s > 0``: a Gaussian kernel density estimate, i.e. a resampled row plus
  independent noise ``N(0, (s * sigma_ij)^2)`` on each value, ``sigma_ij`` the standard
  deviation of column ``(i, j)`` over the training rows, the result clipped at 0.
  Silverman's rule of thumb would take ``s`` about ``1.06 * T^(-1/5)`` for T training
  rows (0.4 for 100 rows).

Evaluation (:func:`automech.evaluation.evaluate`) scores every mechanism on **all** the
held-out profiles, in file order, whatever number of test samples is asked for: every
revenue reported on a data prior is an estimate on the held-out part, with a 95 %
bootstrap confidence interval (``Evaluation.revenue_ci``).

``to_dict()`` records the absolute path and the file's SHA-256, so that a run directory's
setting rebuilds the same prior, and refuses to rebuild it once the file has changed.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from automech.errors import SettingError
from automech.problems.priors import Prior, _reject_unknown

#: Fewest profiles a data file may hold.
MIN_PROFILES = 10
#: Fewest training profiles the split must leave.
MIN_TRAINING = 2
#: File formats and the suffixes ``format = "auto"`` recognises.
FORMATS = {"csv": (".csv",), "parquet": (".parquet", ".pq")}
#: Columns of the long layout.
LONG_COLUMNS = ("profile", "bidder", "item", "value")
#: Kernel bandwidths the support box extends beyond the data when smoothing.
SUPPORT_BANDWIDTHS = 4.0

_KEYS = {"path", "format", "holdout", "split_seed", "smoothing", "sha256"}
_HEX64 = re.compile(r"[0-9a-f]{64}")


def wide_column(bidder: int, item: int) -> str:
    """The wide layout's column of bidder ``bidder`` and item ``item`` (0-based)."""
    return f"bidder{bidder}_item{item}"


class DataPrior(Prior):
    """The empirical distribution of observed profiles (N, n, m), split into training and
    held-out profiles (see the module docstring).

    Build one from a file with :meth:`from_file` (or a ``[prior] kind = "data"`` table);
    from an array directly, ``to_dict`` has no file to point at and raises.
    """

    kind = "data"

    def __init__(
        self,
        profiles: np.ndarray,
        holdout: float = 0.3,
        split_seed: int = 0,
        smoothing: float = 0.0,
        path: Path | None = None,
        sha256: str | None = None,
        fmt: str | None = None,
        source: str | None = None,
    ) -> None:
        profiles = np.asarray(profiles, dtype=np.float64)
        if profiles.ndim != 3:
            raise SettingError(
                "prior.path", f"profiles must be (N, n, m), got shape {profiles.shape}", source
            )
        super().__init__(profiles.shape[1], profiles.shape[2])
        where = f"'{path}' has" if path is not None else "the data have"
        total = len(profiles)
        if total < MIN_PROFILES:
            raise SettingError(
                "prior.path",
                f"{where} {total} profile(s); a data prior needs at least {MIN_PROFILES} "
                "(some are held out for evaluation)",
                source,
            )
        held = round(holdout * total)
        if held < 1 or total - held < MIN_TRAINING:
            raise SettingError(
                "prior.holdout",
                f"holding out {holdout} of {total} profiles leaves {held} held-out and "
                f"{total - held} training profile(s); need at least 1 held-out and "
                f"{MIN_TRAINING} training",
                source,
            )
        perm = np.random.default_rng(split_seed).permutation(total)
        self.profiles = profiles
        self.test_index = np.sort(perm[:held])
        self.train_index = np.sort(perm[held:])
        self.train = profiles[self.train_index]
        self.holdout, self.split_seed, self.smoothing = (
            float(holdout),
            int(split_seed),
            float(smoothing),
        )
        self.path, self.sha256, self.format = path, sha256, fmt
        std = self.train.std(axis=0, ddof=1)
        self.bandwidth = float(smoothing) * std  # (n, m)

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        num_bidders: int,
        num_items: int,
        fmt: str = "auto",
        holdout: float = 0.3,
        split_seed: int = 0,
        smoothing: float = 0.0,
        sha256: str | None = None,
        source: str | None = None,
    ) -> DataPrior:
        """Read ``path`` (wide or long layout) for ``num_bidders`` x ``num_items``
        profiles; ``sha256``, when given, must match the file's content."""
        path = Path(path)
        fmt = _format(path, fmt, source)
        if not path.is_file():
            raise SettingError("prior.path", f"data file '{path}' does not exist", source)
        try:
            content = path.read_bytes()
        except OSError as err:
            raise SettingError(
                "prior.path", f"cannot read '{path}': {_line(err)}", source
            ) from None
        digest = hashlib.sha256(content).hexdigest()
        if sha256 is not None and digest != sha256:
            raise SettingError(
                "prior.sha256",
                f"data file '{path}' has changed since this setting was saved (its sha256 is "
                f"{digest[:12]}..., recorded {sha256[:12]}...); restore the file, or drop "
                "'sha256' to use the new content",
                source,
            )
        frame = _read(content, path, fmt, source)
        profiles = _profiles(frame, num_bidders, num_items, path, fmt, source)
        return cls(profiles, holdout, split_seed, smoothing, path, digest, fmt, source)

    # ---- the Prior interface -------------------------------------------------------------

    def sample(self, num: int, rng: np.random.Generator) -> np.ndarray:
        """``num`` training profiles drawn with replacement (plus kernel noise when
        ``smoothing > 0``)."""
        out = self.train[rng.integers(0, len(self.train), size=num)]
        if self.smoothing > 0:
            out = np.clip(out + rng.standard_normal(out.shape) * self.bandwidth, 0.0, None)
        return out

    def test_profiles(self, num: int, seed: int) -> np.ndarray:
        """All the held-out profiles, in file order (``num`` and ``seed`` are ignored)."""
        return self.profiles[self.test_index].copy()

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        """From 0 (misreports below the smallest observed value are searched too) to the
        largest training value, plus :data:`SUPPORT_BANDWIDTHS` kernel bandwidths when
        smoothing."""
        high = self.train.max(axis=0) + SUPPORT_BANDWIDTHS * self.bandwidth
        return np.zeros_like(high), high

    # atoms(): None.  Even unsmoothed, the training rows are not a type set the exact LP
    # could use as such: profiles are correlated across bidders and would have to enter
    # the LP as one joint distribution (DiscretePrior), and evaluation is on held-out
    # profiles the LP never saw.

    def describe(self) -> str:
        name = self.path.name if self.path is not None else "<array>"
        smooth = f", smoothing {self.smoothing:g}" if self.smoothing > 0 else ""
        return (
            f"data({name}: {len(self.train)} training / {len(self.test_index)} held-out "
            f"profiles, split_seed {self.split_seed}{smooth})"
        )

    def to_dict(self) -> dict[str, Any]:
        if self.path is None:
            raise NotImplementedError(
                "a data prior built from an array has no file form; use DataPrior.from_file"
            )
        return {
            "kind": "data",
            "path": str(self.path),
            "format": self.format or "auto",
            "holdout": self.holdout,
            "split_seed": self.split_seed,
            "smoothing": self.smoothing,
            "sha256": self.sha256,
        }


# ---------------------------------------------------------------- parsing and reading


def parse_data_prior(table: dict, n: int, m: int, source: str | None) -> DataPrior:
    """The ``[prior] kind = "data"`` table (without ``kind``) -> :class:`DataPrior`.
    A relative ``path`` is taken from the directory of ``source`` (the setting file),
    or from the current directory when there is none."""
    _reject_unknown(table, _KEYS, source)
    raw = table.get("path")
    if raw is None:
        raise SettingError("prior.path", "missing (the CSV or Parquet file of profiles)", source)
    if not isinstance(raw, str) or not raw.strip():
        raise SettingError("prior.path", f"must be a file path, got {raw!r}", source)
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (Path(source).parent if source else Path.cwd()) / path
    path = path.resolve()
    fmt = table.get("format", "auto")
    if fmt not in ("auto", *FORMATS):
        raise SettingError(
            "prior.format", f"must be one of auto, {', '.join(FORMATS)}; got {fmt!r}", source
        )
    holdout = _number(table, "holdout", 0.3, source)
    if not 0 < holdout < 1:
        raise SettingError("prior.holdout", f"must be in (0, 1), got {holdout}", source)
    smoothing = _number(table, "smoothing", 0.0, source)
    if not smoothing >= 0:
        raise SettingError("prior.smoothing", f"must be >= 0, got {smoothing}", source)
    split_seed = table.get("split_seed", 0)
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
        raise SettingError(
            "prior.split_seed", f"must be an integer >= 0, got {split_seed!r}", source
        )
    sha256 = table.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _HEX64.fullmatch(sha256)):
        raise SettingError(
            "prior.sha256", f"must be 64 lowercase hex digits, got {sha256!r}", source
        )
    return DataPrior.from_file(path, n, m, fmt, holdout, split_seed, smoothing, sha256, source)


def _number(table: dict, key: str, default: float, source: str | None) -> float:
    v = table.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SettingError(f"prior.{key}", f"must be a number, got {v!r}", source)
    return float(v)


def _line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _format(path: Path, fmt: str, source: str | None) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    for name, suffixes in FORMATS.items():
        if suffix in suffixes:
            return name
    raise SettingError(
        "prior.format",
        f"cannot tell the format of '{path.name}' from its suffix {suffix!r} (known: .csv, "
        '.parquet, .pq); set format = "csv" or "parquet"',
        source,
    )


def _read(content: bytes, path: Path, fmt: str, source: str | None) -> Any:
    import pandas as pd

    try:
        if fmt == "csv":
            frame = pd.read_csv(io.BytesIO(content))
        else:
            frame = pd.read_parquet(io.BytesIO(content), engine="pyarrow")
    except pd.errors.EmptyDataError:
        raise SettingError("prior.path", f"data file '{path}' is empty", source) from None
    except Exception as err:  # parser errors of pandas and pyarrow have no common base
        raise SettingError(
            "prior.path", f"cannot read '{path}' as {fmt}: {_line(err)}", source
        ) from None
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _listed(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(f"'{c}'" for c in names[:limit])
    return shown + (f" ... ({len(names) - limit} more)" if len(names) > limit else "")


def _where(row: int, fmt: str) -> str:
    return f"row {row} (line {row + 2})" if fmt == "csv" else f"row {row}"


def _numeric(frame: Any, columns: list[str], path: Path, fmt: str, source: str | None):
    """The columns as a float64 (rows, columns) array, refusing the first (by row, then
    column) value that is not a finite number >= 0."""
    import pandas as pd

    out = np.empty((len(frame), len(columns)))
    for k, c in enumerate(columns):
        out[:, k] = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    for test, problem in (
        (lambda a: ~np.isfinite(a), "is not a finite number"),
        (lambda a: a < 0, "is negative (values must be >= 0)"),
    ):
        bad = test(out)
        if bad.any():
            row, k = np.argwhere(bad)[0]
            raw = frame[columns[k]].iloc[row]
            shown = "empty (NaN)" if _missing(raw) else repr(_plain(raw))
            raise SettingError(
                "prior.path",
                f"'{path.name}' {_where(int(row), fmt)}, column '{columns[k]}': "
                f"value {shown} {problem}",
                source,
            )
    return out


def _missing(raw: Any) -> bool:
    try:
        return bool(raw != raw) or raw is None
    except (TypeError, ValueError):
        return False


def _plain(raw: Any) -> Any:
    return raw.item() if isinstance(raw, np.generic) else raw


def _profiles(frame: Any, n: int, m: int, path: Path, fmt: str, source: str | None) -> np.ndarray:
    columns = list(frame.columns)
    if any(c in LONG_COLUMNS for c in columns):
        return _long(frame, n, m, path, fmt, source)
    expected = [wide_column(i, j) for i in range(n) for j in range(m)]
    layouts = (
        f"a wide file has one column bidder<i>_item<j> per bidder i < {n} and item j < {m} "
        "(0-based), a long file has columns profile, bidder, item, value"
    )
    missing = [c for c in expected if c not in set(columns)]
    extra = [c for c in columns if c not in set(expected)]
    hint = (
        " (an index written by pandas' to_csv? write it with index=False)"
        if any(c.startswith("Unnamed:") for c in extra)
        else ""
    )
    if missing:
        also = f"; unexpected: {_listed(extra)}{hint}" if extra else ""
        raise SettingError(
            "prior.path",
            f"'{path.name}' lacks column(s) {_listed(missing)}; {layouts}{also}",
            source,
        )
    if extra:
        raise SettingError(
            "prior.path",
            f"'{path.name}' has unexpected column(s) {_listed(extra)}{hint} (the setting has "
            f"{n} bidder(s) x {m} item(s): columns bidder0_item0 .. {expected[-1]}, "
            "0-based); drop them",
            source,
        )
    return _numeric(frame, expected, path, fmt, source).reshape(len(frame), n, m)


def _long(frame: Any, n: int, m: int, path: Path, fmt: str, source: str | None) -> np.ndarray:
    import pandas as pd

    columns = list(frame.columns)
    missing = [c for c in LONG_COLUMNS if c not in columns]
    if missing:
        raise SettingError(
            "prior.path",
            f"'{path.name}' lacks column(s) {_listed(missing)} of the long layout (profile, "
            f"bidder, item, value; one row per value, bidder < {n} and item < {m}, 0-based)",
            source,
        )
    extra = [c for c in columns if c not in LONG_COLUMNS]
    if extra:
        raise SettingError(
            "prior.path",
            f"'{path.name}' has unexpected column(s) {_listed(extra)}; a long file has "
            "exactly the columns profile, bidder, item, value",
            source,
        )
    ids = frame["profile"]
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise SettingError(
            "prior.path",
            f"'{path.name}' {_where(row, fmt)}, column 'profile': empty profile id",
            source,
        )
    index = {}
    for col, count, what in (("bidder", n, "bidder"), ("item", m, "item")):
        raw = frame[col]
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(num) & (num == np.round(num)) & (num >= 0) & (num < count)
        if not ok.all():
            row = int(np.flatnonzero(~ok)[0])
            value = raw.iloc[row]
            shown = "empty (NaN)" if _missing(value) else repr(_plain(value))
            raise SettingError(
                "prior.path",
                f"'{path.name}' {_where(row, fmt)}, column '{col}': {shown} is not a {what} "
                f"index 0..{count - 1} (0-based)",
                source,
            )
        index[col] = num.astype(np.int64)
    values = _numeric(frame, ["value"], path, fmt, source)[:, 0]
    codes, uniques = pd.factorize(ids, sort=False)
    cells = n * m
    key = codes.astype(np.int64) * cells + index["bidder"] * m + index["item"]
    dup = pd.Series(key).duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(key == key[row])[0])
        raise SettingError(
            "prior.path",
            f"'{path.name}' {_where(first, fmt)} and {_where(row, fmt)}: two values for "
            f"profile {_plain(uniques[codes[row]])!r}, bidder {index['bidder'][row]}, item "
            f"{index['item'][row]}",
            source,
        )
    filled = np.zeros(len(uniques) * cells, dtype=bool)
    filled[key] = True
    if not filled.all():
        k = int(np.flatnonzero(~filled)[0])
        p, rest = divmod(k, cells)
        raise SettingError(
            "prior.path",
            f"'{path.name}': profile {_plain(uniques[p])!r} has no value for bidder "
            f"{rest // m}, item {rest % m} (a long file needs one row per profile, bidder "
            "and item, 0-based)",
            source,
        )
    out = np.empty(len(uniques) * cells)
    out[key] = values
    return out.reshape(len(uniques), n, m)

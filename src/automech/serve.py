"""A saved mechanism as a web service, every auction written to an audit log.

``create_app(run_dir)`` gives a FastAPI app (``automech serve RUN`` runs it with uvicorn):

``POST /auction``
    Body ``{"bids": [[...], ...]}``: one bid profile (n bidders x m items), or
    ``{"bids": [[[...], ...], ...]}``: a batch of profiles (at most ``max_batch``).
    Optional ``"seed"``: the seed of the draw (an integer in [0, 2^63); a list of them
    for a batch), drawn by the server when absent.  The answer holds, per profile:

    * ``allocation``: the mechanism's fractional allocation (the lottery, n x m);
    * ``realised_allocation``: the 0/1 allocation drawn from that lottery with
      ``numpy.random.default_rng(seed)`` (:func:`automech.audit.realise`);
    * ``payments``: the mechanism's *expected* payments (n), charged whatever the draw:
      the mechanism's DSIC and IR guarantees are in expectation over its lottery, and
      they hold with these payments exactly as the mechanism was evaluated;
    * ``seed`` and ``auction_id``: with the bids they reproduce the outcome.

    A batch gives the same keys with one list entry per profile: every profile is an
    auction of its own, with its own ``auction_id``, seed and audit row.  All rows of a
    request are committed to the audit log before the answer is sent.

``GET /mechanism``
    The setting, the mechanism's name, config and checkpoint hash, its bid limit, and
    its description (:func:`automech.export.describe_json`; ``null`` when that does not
    support this mechanism).

``GET /health``
    ``{"status": "ok", "auctions": <rows in the log>}``.

Every bad request (malformed JSON, NaN/Infinity tokens, wrong shape, a negative bid or
one above the mechanism's valid range, a body over ``max_body`` bytes, a batch over
``max_batch``) is answered 422 with ``{"detail": "<one line>"}``; an internal failure
is 500 with a one-line detail, and nothing is acknowledged that is not in the log.

The service refuses a run whose evaluation shows infeasible allocations or IR
violations (``metrics.json``, or a quick evaluation when it has none), and dynamic runs.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fastapi
import numpy as np
import torch
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.routing import Route

from automech.audit import AUDIT_DB, MAX_SEED, AuditLog, checkpoint_sha256, realise, utc_now
from automech.errors import AutomechError
from automech.evaluation import evaluate
from automech.experiment import load
from automech.export import describe_json
from automech.mechanisms.base import Mechanism, check_bids, max_bid
from automech.problems.setting import Setting
from automech.runs import METRICS

#: Profiles one request may hold, by default.
MAX_BATCH = 1024
#: Largest request body in bytes, by default.
MAX_BODY = 4 * 2**20
#: Test profiles of the quick evaluation of a run without ``metrics.json``.
CHECK_SAMPLES = 4096


class ServeError(AutomechError):
    """A run that cannot be served (dynamic, or its evaluation shows IR violations or
    infeasible allocations)."""


class BadRequest(AutomechError):
    """A request the service refuses with 422; the message is the one-line detail."""


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def check_run(run_dir: Path, mechanism: Mechanism, samples: int = CHECK_SAMPLES) -> dict:
    """The run's IR and feasibility figures (``metrics.json``, else a quick evaluation
    without regret); :class:`ServeError` when either rate is above zero."""
    figures: dict[str, Any] = {}
    path = run_dir / METRICS
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ServeError(f"cannot read {str(path)!r}: {_one_line(str(err))}") from None
        if isinstance(data, dict):
            figures = {k: data.get(k) for k in ("infeasible_rate", "ir_violation_rate")}
    source = str(path)
    if any(not isinstance(v, (int, float)) for v in figures.values()) or len(figures) < 2:
        report = evaluate(mechanism, samples=samples, search=None)
        mechanism.to("cpu")
        figures = {"infeasible_rate": report.infeasible_rate}
        figures["ir_violation_rate"] = report.ir_violation_rate
        source = f"a quick evaluation on {samples} profiles"
    for key, what in (("ir_violation_rate", "IR violations"), ("infeasible_rate", "infeasible")):
        if figures[key] > 0:
            raise ServeError(
                f"refusing to serve {str(run_dir)!r}: {key} is {figures[key]:.4g} in "
                f"{source} ({what}); only mechanisms with none are served"
            )
    return figures


def _refuse_constant(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON (bids must be finite numbers)")


def _numbers(value: Any, depth: int = 0) -> None:
    """Refuse anything in the bids that is not a JSON number (strings, booleans, null)."""
    if isinstance(value, list):
        if depth > 3:
            raise BadRequest("bids nest too deep: give n x m or B x n x m numbers")
        for v in value:
            _numbers(v, depth + 1)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"bids must be numbers, got {json.dumps(value)[:40]}")


def _seeds(given: Any, count: int, batch: bool) -> list[int]:
    if given is None:
        return [secrets.randbits(63) for _ in range(count)]
    seeds = given if batch else [given]
    if batch and not isinstance(given, list):
        raise BadRequest("seed of a batch must be a list of integers, one per profile")
    if len(seeds) != count:
        raise BadRequest(f"seed holds {len(seeds)} integer(s) for {count} profile(s)")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED:
            raise BadRequest(f"seed must be an integer in [0, 2^63), got {json.dumps(s)[:40]}")
    return list(seeds)


def create_app(
    run_dir: str | Path,
    log_path: str | Path | None = None,
    max_batch: int = MAX_BATCH,
    max_body: int = MAX_BODY,
    fsync: bool = False,
    check_samples: int = CHECK_SAMPLES,
) -> fastapi.FastAPI:
    """The service of the mechanism saved in ``run_dir`` (module docstring).

    Parameters
    ----------
    run_dir
        A run directory of a static mechanism (``automech train`` or ``automech.save``).
    log_path
        The SQLite audit log (default ``RUN/audit.db``), appended to when it exists.
    max_batch, max_body
        The most profiles per request and bytes per request body.
    fsync
        Fsync every commit (survives power loss) instead of relying on the OS to keep
        the WAL file (survives a killed server); :class:`automech.audit.AuditLog`.
    check_samples
        Profiles of the quick IR/feasibility check when the run has no ``metrics.json``.

    Raises
    ------
    ServeError
        for a dynamic run, one with IR violations or infeasible allocations, or a log
        that holds auctions of another mechanism (checkpoint).
    RunError, AuditError
        when the run or the log cannot be read.
    """
    run_dir = Path(run_dir)
    if max_batch < 1 or max_body < 1:
        raise ServeError(f"max_batch and max_body must be >= 1, got {max_batch}, {max_body}")
    mech = load(run_dir)
    if not isinstance(mech, Mechanism) or not isinstance(mech.setting, Setting):
        raise ServeError(
            f"{str(run_dir)!r} holds a dynamic mechanism ({mech.name}); only static "
            "mechanisms (one bid profile in, one outcome out) are served"
        )
    mech = mech.to("cpu").eval()
    check_run(run_dir, mech, check_samples)
    sha = checkpoint_sha256(run_dir)
    log = AuditLog(log_path or run_dir / AUDIT_DB, fsync=fsync)
    others = [h for h in log.mechanisms() if h != sha]
    if others:
        log.close()
        raise ServeError(
            f"audit log {str(log.path)!r} holds auctions of another mechanism (checkpoint "
            f"sha256 {others[0][:12]}, not {sha[:12]}): give a new log with --log"
        )
    setting = mech.setting
    n, m = setting.shape
    try:
        description: dict | None = describe_json(mech)
    except AutomechError:
        description = None
    dtype = mech.dtype
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    limit = max_bid(setting, dtype)
    info = {
        "setting": setting.to_dict(),
        "mechanism": mech.name,
        "config": mech.config(),
        "mechanism_sha256": sha,
        "dtype": str(dtype).removeprefix("torch."),
        "max_bid": limit,
        "payments": "expected payments of the lottery, charged whatever the draw",
        "description": description,
    }
    info_body = json.dumps(info).encode()

    @contextlib.asynccontextmanager
    async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[None]:
        yield
        log.close()

    app = fastapi.FastAPI(
        title=f"automech: {mech.name} on {setting.name or setting.describe()}",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.mechanism = mech
    app.state.log = log
    app.state.sha256 = sha

    def detail(status: int, text: str) -> JSONResponse:
        return JSONResponse({"detail": _one_line(text)}, status_code=status)

    @app.exception_handler(BadRequest)
    async def _bad(request: fastapi.Request, err: BadRequest) -> JSONResponse:
        return detail(422, str(err))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: fastapi.Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        return detail(422, f"invalid request: {first.get('msg', err)}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: fastapi.Request, err: StarletteHTTPException) -> JSONResponse:
        return detail(err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def _internal(request: fastapi.Request, err: Exception) -> JSONResponse:
        return detail(500, f"internal error ({type(err).__name__}): {err}")

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body):
            raise BadRequest(f"request body over {max_body} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise BadRequest(f"request body over {max_body} bytes")
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks), parse_constant=_refuse_constant)
        except RecursionError:
            raise BadRequest("malformed JSON: nested too deep") from None
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, NaN tokens
            raise BadRequest(f"malformed JSON: {err}") from None

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "auctions": log.last()}

    @app.get("/mechanism")
    async def mechanism() -> Response:
        return Response(info_body, media_type="application/json")

    async def auction(request: Request) -> Response:
        data = await read_json(request)
        if not isinstance(data, dict) or "bids" not in data:
            raise BadRequest('the body must be a JSON object {"bids": [...]} (optional "seed")')
        extra = set(data) - {"bids", "seed"}
        if extra:
            raise BadRequest(f"unknown key(s) {sorted(extra)}; the body takes bids and seed")
        bids = data["bids"]
        if not isinstance(bids, list):
            raise BadRequest(f"bids must be a list of {n} x {m} numbers (or a batch of them)")
        _numbers(bids)
        try:
            arr = np.asarray(bids, dtype=np.float64)
        except (ValueError, OverflowError):
            raise BadRequest(
                f"bids must be a rectangular {n} x {m} array (or B x {n} x {m})"
            ) from None
        batch = arr.ndim == 3
        if arr.ndim not in (2, 3):
            raise BadRequest(
                f"bids must be {n} x {m} (one profile) or B x {n} x {m}; got {arr.shape}"
            )
        profiles = arr if batch else arr[None]
        if batch and not 1 <= len(profiles) <= max_batch:
            raise BadRequest(f"a batch holds 1 to {max_batch} profiles, got {len(profiles)}")
        # the conditions of check_bids with its bid limit computed once; check_bids
        # itself (the one source of the rule and its messages) names what is wrong
        if profiles.shape[1:] != (n, m) or not (
            np.isfinite(profiles).all() and profiles.min() >= 0 and profiles.max() <= limit
        ):
            try:
                profiles = check_bids(profiles, setting, dtype)
            except AutomechError as err:
                raise BadRequest(str(err)) from None
        seeds = _seeds(data.get("seed"), len(profiles), batch)
        with torch.inference_mode():
            alloc_t, pay_t = mech(torch.from_numpy(profiles.astype(np_dtype)))
        alloc = alloc_t.double().numpy()
        pay = pay_t.double().numpy()
        if not (np.isfinite(alloc).all() and np.isfinite(pay).all()):
            raise RuntimeError("the mechanism computed a non-finite outcome")
        now = utc_now()
        rows = []
        for k in range(len(profiles)):
            rows.append(
                {
                    "id": uuid.uuid4().hex,
                    "time": now,
                    "mechanism_sha256": sha,
                    "bids": profiles[k].tolist(),
                    "allocation": alloc[k].tolist(),
                    "payments": pay[k].tolist(),
                    "realised": realise(alloc[k], setting, seeds[k]).tolist(),
                    "seed": seeds[k],
                }
            )
        log.record(rows)  # committed before the answer: an acknowledged auction is logged
        keys = ("auction_id", "allocation", "payments", "realised_allocation", "seed")
        cols = ("id", "allocation", "payments", "realised", "seed")
        body = {
            key: [r[c] for r in rows] if batch else rows[0][c]
            for key, c in zip(keys, cols, strict=True)
        }
        body["time"] = now
        return Response(json.dumps(body).encode(), media_type="application/json")

    # a plain Starlette route: the body is parsed and checked above, so FastAPI's
    # request validation and dependency solving would only add latency
    app.router.routes.append(Route("/auction", auction, methods=["POST"]))
    return app

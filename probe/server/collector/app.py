"""The collector's HTTP interface (Starlette, served by Hypercorn's trio worker).

Volunteers' probes register once (``POST /api/v1/probes``) and then send batches of
signed measurements (``POST /api/v1/measurements``).  The rules every handler keeps:

- A batch is stored whole or not at all.  Every item is validated before the first
  write, and the write is one transaction, so a 4xx or 5xx answer means nothing of the
  batch was kept and a 200 means all of it was (newly, or already before).
- Idempotent by measurement id: a probe that lost an answer sends the batch again and
  reads "duplicate" for what arrived the first time.
- Nobody's address is kept.  No handler reads the connection's address, except the
  optional ASN look-up (``--asn-db``), which turns it into an AS number inside one
  function and forgets it; Hypercorn's access log is off (see ``kuzot serve``).

Hostile clients cost little: the body must arrive within ``body_timeout`` seconds plus
the time it takes at ``MIN_BODY_RATE`` (a client dripping one byte every few seconds is
answered 408 and dropped, while a slow honest uplink still gets through), each token
may send ``rate_limit`` batches per minute (429 with ``Retry-After`` beyond), and a
client that hangs up mid-body is dropped without a traceback in the log.

Parsing, validation and ed25519 checks run in a pool of worker processes
(``workers``, :mod:`probe.server.collector.workers`), so they use every core and never
block the event loop; the database transaction only moves rows (multi-row inserts,
COPY on PostgreSQL).

Database work runs in worker threads (SQLAlchemy's asyncio layer does not run under
trio).  SQLite has one writer at a time, so its writes are queued through a limiter of
one rather than left to fight over the file lock; PostgreSQL gets several.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from probe import __version__
from probe.server.collector.openapi import OPERATIONS, openapi_document
from probe.server.collector.tokens import probe_for_token, register_probe
from probe.server.collector.validate import Problem, Refusal
from probe.server.collector.workers import (
    Conflict,
    Outcome,
    Stored,
    StoreFailed,
    Validator,
    is_refusal,
    store_checked,
    with_connection_asn,
)
from probe.server.control.app import ControlConfig, control_routes
from probe.signing import key_id_of, verify_key_proof
from probe.store import Store, StoreError
from probe.store.database import PreparedItem

DEFAULT_MAX_ITEMS = 1000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_RATE_LIMIT = 600
#: Bytes per second a body must at least average, beyond the first ``body_timeout``
#: seconds: 8 KiB/s lets a 4 MiB batch take over eight minutes on a poor uplink.
MIN_BODY_RATE = 8 * 1024


@dataclass(frozen=True)
class CollectorConfig:
    #: Most measurements one batch may hold (413 beyond).
    max_items: int = DEFAULT_MAX_ITEMS
    #: Largest request body accepted, in bytes (413 beyond).
    max_bytes: int = DEFAULT_MAX_BYTES
    #: Mount the control helper's routes too (only on an uncensored network).
    control: ControlConfig | None = None
    #: MaxMind-format ASN database: fill in the AS number of records that lack one.
    asn_db: Path | None = None
    #: With ``asn_db`` behind a reverse proxy: the header the proxy puts the client
    #: address in (e.g. ``X-Real-IP``); otherwise the connection's own address is used.
    asn_header: str | None = None
    #: Batches written at once; None picks 1 for SQLite and 8 otherwise.
    write_concurrency: int | None = None
    #: Seconds a request body may take (plus its size at MIN_BODY_RATE); 408 beyond.
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    #: Batches one probe token may send per minute (429 beyond); 0 for no limit.
    rate_limit: int = DEFAULT_RATE_LIMIT
    #: Worker processes that parse and check batches; 0 checks in a thread of this one.
    workers: int | None = None


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _problems(status: int, problems: list[Problem], consequence: str) -> JSONResponse:
    first = problems[0]
    return _error(
        status,
        f"{first.text()} ({consequence})",
        index=first.index,
        field=first.field,
        problems=[p.to_dict() for p in problems],
    )


class _AsnLookup:
    """AS number of the client's address from an ASN database (GeoLite2-ASN format)."""

    def __init__(self, path: Path, header: str | None) -> None:
        try:
            import maxminddb
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise StoreError("--asn-db needs the maxminddb package: pip install 'kuzot[asn]'") from exc
        self._reader = maxminddb.open_database(str(path))
        self._header = header

    def __call__(self, request: Request) -> int | None:
        # The one place the collector looks at a client address.  It is used for this
        # look-up and dropped when the function returns: never stored, logged or echoed.
        if self._header:
            forwarded = request.headers.get(self._header, "")
            address = forwarded.split(",")[-1].strip() or None
        else:
            client = request.scope.get("client")
            address = client[0] if client else None
        if not address:
            return None
        try:
            found = self._reader.get(address)
        except ValueError:
            return None
        number = found.get("autonomous_system_number") if isinstance(found, dict) else None
        return number if isinstance(number, int) and 0 <= number < 2**31 else None


class _PeerGone(Exception):
    pass


class _QuietDisconnects:
    """A client that hung up cannot be answered; say nothing rather than log a
    traceback for every one (a flood of them would bury real errors)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded_send(message: Any) -> None:
            try:
                await send(message)
            except (trio.BusyResourceError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                raise _PeerGone from None

        with suppress(_PeerGone):
            await self.app(scope, receive, guarded_send)


class _Disconnected(Exception):
    """The client went away before its body arrived: nobody is left to answer."""


async def _read_body(request: Request, limit: int, seconds: float) -> bytes | JSONResponse:
    """The body, or the refusal once it is longer than ``limit`` (never read further)
    or slower than the timeout allows."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return _too_large(limit)
    body = bytearray()
    started = trio.current_time()
    with trio.CancelScope(deadline=started + seconds) as scope:
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return _too_large(limit)
                scope.deadline = started + seconds + len(body) / MIN_BODY_RATE
        except ClientDisconnect:
            raise _Disconnected from None
    if scope.cancelled_caught:
        return _error(
            408,
            f"the request body did not arrive in time ({seconds:g} s plus 1 s per "
            f"{MIN_BODY_RATE // 1024} KiB); nothing was stored",
        )
    return bytes(body)


def _too_large(limit: int) -> JSONResponse:
    return _error(
        413,
        f"batch larger than {limit} bytes: send fewer measurements per request",
        max_bytes=limit,
    )


def _stored_answer(results: list[tuple[str, bool]]) -> JSONResponse:
    """The 200 answer: each id, stored now or a duplicate of what was stored before."""
    new_count = sum(new for _id, new in results)
    return JSONResponse(
        {
            "results": [{"id": id_, "status": "stored" if new else "duplicate"} for id_, new in results],
            "stored": new_count,
            "duplicate": len(results) - new_count,
        },
        status_code=200,
    )


class _RateLimiter:
    """A token bucket per probe token: ``per_minute`` batches, bursts of a tenth of that."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(1.0, per_minute / 10.0)
        self.buckets: dict[str, tuple[float, float]] = {}

    def retry_after(self, key: str) -> float:
        """0 when a request may go now (and counts it), else seconds to wait."""
        now = time.monotonic()
        tokens, then = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens >= 1.0:
            self.buckets[key] = (tokens - 1.0, now)
            return 0.0
        self.buckets[key] = (tokens, now)
        if len(self.buckets) > 100_000:  # forget idle probes rather than grow for ever
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 3600}
        return (1.0 - tokens) / self.rate


class _Collector:
    """The request handlers over one open store, and what they share between requests."""

    def __init__(self, store: Store, config: CollectorConfig) -> None:
        self.store = store
        self.config = config
        sqlite = store.engine.dialect.name == "sqlite"
        self.write_limiter = trio.CapacityLimiter(config.write_concurrency or (1 if sqlite else 8))
        self.asn_lookup = _AsnLookup(config.asn_db, config.asn_header) if config.asn_db else None
        #: token -> probe id, for tokens already seen (unknown tokens are never cached).
        self.known_tokens: dict[str, str] = {}
        self.document = openapi_document(
            max_items=config.max_items, max_bytes=config.max_bytes, control=config.control is not None
        )
        workers = config.workers if config.workers is not None else min(4, os.cpu_count() or 1)
        # PostgreSQL takes many writers: there the workers store what they check.
        url = None if sqlite else store.engine.url.render_as_string(hide_password=False)
        self.validator = Validator(workers, url)
        self.limiter = _RateLimiter(config.rate_limit) if config.rate_limit > 0 else None

    async def probes(self, _request: Request) -> JSONResponse:
        try:
            probe_id, token = await trio.to_thread.run_sync(register_probe, self.store)
        except SQLAlchemyError:
            return _error(503, "the collector's database is unavailable; retry later")
        return JSONResponse({"probe_id": probe_id, "token": token}, status_code=201)

    async def authenticate(self, request: Request) -> str | JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _error(
                401,
                "missing token: register with POST /api/v1/probes, then send 'Authorization: Bearer TOKEN'",
            )
        if token in self.known_tokens:
            return self.known_tokens[token]
        try:
            probe_id = await trio.to_thread.run_sync(probe_for_token, self.store, token)
        except SQLAlchemyError:
            return _error(503, "the collector's database is unavailable; retry later")
        if probe_id is None:
            return _error(401, "unknown token: register again with POST /api/v1/probes")
        self.known_tokens[token] = probe_id
        return probe_id

    async def measurements(self, request: Request) -> Response:
        try:
            return await self.receive_batch(request)
        except _Disconnected:
            return Response(status_code=400)  # nobody will read it; no traceback either

    def _rate_limited(self, probe_id: str) -> JSONResponse | None:
        wait = self.limiter.retry_after(probe_id) if self.limiter is not None else 0
        if wait <= 0:
            return None
        seconds = max(1, math.ceil(wait))
        response = _error(
            429,
            f"too many batches from this probe: at most {self.config.rate_limit} per minute; "
            f"retry in {seconds} s",
            retry_after=seconds,
        )
        response.headers["Retry-After"] = str(seconds)
        return response

    def _with_connection_asn(self, request: Request, items: list[PreparedItem]) -> list[PreparedItem]:
        """Records without an AS number get the connection's, when an ASN database is given."""
        if self.asn_lookup is None or all(item.row["probe_asn"] is not None for item in items):
            return items
        return with_connection_asn(items, self.asn_lookup(request))

    async def receive_batch(self, request: Request) -> JSONResponse:
        probe_id = await self.authenticate(request)
        if isinstance(probe_id, JSONResponse):
            return probe_id
        refused = self._rate_limited(probe_id)
        if refused is not None:
            return refused
        body = await _read_body(request, self.config.max_bytes, self.config.body_timeout)
        if isinstance(body, JSONResponse):
            return body
        try:
            outcome = await self._check_and_store(request, body, probe_id)
        except BrokenProcessPool:
            return _error(503, "the collector's validation workers failed; nothing was kept, retry later")
        if isinstance(outcome, Refusal):
            return _error(outcome.status, outcome.message, **outcome.extra)
        if isinstance(outcome, Conflict):
            problems = [Problem(i, f, m) for i, f, m in outcome.problems]
            return _problems(409, problems, "nothing of this batch was stored; send the others without it")
        if isinstance(outcome, StoreFailed):
            return _error(503, "the collector could not store this batch; nothing was kept, retry later")
        if isinstance(outcome, Stored):
            return _stored_answer(outcome.results)
        return _problems(422, outcome, "nothing of this batch was stored")

    async def _check_and_store(self, request: Request, body: bytes, probe_id: str) -> Outcome:
        """Check the batch, then store it: both in a worker on PostgreSQL; on SQLite the
        checked rows come back to this process's one writer."""
        max_items = self.config.max_items
        if self.validator.stores:
            asn = self.asn_lookup(request) if self.asn_lookup is not None else None
            return await self.validator.check_and_store(body, max_items, probe_id, asn)
        checked = await self.validator(body, max_items, probe_id)
        if is_refusal(checked):
            return checked  # type: ignore[return-value]
        items = self._with_connection_asn(request, checked)  # type: ignore[arg-type]
        return await trio.to_thread.run_sync(store_checked, self.store, items, limiter=self.write_limiter)

    async def keys(self, request: Request) -> Response:
        """A probe proves it holds a signing key, so records signed by it are accepted
        from this registration too (a new token, or two registrations of one probe)."""
        probe_id = await self.authenticate(request)
        if isinstance(probe_id, JSONResponse):
            return probe_id
        try:
            body = await _read_body(request, 4096, self.config.body_timeout)
        except _Disconnected:
            return Response(status_code=400)
        if isinstance(body, JSONResponse):
            return body
        try:
            data = json.loads(body)
            public_key, proof = data["public_key"], data["proof"]
            if not isinstance(public_key, str) or not isinstance(proof, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _error(422, 'send {"public_key": BASE64, "proof": BASE64}', field="public_key")
        why = verify_key_proof(public_key, probe_id, proof)
        if why is not None:
            return _error(422, f"proof: {why}", field="proof")
        key_id = key_id_of(public_key)
        try:
            await trio.to_thread.run_sync(self.store.bind_key, key_id, probe_id, limiter=self.write_limiter)
        except (StoreError, SQLAlchemyError):
            return _error(503, "the collector's database is unavailable; retry later")
        return JSONResponse({"key_id": key_id, "probe_id": probe_id}, status_code=200)

    def database_ok(self) -> bool:
        try:
            with self.store.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    async def health(self, _request: Request) -> JSONResponse:
        ok = await trio.to_thread.run_sync(self.database_ok)
        config = self.config
        return JSONResponse(
            {
                "status": "ok" if ok else "degraded",
                "service": "collector",
                "version": __version__,
                "database": "ok" if ok else "unavailable",
                "limits": {"max_items": config.max_items, "max_bytes": config.max_bytes},
                "control": config.control is not None,
            },
            status_code=200 if ok else 503,
        )

    async def openapi(self, _request: Request) -> JSONResponse:
        return JSONResponse(self.document)

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> Any:
        await self.validator.start()
        try:
            yield
        finally:
            self.validator.close()

    def routes(self) -> list[Route]:
        """The collector's routes from the table the OpenAPI document is made of, then
        the control helper's when it is mounted."""
        routes = [
            Route(op.path, getattr(self, op.handler), methods=[op.method.upper()])
            for op in OPERATIONS
            if not op.control
        ]
        if self.config.control is not None:
            routes += control_routes(self.config.control)
        return routes


def create_collector_app(store: Store, config: CollectorConfig | None = None) -> Starlette:
    """The collector as an ASGI app over an open store (whose schema is current)."""
    collector = _Collector(store, config or CollectorConfig())
    return Starlette(
        routes=collector.routes(), lifespan=collector.lifespan, middleware=[Middleware(_QuietDisconnects)]
    )

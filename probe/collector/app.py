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

Database work runs in worker threads (SQLAlchemy's asyncio layer does not run under
trio).  SQLite has one writer at a time, so its writes are queued through a limiter of
one rather than left to fight over the file lock; PostgreSQL gets several.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import trio
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from probe import __version__
from probe.collector.openapi import openapi_document
from probe.collector.tokens import probe_for_token, register_probe
from probe.collector.validate import Problem, check_item
from probe.control.app import ControlConfig, control_routes
from probe.store import Store, StoreError
from probe.store.database import BatchItem

DEFAULT_MAX_ITEMS = 1000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


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


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


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


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than ``limit`` (never read further)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class _Refusal(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _parse(body: bytes, max_items: int) -> list[Any]:
    """The batch's items, or a refusal saying what is wrong with the batch as a whole."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _Refusal(_error(400, 'body is not JSON; send {"measurements": [...]}')) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("measurements"), list):
        raise _Refusal(
            _error(
                422, "field 'measurements' is required and must be a list", field="measurements", index=None
            )
        )
    batch = payload["measurements"]
    if len(batch) > max_items:
        raise _Refusal(
            _error(
                413,
                f"batch of {len(batch)} measurements; at most {max_items} per request",
                max_items=max_items,
            )
        )
    return batch


def _validate(body: bytes, max_items: int, probe_id: str) -> list[BatchItem] | list[Problem]:
    """Parse and check a whole batch (in a worker thread: a large batch takes a while)."""
    payload = _parse(body, max_items)
    items: list[BatchItem] = []
    problems: list[Problem] = []
    for index, raw in enumerate(payload):
        checked = check_item(index, raw, probe_id=probe_id)
        if isinstance(checked, BatchItem):
            items.append(checked)
        else:
            problems.extend(checked)
            if len(problems) >= 20:
                break
    return problems or items


def create_collector_app(store: Store, config: CollectorConfig | None = None) -> Starlette:
    """The collector as an ASGI app over an open store (whose schema is current)."""
    config = config or CollectorConfig()
    sqlite = store.engine.dialect.name == "sqlite"
    writers = config.write_concurrency or (1 if sqlite else 8)
    write_limiter = trio.CapacityLimiter(writers)
    asn_lookup = _AsnLookup(config.asn_db, config.asn_header) if config.asn_db else None
    #: token -> probe id, for tokens already seen (unknown tokens are never cached).
    known_tokens: dict[str, str] = {}
    document = openapi_document(
        max_items=config.max_items, max_bytes=config.max_bytes, control=config.control is not None
    )

    async def probes(_request: Request) -> JSONResponse:
        try:
            probe_id, token = await trio.to_thread.run_sync(register_probe, store)
        except SQLAlchemyError:
            return _error(503, "the collector's database is unavailable; retry later")
        return JSONResponse({"probe_id": probe_id, "token": token}, status_code=201)

    async def authenticate(request: Request) -> str | JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _error(
                401,
                "missing token: register with POST /api/v1/probes, then send 'Authorization: Bearer TOKEN'",
            )
        if token in known_tokens:
            return known_tokens[token]
        try:
            probe_id = await trio.to_thread.run_sync(probe_for_token, store, token)
        except SQLAlchemyError:
            return _error(503, "the collector's database is unavailable; retry later")
        if probe_id is None:
            return _error(401, "unknown token: register again with POST /api/v1/probes")
        known_tokens[token] = probe_id
        return probe_id

    async def measurements(request: Request) -> JSONResponse:
        probe_id = await authenticate(request)
        if isinstance(probe_id, JSONResponse):
            return probe_id
        body = await _read_body(request, config.max_bytes)
        if body is None:
            return _error(
                413,
                f"batch larger than {config.max_bytes} bytes: send fewer measurements per request",
                max_bytes=config.max_bytes,
            )
        try:
            checked = await trio.to_thread.run_sync(_validate, body, config.max_items, probe_id)
        except _Refusal as refusal:
            return refusal.response
        if checked and isinstance(checked[0], Problem):
            problems: Sequence[Problem] = checked  # type: ignore[assignment]
            first = problems[0]
            return _error(
                422,
                f"{first.text()} (nothing of this batch was stored)",
                index=first.index,
                field=first.field,
                problems=[p.to_dict() for p in problems],
            )
        items: list[BatchItem] = checked  # type: ignore[assignment]
        if asn_lookup is not None and any(item.probe_asn is None for item in items):
            asn = asn_lookup(request)
            if asn is not None:
                items = [
                    replace(item, probe_asn=asn, asn_source="connection") if item.probe_asn is None else item
                    for item in items
                ]
        try:
            stored = await trio.to_thread.run_sync(store.save_batch, items, limiter=write_limiter)
        except (StoreError, SQLAlchemyError):
            return _error(503, "the collector could not store this batch; nothing was kept, retry later")
        results = [
            {"id": item.measurement.id, "status": "stored" if new else "duplicate"}
            for item, new in zip(items, stored, strict=True)
        ]
        new_count = sum(stored)
        return JSONResponse(
            {"results": results, "stored": new_count, "duplicate": len(stored) - new_count}, status_code=200
        )

    def database_ok() -> bool:
        try:
            with store.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    async def health(_request: Request) -> JSONResponse:
        ok = await trio.to_thread.run_sync(database_ok)
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

    async def openapi(_request: Request) -> JSONResponse:
        return JSONResponse(document)

    routes = [
        Route("/api/v1/probes", probes, methods=["POST"]),
        Route("/api/v1/measurements", measurements, methods=["POST"]),
        Route("/api/v1/health", health, methods=["GET"]),
        Route("/api/v1/openapi.json", openapi, methods=["GET"]),
    ]
    if config.control is not None:
        routes += control_routes(config.control)
    return Starlette(routes=routes)

"""The control helper's HTTP interface (ASGI, served by Hypercorn's trio worker).

``POST /api/v1/control`` with ``{"url": "https://..."}`` measures the URL with the
helper's own resolver, trust store and source address and answers with the
observations (the archival types, ids prefixed ``control/``).

Why the limits: the helper is a public service that opens connections on request.
Request bodies are capped, concurrency is bounded (a full helper answers 503 rather
than queueing without end), each measurement has a deadline (504), and body samples
and certificate bytes are stripped from the answer so the helper cannot be used as an
open proxy.  Targets that resolve to private or loopback addresses are refused unless
the operator allows them (a lab lives on loopback).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from probe import __version__
from probe.measure import MeasurementContext, measure_url
from probe.records import ControlObservations, Measurement
from probe.settings import ProbeSettings
from probe.targets import Target, check_url

MAX_REQUEST_BYTES = 4096


@dataclass(frozen=True)
class ControlConfig:
    settings: ProbeSettings
    concurrency: int = 32
    queue_timeout: float = 5.0
    request_timeout: float = 60.0
    allow_private: bool = False
    #: With an ASN database: answer GET /api/v1/geolookup (probe/server/control/geolookup.py).
    geolookup: Any = None


def to_control(m: Measurement, source: str) -> ControlObservations:
    """Re-label a measurement as control observations, without bodies or certificate bytes."""

    def prefixed(items: list[Any]) -> list[Any]:
        out = []
        for obs in items:
            changes: dict[str, Any] = {"id": f"control/{obs.id}"}
            if hasattr(obs, "body_sample"):
                changes["body_sample"] = b""
            if hasattr(obs, "certificates"):
                changes["certificates"] = [replace(c, der_b64="") for c in obs.certificates]
            out.append(replace(obs, **changes))
        return out

    return ControlObservations(
        source=source, dns=prefixed(m.dns), tcp=prefixed(m.tcp), tls=prefixed(m.tls), http=prefixed(m.http)
    )


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _requested_url(request: Request, allow_private: bool) -> str | JSONResponse:
    """The URL a probe asks about, or the answer refusing the request."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_REQUEST_BYTES):
        return _error(413, f"request body larger than {MAX_REQUEST_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            return _error(413, f"request body larger than {MAX_REQUEST_BYTES} bytes")
    try:
        payload = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        return _error(400, 'body is not JSON; send {"url": "https://..."}')
    if not isinstance(payload, dict) or not isinstance(payload.get("url"), str):
        return _error(400, "field 'url' is required and must be a string")
    url: str = payload["url"]
    problem = check_url(url)
    if problem:
        return _error(400, f"field 'url': {problem}")
    host = urlsplit(url).hostname or ""
    try:
        if not allow_private and _private(host):
            return _error(403, "field 'url': private and loopback addresses are not measured")
    except ValueError:
        pass  # a name, checked after resolution
    return url


def _answer(measurement: Measurement, request: Request) -> JSONResponse:
    result = to_control(measurement, source=str(request.url))
    data = {
        "source": result.source,
        "failure": None,
        "dns": [_plain(o) for o in result.dns],
        "tcp": [_plain(o) for o in result.tcp],
        "tls": [_plain(o) for o in result.tls],
        "http": [_plain(o) for o in result.http],
    }
    return JSONResponse(data)


def control_routes(config: ControlConfig) -> list[Route]:
    """Routes to mount in the control helper, and in the collector beside its own."""
    limiter = trio.CapacityLimiter(config.concurrency)
    ctx_holder: dict[str, MeasurementContext] = {}

    def context() -> MeasurementContext:
        if "ctx" not in ctx_holder:
            ctx_holder["ctx"] = MeasurementContext(config.settings)
        return ctx_holder["ctx"]

    async def control(request: Request) -> JSONResponse:
        url = await _requested_url(request, config.allow_private)
        if isinstance(url, JSONResponse):
            return url
        measurement: Measurement | None = None
        with trio.move_on_after(config.queue_timeout) as queue_scope:
            await limiter.acquire()
        if queue_scope.cancelled_caught:
            return _error(503, "control helper is busy; retry later")
        try:
            with trio.move_on_after(config.request_timeout):
                measurement = await measure_url(Target(url), context())
        finally:
            limiter.release()
        if measurement is None:
            return _error(504, "measurement did not finish in time")
        if not config.allow_private and any(_private(a) for d in measurement.dns for a in d.addresses()):
            return _error(403, "field 'url': the name resolves to a private address; not measured")
        return _answer(measurement, request)

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": "control", "version": __version__})

    routes = [
        Route("/api/v1/control", control, methods=["POST"]),
        Route("/api/v1/control/health", health, methods=["GET"]),
    ]
    if config.geolookup is not None:
        routes.append(config.geolookup.route())
    return routes


def _plain(obs: Any) -> Any:
    from probe.records import _plain as plain

    return plain(obs)


def create_control_app(config: ControlConfig) -> Starlette:
    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": "control", "version": __version__})

    return Starlette(routes=[*control_routes(config), Route("/api/v1/health", health)])

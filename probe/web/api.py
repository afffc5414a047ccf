"""``/api/v1/``: every page's data as JSON (the same dicts the pages render), CSV tables,
and the episode evidence bundle."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from probe.web import params, queries
from probe.web.bundle import build_bundle, folder_name
from probe.web.caching import Handler, conditional
from probe.web.context import WebContext
from probe.web.csvout import csv_response
from probe.web.openapi import openapi_document
from probe.web.rows import CORRELATION_FIELDS, EPISODE_FIELDS

OVERVIEW_CSV = (
    "domain",
    "category",
    "asn",
    "network",
    "status",
    "blocking",
    "measured_at",
    "measurement_id",
    "open_episode",
)
EPISODE_CSV = EPISODE_FIELDS
VERDICT_CSV = (
    "measurement_id",
    "measured_at",
    "domain",
    "url",
    "probe_asn",
    "network",
    "status",
    "blocking",
    "confirmed",
    "rule_id",
    "reason",
    "rules_version",
    "simulated",
)
#: An order's enforcement table: the correlation's own columns (as ``kuzot orders`` and
#: the report's orders.csv) with the network's name.
ORDER_CSV = CORRELATION_FIELDS


async def compute(ctx: WebContext, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a query in a worker thread (pages never block the event loop); NotFound is a 404."""
    snap = await ctx.snapshot()

    def run() -> Any:
        return fn(snap, *args, **kwargs)

    try:
        return await trio.to_thread.run_sync(run, limiter=ctx.db_limiter)
    except queries.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


Arguments = Callable[[Request], tuple[tuple[Any, ...], dict[str, Any]]]


def _overview_args(request: Request) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (), params.overview_filters(request)


def _site_args(request: Request) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (request.path_params["domain"],), {}


def _site_verdicts_args(request: Request) -> tuple[tuple[Any, ...], dict[str, Any]]:
    kwargs = {"asn": params.integer(request, "asn"), **params.page(request)}
    return (request.path_params["domain"],), kwargs


def _episodes_args(request: Request) -> tuple[tuple[Any, ...], dict[str, Any]]:
    kwargs = {"domain": params.text(request, "domain", 253), "asn": params.integer(request, "asn")}
    return (), {**kwargs, **params.page(request)}


def _episode_args(request: Request) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (request.path_params["episode_id"],), params.page(request)


def _orders_args(request: Request) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (), params.page(request)


def _order_args(request: Request) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (request.path_params["order_id"],), {}


def _overview_table(data: dict[str, Any]) -> list[dict[str, Any]]:
    labels = {n["asn"]: n["label"] for n in data["networks"]}
    return [
        {"domain": s["domain"], "category": s["category"], "network": labels.get(c["asn"]), **c}
        for s in data["sites"]
        for c in s["cells"]
        if c["status"] is not None
    ]


def _all_sites(request: Request) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = _overview_args(request)
    return args, {**kwargs, "limit": queries.MAX_LIMIT}


#: path, query, its arguments, whether the data shows ages (see :mod:`probe.web.caching`).
JSON: list[tuple[str, Callable[..., Any], Arguments, bool]] = [
    ("/api/v1/overview", queries.overview, _overview_args, True),
    ("/api/v1/sites/{domain}/verdicts", queries.site_verdicts, _site_verdicts_args, False),
    ("/api/v1/sites/{domain}", queries.site, _site_args, False),
    ("/api/v1/episodes", queries.episodes_list, _episodes_args, False),
    ("/api/v1/episodes/{episode_id}", queries.episode, _episode_args, False),
    ("/api/v1/orders", queries.orders_list, _orders_args, False),
    ("/api/v1/orders/{order_id}", queries.order, _order_args, False),
]


@dataclass(frozen=True)
class Table:
    """A CSV download: the rows of one query's data."""

    path: str
    query: Callable[..., Any]
    arguments: Arguments
    rows: Callable[[dict], list]
    columns: Sequence[str]
    filename: Callable[[dict], str]
    clock: bool = False


CSV = [
    Table("/api/v1/overview.csv", queries.overview, _all_sites, _overview_table, OVERVIEW_CSV,
          lambda d: "overview.csv", clock=True),
    Table("/api/v1/sites/{domain}/verdicts.csv", queries.site_verdicts, _site_verdicts_args,
          lambda d: d["verdicts"], VERDICT_CSV, lambda d: f"{d['domain']}-verdicts.csv"),
    Table("/api/v1/episodes.csv", queries.episodes_list, _episodes_args, lambda d: d["episodes"], EPISODE_CSV,
          lambda d: "episodes.csv"),
    Table("/api/v1/orders/{order_id}.csv", queries.order, _order_args, lambda d: d["enforcement"], ORDER_CSV,
          lambda d: f"{d['order_id']}.csv"),
]  # fmt: skip


def _json(ctx: WebContext, query: Callable[..., Any], arguments: Arguments) -> Handler:
    async def answer(request: Request) -> Response:
        args, kwargs = arguments(request)
        return JSONResponse(await compute(ctx, query, *args, **kwargs))

    return answer


def _csv(ctx: WebContext, table: Table) -> Handler:
    async def answer(request: Request) -> Response:
        args, kwargs = table.arguments(request)
        data = await compute(ctx, table.query, *args, **kwargs)
        return csv_response(table.rows(data), table.columns, table.filename(data))

    return answer


def api_routes(ctx: WebContext) -> list[Route]:
    async def measurement(request: Request) -> Response:
        return JSONResponse(await measurement_data(ctx, request.path_params["measurement_id"]))

    async def openapi(_request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def bundle(request: Request) -> Response:
        return await evidence_bundle(ctx, request.path_params["episode_id"])

    csv_routes = [Route(t.path, conditional(ctx, _csv(ctx, t), clock=t.clock)) for t in CSV]
    json_routes = [
        Route(path, conditional(ctx, _json(ctx, query, arguments), clock=clock))
        for path, query, arguments, clock in JSON
    ]
    return [
        Route("/api/v1/explorer/openapi.json", conditional(ctx, openapi)),
        # CSV first: "/api/v1/orders/{order_id}" would take "O1.csv" as an id.
        *csv_routes,
        Route("/api/v1/episodes/{episode_id}/evidence.zip", bundle),
        *json_routes,
        Route(
            "/api/v1/measurements/{measurement_id}", conditional(ctx, measurement), methods=["GET", "HEAD"]
        ),
    ]


async def measurement_data(ctx: WebContext, measurement_id: str) -> dict:
    if len(measurement_id) > 64:
        raise HTTPException(404, "no such measurement")
    snap = await ctx.snapshot()

    def run() -> dict:
        return queries.measurement(snap, ctx.source, measurement_id)

    try:
        return await trio.to_thread.run_sync(run, limiter=ctx.db_limiter)
    except queries.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


async def evidence_bundle(ctx: WebContext, episode_id: str) -> Response:
    snap = await ctx.snapshot()
    try:
        summary = queries.episode_summary(snap, snap.episodes.iloc[snap.episode_rows[episode_id]])
    except KeyError:
        raise HTTPException(404, f"no episode {episode_id}") from None

    def run() -> bytes:
        return build_bundle(ctx.source.read_url, summary, snap.orders)

    body = await trio.to_thread.run_sync(run, limiter=ctx.bundle_limiter)
    name = folder_name(summary["domain"], episode_id)
    return Response(
        body,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}.zip"', "Cache-Control": "no-store"},
    )

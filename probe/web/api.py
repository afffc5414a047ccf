"""``/api/v1/``: every page's data as JSON (the same dicts the pages render), CSV tables,
and the episode evidence bundle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from probe.web import params, queries
from probe.web.bundle import build_bundle, folder_name
from probe.web.context import WebContext
from probe.web.csvout import csv_response
from probe.web.openapi import openapi_document

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
EPISODE_CSV = tuple(
    [
        "episode_id", "domain", "probe_asn", "network", "blocking", "confirmed", "first_blocked",
        "last_blocked", "last_accessible_before", "first_accessible_after", "duration_days_min",
        "duration_days_max", "measurements_blocked", "measurements_total", "ongoing",
    ]
)  # fmt: skip
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
ORDER_CSV = (
    "order_id",
    "domain",
    "probe_asn",
    "network",
    "status",
    "first_blocked",
    "last_blocked",
    "enforcement_lag_days",
    "ordered_days",
    "blocked_days_min",
    "blocked_days_max",
    "days_past_order_end",
    "days_after_withdrawal",
    "measurements_blocked",
    "measurements_total",
    "ongoing",
    "episode_ids",
)


async def compute(ctx: WebContext, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a query in a worker thread (pages never block the event loop); NotFound is a 404."""
    snap = await ctx.snapshot()

    def run() -> Any:
        return fn(snap, *args, **kwargs)

    try:
        return await trio.to_thread.run_sync(run, limiter=ctx.db_limiter)
    except queries.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


def api_routes(ctx: WebContext) -> list[Route]:
    async def overview(request: Request) -> Response:
        return JSONResponse(await compute(ctx, queries.overview, **params.overview_filters(request)))

    async def overview_csv(request: Request) -> Response:
        filters = params.overview_filters(request)
        filters["limit"] = queries.MAX_LIMIT
        data = await compute(ctx, queries.overview, **filters)
        labels = {n["asn"]: n["label"] for n in data["networks"]}
        rows = [
            {"domain": s["domain"], "category": s["category"], "network": labels.get(c["asn"]), **c}
            for s in data["sites"]
            for c in s["cells"]
            if c["status"] is not None
        ]
        return csv_response(rows, OVERVIEW_CSV, "overview.csv")

    async def site(request: Request) -> Response:
        return JSONResponse(await compute(ctx, queries.site, request.path_params["domain"]))

    async def site_verdicts(request: Request) -> Response:
        data = await compute(
            ctx,
            queries.site_verdicts,
            request.path_params["domain"],
            asn=params.integer(request, "asn"),
            **params.page(request),
        )
        return JSONResponse(data)

    async def site_verdicts_csv(request: Request) -> Response:
        data = await compute(
            ctx,
            queries.site_verdicts,
            request.path_params["domain"],
            asn=params.integer(request, "asn"),
            **params.page(request),
        )
        return csv_response(data["verdicts"], VERDICT_CSV, f"{data['domain']}-verdicts.csv")

    async def episodes(request: Request) -> Response:
        data = await compute(
            ctx,
            queries.episodes_list,
            domain=params.text(request, "domain", 253),
            asn=params.integer(request, "asn"),
            **params.page(request),
        )
        return JSONResponse(data)

    async def episodes_csv(request: Request) -> Response:
        data = await compute(
            ctx,
            queries.episodes_list,
            domain=params.text(request, "domain", 253),
            asn=params.integer(request, "asn"),
            **params.page(request),
        )
        return csv_response(data["episodes"], EPISODE_CSV, "episodes.csv")

    async def episode(request: Request) -> Response:
        return JSONResponse(
            await compute(ctx, queries.episode, request.path_params["episode_id"], **params.page(request))
        )

    async def orders(request: Request) -> Response:
        return JSONResponse(await compute(ctx, queries.orders_list, **params.page(request)))

    async def order(request: Request) -> Response:
        return JSONResponse(await compute(ctx, queries.order, request.path_params["order_id"]))

    async def order_csv(request: Request) -> Response:
        data = await compute(ctx, queries.order, request.path_params["order_id"])
        return csv_response(data["enforcement"], ORDER_CSV, f"{data['order_id']}.csv")

    async def measurement(request: Request) -> Response:
        return JSONResponse(await measurement_data(ctx, request.path_params["measurement_id"]))

    async def openapi(_request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def bundle(request: Request) -> Response:
        return await evidence_bundle(ctx, request.path_params["episode_id"])

    return [
        Route("/api/v1/explorer/openapi.json", openapi),
        Route("/api/v1/overview", overview),
        Route("/api/v1/overview.csv", overview_csv),
        Route("/api/v1/sites/{domain}/verdicts.csv", site_verdicts_csv),
        Route("/api/v1/sites/{domain}/verdicts", site_verdicts),
        Route("/api/v1/sites/{domain}", site),
        Route("/api/v1/episodes.csv", episodes_csv),
        Route("/api/v1/episodes", episodes),
        Route("/api/v1/episodes/{episode_id}/evidence.zip", bundle),
        Route("/api/v1/episodes/{episode_id}", episode),
        Route("/api/v1/orders", orders),
        Route("/api/v1/orders/{order_id}.csv", order_csv),
        Route("/api/v1/orders/{order_id}", order),
        Route("/api/v1/measurements/{measurement_id}", measurement, methods=["GET", "HEAD"]),
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

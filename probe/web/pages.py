"""The HTML pages, ``/{lang}/...``: each renders its query's data through a template."""

from __future__ import annotations

from typing import Any

import trio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from probe.web import i18n, params, queries
from probe.web.api import compute, evidence_bundle, measurement_data
from probe.web.cache import Snapshot
from probe.web.context import WebContext
from probe.web.render import render, simulated_banner


def language(request: Request) -> str:
    lang = request.path_params.get("lang", "en")
    if lang not in i18n.LANGUAGES:
        raise HTTPException(404, "unknown language")
    return lang


def alternates(request: Request, lang: str) -> dict[str, str]:
    """The same page in each language (the switch keeps the page and its filters)."""
    rest = request.url.path[len(lang) + 1 :]
    query = f"?{request.url.query}" if request.url.query else ""
    return {other: f"/{other}{rest}{query}" for other in i18n.LANGUAGES}


def simulated_counts(snap: Snapshot | None, name: str, data: dict[str, Any]) -> tuple[int, int]:
    """How many of the measurements behind a page are simulated or from a lab, of how many:
    the page's own (a measurement, an episode, a site) or, for overviews and lists, the
    whole database's.  A page whose data says it shows no simulated measurement has none."""
    if snap is None or data.get("simulated") is False:
        return 0, 0
    if name == "measurement.html":
        return 1, 1
    flags = snap.verdicts["simulated"].to_numpy() if len(snap.verdicts) else None
    if flags is None:
        return 0, 0
    if name == "episode.html" and data.get("episode_id") in snap.episode_rows:
        ids = snap.episodes.iloc[snap.episode_rows[data["episode_id"]]]["measurement_ids"]
        rows = [snap.rows[m] for m in ids if m in snap.rows]
        return int(flags[rows].sum()), len(rows)
    if name == "site.html":
        ranges = [span for (domain, _asn), span in snap.series.items() if domain == data.get("domain")]
        return sum(int(flags[a:b].sum()) for a, b in ranges), sum(b - a for a, b in ranges)
    if "simulated_count" not in snap.memo:
        snap.memo["simulated_count"] = int(flags.sum())
    return snap.memo["simulated_count"], len(flags)


def citations(lang: str, data: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """An episode's sentences to quote, the page's language first."""
    texts = data.get("citation") or {}
    order = [lang, *[code for code in i18n.LANGUAGES if code != lang]]
    return [(code, i18n.LANGUAGE_NAMES[code], [texts[code]]) for code in order if code in texts]


def page(request: Request, ctx: WebContext, name: str, **context: Any) -> HTMLResponse:
    lang = language(request)
    data = context.get("data") or {}
    count, total = simulated_counts(ctx.cache.snapshot, name, data)
    html = render(
        lang,
        name,
        alternates=alternates(request, lang),
        simulated=simulated_banner(lang, count, total),
        citations=citations(lang, data),
        local=ctx.config.mode == "local",
        query=dict(request.query_params),
        **context,
    )
    return HTMLResponse(html)


def page_routes(ctx: WebContext) -> list[Route]:
    async def root(request: Request) -> Response:
        accepted = request.headers.get("accept-language", "")
        for part in accepted.split(","):
            code = part.split(";")[0].strip().lower()[:2]
            if code in i18n.LANGUAGES:
                return RedirectResponse(f"/{code}/", status_code=302)
        return RedirectResponse("/en/", status_code=302)

    async def overview(request: Request) -> Response:
        language(request)
        data = await compute(ctx, queries.overview, **params.overview_filters(request))
        return page(request, ctx, "overview.html", data=data)

    async def site(request: Request) -> Response:
        language(request)
        data = await compute(ctx, queries.site, request.path_params["domain"])
        return page(request, ctx, "site.html", data=data)

    async def episodes(request: Request) -> Response:
        language(request)
        data = await compute(
            ctx, queries.episodes_list, asn=params.integer(request, "asn"), **params.page(request)
        )
        return page(request, ctx, "episodes.html", data=data)

    async def episode(request: Request) -> Response:
        language(request)
        data = await compute(ctx, queries.episode, request.path_params["episode_id"], **params.page(request))
        return page(request, ctx, "episode.html", data=data)

    async def bundle(request: Request) -> Response:
        language(request)
        return await evidence_bundle(ctx, request.path_params["episode_id"])

    async def orders(request: Request) -> Response:
        language(request)
        data = await compute(ctx, queries.orders_list, **params.page(request))
        return page(request, ctx, "orders.html", data=data)

    async def order(request: Request) -> Response:
        language(request)
        data = await compute(ctx, queries.order, request.path_params["order_id"])
        return page(request, ctx, "order.html", data=data)

    async def measurement(request: Request) -> Response:
        language(request)
        data = await measurement_data(ctx, request.path_params["measurement_id"])
        return page(request, ctx, "measurement.html", data=data)

    async def volunteer(request: Request) -> Response:
        language(request)
        if ctx.config.mode != "local":
            raise HTTPException(404, "the volunteer page exists only in local mode")
        data = await trio.to_thread.run_sync(volunteer_data, ctx)
        return page(request, ctx, "volunteer.html", data=data)

    return [
        Route("/", root),
        Route("/{lang}/", overview),
        Route("/{lang}/sites/{domain}", site),
        Route("/{lang}/episodes/", episodes),
        Route("/{lang}/episodes/{episode_id}/evidence.zip", bundle),
        Route("/{lang}/episodes/{episode_id}", episode),
        Route("/{lang}/orders/", orders),
        Route("/{lang}/orders/{order_id}", order),
        Route("/{lang}/measurements/{measurement_id}", measurement),
        Route("/{lang}/volunteer", volunteer),
    ]


def volunteer_data(ctx: WebContext) -> dict[str, Any]:
    """Consent, recent runs and bytes, schedule, upload queue: the volunteer's own machine only."""
    from probe.volunteer.consent import consent_record
    from probe.volunteer.schedule import next_scheduled_run

    return {
        "runs": ctx.source.runs(),
        "unsent": ctx.source.unsent(),
        "consent": consent_record(),
        "next_run": next_scheduled_run(),
    }

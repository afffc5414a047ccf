"""The HTML pages, ``/{lang}/...``: each renders its query's data through a template."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from probe.web import i18n, params, queries, rows
from probe.web.api import compute, evidence_bundle, measurement_data
from probe.web.cache import Snapshot
from probe.web.caching import Handler, conditional
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
    if snap is None or data.get("simulated") is False or not len(snap.verdicts):
        return 0, 0
    if name == "measurement.html":
        return 1, 1
    if name == "episode.html" and data.get("episode_id") in snap.episode_rows:
        return rows.simulated_count(
            snap, snap.episodes.iloc[snap.episode_rows[data["episode_id"]]]["measurement_ids"]
        )
    flags = snap.verdicts["simulated"].to_numpy()
    if name == "site.html":
        ranges = [span for (domain, _asn), span in snap.series.items() if domain == data.get("domain")]
        return sum(int(flags[a:b].sum()) for a, b in ranges), sum(b - a for a, b in ranges)
    total = rows.memo(snap, "simulated_count", lambda: int(flags[snap.live()].sum()))
    return total, snap.measurements


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


Arguments = Callable[[Request], tuple[tuple[Any, ...], dict[str, Any]]]


def _path(name: str) -> Arguments:
    return lambda request: ((request.path_params[name],), {})


def _paged(name: str | None = None) -> Arguments:
    def arguments(request: Request) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return ((request.path_params[name],) if name else ()), params.page(request)

    return arguments


def _episodes_filters(request: Request) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (), {"asn": params.integer(request, "asn"), **params.page(request)}


#: path, template, query, its arguments from the request, whether the page shows ages.
PAGES: list[tuple[str, str, Callable[..., Any], Arguments, bool]] = [
    ("/{lang}/", "overview.html", queries.overview, lambda r: ((), params.overview_filters(r)), True),
    ("/{lang}/sites/{domain}", "site.html", queries.site, _path("domain"), False),
    ("/{lang}/episodes/", "episodes.html", queries.episodes_list, _episodes_filters, False),
    ("/{lang}/episodes/{episode_id}", "episode.html", queries.episode, _paged("episode_id"), False),
    ("/{lang}/orders/", "orders.html", queries.orders_list, _paged(), False),
    ("/{lang}/orders/{order_id}", "order.html", queries.order, _path("order_id"), False),
]


def _view(ctx: WebContext, template: str, query: Callable[..., Any], arguments: Arguments) -> Handler:
    async def view(request: Request) -> Response:
        language(request)
        args, kwargs = arguments(request)
        data = await compute(ctx, query, *args, **kwargs)
        return page(request, ctx, template, data=data)

    return view


async def root(request: Request) -> Response:
    """``/``: the reader's language by ``Accept-Language``, English otherwise."""
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in i18n.LANGUAGES:
            return RedirectResponse(f"/{code}/", status_code=302, headers={"Vary": "Accept-Language"})
    return RedirectResponse("/en/", status_code=302, headers={"Vary": "Accept-Language"})


def page_routes(ctx: WebContext) -> list[Route]:
    from probe.web.volunteer import volunteer_routes  # it builds on this module

    async def bundle(request: Request) -> Response:
        language(request)
        return await evidence_bundle(ctx, request.path_params["episode_id"])

    async def measurement(request: Request) -> Response:
        language(request)
        data = await measurement_data(ctx, request.path_params["measurement_id"])
        return page(request, ctx, "measurement.html", data=data)

    views = [
        Route(path, conditional(ctx, _view(ctx, template, query, arguments), clock=clock))
        for path, template, query, arguments, clock in PAGES
    ]
    return [
        Route("/", root),
        *views,
        Route("/{lang}/episodes/{episode_id}/evidence.zip", bundle),
        Route("/{lang}/measurements/{measurement_id}", conditional(ctx, measurement)),
        *volunteer_routes(ctx),
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

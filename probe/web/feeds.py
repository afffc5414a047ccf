"""Atom feeds of episodes opened and closed: overall, per site, per network.

Why Atom: every newsroom tool and feed reader subscribes to it, with no account and no
data about the subscriber kept here.  Each episode gives an "opened" entry (at its first
blocked measurement) and, once closed, a "closed" entry (at the first accessible one).
An episode built from simulated or lab measurements says so in its entry's title and,
in the report's words (:func:`analysis.report_text.simulated_sentence`), in its summary:
a feed entry is read far from the page and its banner.
"""

from __future__ import annotations

from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from analysis import report_text
from probe.web import queries
from probe.web.caching import conditional
from probe.web.context import WebContext
from probe.web.pages import language
from probe.web.render import render

FEED_ENTRIES = 100


def feed_entries(
    snap: Any, *, domain: str | None = None, asn: int | None = None, lang: str = "en"
) -> list[dict[str, Any]]:
    entries = []
    for summary in queries.episode_records(snap):
        if domain is not None and summary["domain"] != queries.bare_domain(domain):
            continue
        if asn is not None and summary["probe_asn"] != asn:
            continue
        count, total = summary["simulated_measurements"], summary["measurements_total"]
        note = report_text.simulated_sentence(lang, count, total) if count else None
        entries.append(
            {"kind": "opened", "updated": summary["first_blocked"], "episode": summary, "note": note}
        )
        if not summary["ongoing"] and summary["first_accessible_after"]:
            updated = summary["first_accessible_after"]
            entries.append({"kind": "closed", "updated": updated, "episode": summary, "note": note})
    entries.sort(key=lambda e: e["updated"], reverse=True)
    return entries[:FEED_ENTRIES]


def feed_routes(ctx: WebContext) -> list[Route]:
    async def feed(request: Request) -> Response:
        lang = language(request)
        domain = request.path_params.get("domain")
        asn_text = request.path_params.get("asn")
        asn = None
        if asn_text is not None:
            cleaned = asn_text.upper().removeprefix("AS")
            if not cleaned.isdigit() or len(cleaned) > 10:
                return Response("not an AS number", status_code=404)
            asn = int(cleaned)
        snap = await ctx.snapshot()
        entries = await trio.to_thread.run_sync(lambda: feed_entries(snap, domain=domain, asn=asn, lang=lang))
        base = str(request.base_url).rstrip("/")
        scope = domain or (queries.label(snap, asn) if asn is not None else None)
        body = render(
            lang,
            "feed.atom",
            entries=entries,
            base=base,
            self_url=f"{base}{request.url.path}",
            scope=scope,
            updated=entries[0]["updated"] if entries else queries.iso(snap.built_at * 1e9),
        )
        return Response(body, media_type="application/atom+xml; charset=utf-8")

    paths = (
        "/{lang}/feeds/episodes.atom",
        "/{lang}/feeds/sites/{domain}.atom",
        "/{lang}/feeds/networks/{asn}.atom",
    )
    return [Route(path, conditional(ctx, feed)) for path in paths]

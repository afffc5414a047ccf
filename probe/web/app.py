"""The Explorer as one ASGI app (Starlette), standalone (``kuzot web``) or mounted in the collector."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from probe.web import i18n
from probe.web.api import api_routes
from probe.web.cache import AnalysisCache
from probe.web.context import WebConfig, WebContext
from probe.web.feeds import feed_routes
from probe.web.pages import page_routes
from probe.web.render import render
from probe.web.security import SecurityHeaders
from probe.web.source import Source


def create_web_app(cache: AnalysisCache, source: Source, config: WebConfig | None = None) -> SecurityHeaders:
    """The Explorer over an open read-only source and its analysis cache."""
    config = config or WebConfig()
    ctx = WebContext(cache, source, config)

    async def error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": detail}, status_code=status)
        lang = request.url.path.strip("/").split("/")[0]
        lang = lang if lang in i18n.LANGUAGES else "en"
        html = render(lang, "error.html", status=status, detail=detail, alternates={}, local=False, query={})
        return HTMLResponse(html, status_code=status)

    routes = [
        *api_routes(ctx),
        *feed_routes(ctx),
        *page_routes(ctx),
        Mount("/static", app=StaticFiles(packages=[("probe.web", "static")]), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: error, Exception: error})
    app.state.context = ctx
    return SecurityHeaders(app, max_age=config.max_age, context=ctx)


def open_explorer(db_url: str, orders, config: WebConfig | None = None):  # -> (app, Source)
    """Open ``db_url`` read-only, judge what it holds, and return the app and its source.
    Raises :class:`~probe.web.source.SourceError` for a database that cannot be read."""
    from probe.web.cache import provider_for

    source = Source(db_url)
    cache = AnalysisCache(provider_for(source), source, orders)
    cache.build()
    return create_web_app(cache, source, config), source

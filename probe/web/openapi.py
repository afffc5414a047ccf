"""The Explorer API's OpenAPI description (read-only GET endpoints, bounded lists)."""

from __future__ import annotations

from typing import Any

from probe import __version__
from probe.web.rows import DEFAULT_LIMIT, MAX_LIMIT


def _param(name: str, where: str, description: str, kind: str = "string", required: bool = False) -> dict:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": {"type": kind},
    }


_PAGE = [
    _param("limit", "query", f"rows per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})", "integer"),
    _param("offset", "query", "rows to skip", "integer"),
]
_FILTERS = [
    _param("category", "query", "Citizen Lab category code, e.g. NEWS"),
    _param("asn", "query", "probe network, e.g. 8449 or AS8449", "integer"),
    _param("from", "query", "from this date (UTC, YYYY-MM-DD)"),
    _param("to", "query", "until this date (UTC, YYYY-MM-DD)"),
]


def _get(summary: str, parameters: list[dict], media: str = "application/json") -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK", "content": {media: {"schema": {"type": "object"}}}},
                "304": {"description": "not modified since the ETag / Last-Modified the client sent"},
                "400": {"description": "a malformed parameter"},
                "404": {"description": "no such item"},
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    domain = _param("domain", "path", "site, e.g. azattyk.org (without www.)")
    episode = _param("episode_id", "path", "episode id (16 hex digits)")
    order = _param("order_id", "path", "order id from the orders file")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kuzot Explorer API",
            "version": __version__,
            "description": "Read-only views of judged measurements: the data behind every Explorer page. "
            "Times are ISO 8601 UTC; durations are brackets in days (min certainly blocked, max at most).",
        },
        "paths": {
            "/api/v1/overview": _get(
                "sites × networks: latest verdict and age, open episodes", _FILTERS + _PAGE
            ),
            "/api/v1/overview.csv": _get("the overview as CSV", _FILTERS, "text/csv"),
            "/api/v1/sites/{domain}": _get("per network: counts, timeline, episodes, orders", [domain]),
            "/api/v1/sites/{domain}/verdicts": _get(
                "a page of the site's verdicts, newest first", [domain, _FILTERS[1], *_PAGE]
            ),
            "/api/v1/sites/{domain}/verdicts.csv": _get(
                "the same as CSV", [domain, _FILTERS[1], *_PAGE], "text/csv"
            ),
            "/api/v1/episodes": _get(
                "episodes, newest first",
                [_param("domain", "query", "only this site"), _FILTERS[1], *_PAGE],
            ),
            "/api/v1/episodes.csv": _get("episodes as CSV", [_FILTERS[1], *_PAGE], "text/csv"),
            "/api/v1/episodes/{episode_id}": _get(
                "bounds with evidence, rules, orders, citations, measurements", [episode, *_PAGE]
            ),
            "/api/v1/episodes/{episode_id}/evidence.zip": _get(
                "signed report folder, zipped (check with kuzot verify after unzipping)",
                [episode],
                "application/zip",
            ),
            "/api/v1/orders": _get("blocking orders", _PAGE),
            "/api/v1/orders/{order_id}": _get("enforcement of one order per network", [order]),
            "/api/v1/orders/{order_id}.csv": _get("the same as CSV", [order], "text/csv"),
            "/api/v1/measurements/{measurement_id}": _get(
                "every observation, the verdict, control, signature",
                [_param("measurement_id", "path", "measurement id")],
            ),
        },
    }

"""Query parameters, parsed the same way for pages and API; bad values are a 400, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request


def integer(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    cleaned = raw.upper().removeprefix("AS")
    if not cleaned.isdigit() or len(cleaned) > 10:
        raise HTTPException(400, f"{name} must be a whole number")
    return int(cleaned)


def date(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(400, f"{name} must be a date, YYYY-MM-DD") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def text(request: Request, name: str, limit: int = 64) -> str | None:
    raw = request.query_params.get(name, "").strip()
    if len(raw) > limit:
        raise HTTPException(400, f"{name} is too long")
    return raw or None


def overview_filters(request: Request) -> dict:
    return {
        "category": text(request, "category"),
        "asn": integer(request, "asn"),
        "since": date(request, "from"),
        "until": date(request, "to"),
        "limit": integer(request, "limit"),
        "offset": integer(request, "offset"),
    }


def page(request: Request) -> dict:
    return {"limit": integer(request, "limit"), "offset": integer(request, "offset")}

"""Conditional requests: ETag and Last-Modified from the snapshot, 304 when unchanged.

Why validators from the snapshot rather than a hash of each body: every page is a
function of the URL and the snapshot (which never changes once built), so the validator
is known before the page is computed, and a newsroom's feed reader or a proxy asking
"anything new?" every minute costs a comparison, not a page.  The tag names this
process (a restart may bring other code or rules), the rules version and the snapshot's
number.  Pages showing ages ("3 hours ago") also change with the clock: their tag and
Last-Modified move on every ``max_age`` seconds, so a revalidated page never shows an
age older than a fresh one would by more than that.  The tags are weak: two bodies with
one tag mean the same data, not the same bytes (the overview prints when it was made).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate, parsedate_to_datetime

from starlette.requests import Request
from starlette.responses import Response

from probe.web.cache import Snapshot
from probe.web.context import WebContext

#: Changes with every start: the same snapshot number in another process is other data.
PROCESS_TAG = secrets.token_hex(4)

Handler = Callable[[Request], Awaitable[Response]]


def validators(snap: Snapshot, *, clock: int | None = None) -> tuple[str, float]:
    """The weak ETag and the Last-Modified time (seconds since the epoch) of pages built
    from ``snap``; ``clock`` (seconds) for pages whose text moves with time."""
    tag = f"{PROCESS_TAG}-{snap.rules_version}-{snap.version}"
    modified = snap.built_at
    if clock:
        bucket = int(time.time() // clock)
        tag += f"-{bucket}"
        modified = max(modified, float(bucket * clock))
    return f'W/"{tag}"', modified


def _tags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def unchanged(request: Request, etag: str, modified: float) -> bool:
    """True when the client's copy is current (If-None-Match wins over If-Modified-Since,
    and is compared weakly, as RFC 9110 asks for GET)."""
    match = request.headers.get("if-none-match")
    if match is not None:
        tags = _tags(match)
        return "*" in tags or etag.removeprefix("W/") in tags
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an unreadable date is no condition
    return int(modified) <= when


def conditional(ctx: WebContext, handler: Handler, *, clock: bool = False) -> Handler:
    """``handler`` answering 304 Not Modified to a client whose copy is current, and
    giving every successful answer its validators.

    The validators are taken before the handler runs: if a refresh lands meanwhile the
    page is newer than its tag says, which costs the client one more full answer later,
    never a stale page kept for current."""

    async def answer(request: Request) -> Response:
        snap = await ctx.snapshot()
        etag, modified = validators(snap, clock=ctx.config.max_age if clock else None)
        headers = {"ETag": etag, "Last-Modified": formatdate(modified, usegmt=True)}
        if unchanged(request, etag, modified):
            return Response(status_code=304, headers=headers)
        response = await handler(request)
        if response.status_code == 200:
            for name, value in headers.items():
                response.headers.setdefault(name, value)
        return response

    return answer

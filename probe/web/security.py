"""Headers every Explorer response carries: a strict CSP, no sniffing, no referrer, caching.

Why a pure ASGI middleware: it sees every response (pages, API, feeds, static files,
errors) without buffering bodies.  The policy allows scripts and styles from this origin
only, so a measured string that slipped past escaping still could not run: no inline
script, no inline style, no external fetch.
"""

from __future__ import annotations

from typing import Any

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=(), geolocation=(), camera=(), microphone=()"),
]


class SecurityHeaders:
    def __init__(self, app: Any, *, max_age: int = 60, context: Any = None) -> None:
        self.app = app
        #: The Explorer's :class:`~probe.web.context.WebContext` (for the command's background work).
        self.context = context
        self.cache_control = f"public, max-age={max_age}".encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cache_control = self.cache_control

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _HEADERS if k not in present]
                if b"cache-control" not in present:
                    ok = message["status"] < 400
                    headers.append((b"cache-control", cache_control if ok else b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

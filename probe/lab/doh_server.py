"""A DNS-over-HTTPS server for the lab, answering with a lab resolver's logic.

It lets tests exercise the probe's DoH control exactly as it runs against a public
resolver (HTTPS, RFC 8484 POST), without ever leaving loopback.
"""

from __future__ import annotations

import dns.message
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from probe.lab.dns_server import LabResolver

MAX_QUERY_BYTES = 4096


def create_doh_app(resolver: LabResolver) -> Starlette:
    async def query(request: Request) -> Response:
        if request.headers.get("content-type") != "application/dns-message":
            return Response("expected application/dns-message", status_code=415)
        body = await request.body()
        if len(body) > MAX_QUERY_BYTES:
            return Response("query too large", status_code=413)
        try:
            message = dns.message.from_wire(body)
        except Exception:  # any parser error means a bad request
            return Response("not a DNS message", status_code=400)
        replies = resolver._replies(message, "tcp")
        if not replies:
            return Response("resolver gave no answer", status_code=504)
        return Response(replies[0][1], media_type="application/dns-message")

    return Starlette(routes=[Route("/dns-query", query, methods=["POST"])])

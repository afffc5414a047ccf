"""DNS over HTTPS (RFC 8484): the DNS control when no control helper is available.

Why DoH for the control: a volunteer without a helper still needs *some* uncensored
view of DNS.  A public DoH resolver is reached over HTTPS, so an ISP that lies on port
53 cannot rewrite its answers without breaking TLS; comparing them with the ISP's
answers rules out (or reveals) DNS tampering, though not blocking at other layers.

The query is built with dnspython's message types and POSTed with our own httpx client
(not ``dnspython[doh]``, which pulls in a second HTTP stack).  Replies are parsed and
classified exactly as UDP replies are (:mod:`probe.steps.dns`).
"""

from __future__ import annotations

import dns.message
import dns.rdatatype
import httpx
import trio

from probe.failures import Failure, classify_failure
from probe.records import DnsObservation
from probe.steps.dns import _answers, _reply_failure

MAX_REPLY_BYTES = 64 * 1024
CONTENT_TYPE = "application/dns-message"


async def query_doh(
    hostname: str,
    query_type: str,
    url: str,
    *,
    obs_id: str,
    t0: float,
    timeout: float,  # noqa: ASYNC109 -- each step owns its own cancel scope
    client: httpx.AsyncClient,
    connect_ip: str | None = None,
) -> DnsObservation:
    """Ask the DoH server at ``url`` for ``hostname``'s ``query_type`` records.

    ``connect_ip`` pins the server's address (Host and SNI stay the URL's name), so the
    DoH server's own name is never resolved through the resolver under test.
    """
    rdtype = dns.rdatatype.from_text(query_type)
    query = dns.message.make_query(hostname, rdtype)
    query.id = 0  # RFC 8484 4.1: zero id for cache-friendliness
    obs = DnsObservation(
        id=obs_id,
        hostname=hostname,
        query_type=query_type,
        resolver=url,
        transport="doh",
        started=trio.current_time() - t0,
        finished=0.0,
    )
    target = httpx.URL(url)
    # identity, and raw bytes below: a DNS message is small, and a compressed one could
    # inflate to anything before the size check saw it.
    headers = {"content-type": CONTENT_TYPE, "accept": CONTENT_TYPE, "accept-encoding": "identity"}
    extensions: dict[str, str] = {}
    if connect_ip is not None:
        headers["host"] = target.host
        extensions["sni_hostname"] = target.host
        target = target.copy_with(host=connect_ip)
    with trio.move_on_after(timeout) as scope:
        try:
            status, body = await _post(client, target, query.to_wire(), headers, extensions)
            _record_reply(obs, status, body, rdtype)
        except (httpx.HTTPError, OSError, trio.BrokenResourceError) as exc:
            obs.failure = classify_failure(exc)
    if scope.cancelled_caught:
        obs.failure = Failure.GENERIC_TIMEOUT
    obs.finished = trio.current_time() - t0
    return obs


async def _post(
    client: httpx.AsyncClient,
    target: httpx.URL,
    wire: bytes,
    headers: dict[str, str],
    extensions: dict[str, str],
) -> tuple[int, bytes]:
    """POST the query; the status and at most one byte more than :data:`MAX_REPLY_BYTES`."""
    request = client.stream("POST", target, content=wire, headers=headers, extensions=extensions)
    async with request as response:
        body = b""
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > MAX_REPLY_BYTES:
                break
    return response.status_code, body


def _record_reply(obs: DnsObservation, status: int, body: bytes, rdtype: dns.rdatatype.RdataType) -> None:
    """Parse and classify the reply exactly as a UDP reply is."""
    if status != 200 or len(body) > MAX_REPLY_BYTES:
        obs.failure = Failure.DNS_SERVER_MISBEHAVING
        return
    try:
        reply = dns.message.from_wire(body)
    except Exception:  # hostile bytes may raise anything from the parser
        obs.failure = Failure.DNS_SERVER_MISBEHAVING
        return
    obs.rcode = dns.rcode.to_text(reply.rcode())
    obs.answers, obs.answers_dropped = _answers(reply)
    obs.failure = _reply_failure(reply, rdtype)

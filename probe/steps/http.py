"""The HTTP step: GET a URL from a chosen address, following redirects one hop at a time.

Why follow redirects ourselves: a blockpage is often *a redirect* (Homeline answers
``302 Location: http://homeline.kg/access/blockpage.html``), so each hop is evidence
and becomes its own :class:`HttpObservation`, in order.

Why one fresh transport per call, without keep-alive: httpx pools connections by
IP:port, not by SNI or Host, so a pooled connection made for one name could carry
another name's request.  The transport connects to the address it is given while
sending the real Host and SNI: the IP goes in the URL, the name in ``Host`` and in the
``sni_hostname`` extension, and httpx validates the certificate against that name.
The one exception is a connection the caller hands over (``connection``: the TLS
step's, made for this very name and address, see :mod:`probe.steps.reuse`): the
first request goes over it; every other request opens its own.
Why httpx's transport and not its client: the client reads no proxy settings from
the environment only when told, builds a "next request" from every ``Location``
(raising for ``mailto:``, so one hostile redirect became an exception instead of an
observation), and decodes bodies whole.  The transport does none of that; this
module follows redirects and decodes bodies itself.  Cookies a hop sets are sent on
the next hops of the same fetch, keyed by the URL's name, as a browser's would be
(sites' cookie checks redirect to themselves until the cookie comes back); nothing is
kept between fetches.

Redirect hops: a hop to the same host reuses the address; a hop to an IP literal goes
there; a hop to another host is resolved with ``resolve`` (its DNS observations are
the caller's to record) and goes to the first address.  Choices, documented here
because they shape the record:

- ``resolve`` is ``None``: following stops; the last observation is the redirect
  itself, with its ``Location`` header, which is the evidence (nothing is invented);
- ``resolve`` gives no address: one more observation for the new URL, with no address
  and failure ``dns_nxdomain_error`` (OONI's name for "could not resolve the host";
  the DNS observations hold the precise reason);
- a ``Location`` that is not an http(s) URL with a host (``mailto:``,
  ``javascript:``, ``data:``, ``http://``, an unparsable one): the redirect's own
  observation gets ``http_invalid_redirect_location_host``; more than
  ``max_redirects`` hops: ``http_too_many_redirects`` on the last one;
- a hop from a public address to a non-global one (a LAN such as 192.168.1.1,
  loopback, carrier-grade NAT): not followed; one more observation for the new URL
  and address, with no request sent and failure ``http_redirect_to_private_address``.
  A hostile site must not make the probe fetch, store and upload a page of the
  volunteer's own network.  A hop from a non-global address (an ISP's blockpage
  server on 10/8, or a lab) may go anywhere: that is where labs and intranets live.
  ``public_networks`` lets a lab declare some of its addresses public.

Bodies are streamed and decoded as they come: ``gzip``, ``x-gzip`` or ``deflate``
alone is decoded, never producing more than ``max_bytes`` *decoded* bytes (then
``body_truncated``, which is not a failure), so a decompression bomb costs at most
``max_bytes`` of memory and a moment of CPU.  Stacked codings (``gzip, gzip``) and
codings we did not ask for are not decoded: the body is kept as it came, and
``undecoded_encoding`` says so.  At most :data:`MAX_HEADERS` headers are stored
(``headers_dropped`` counts the rest); httpcore already refuses a response head over
100 KiB.  One deadline, ``timeout`` after the call starts, bounds every hop; the hop
it interrupts records ``generic_timeout_error`` with what it had read, so an endless
or dripping body ends there.  Time spent in ``resolve`` is bounded by the DNS steps'
own timeouts.  Outside cancellation propagates.
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpcore
import httpx
import trio

from probe.failures import Failure, classify_failure
from probe.records import HttpObservation
from probe.steps._ids import ObservationIds
from probe.steps.addresses import is_ip, leaves_public
from probe.steps.http_body import (
    BODY_SAMPLE_BYTES,
    MAX_BODY_BYTES,
    MAX_TITLE,
    Body,
    Decoder,
    content_codings,
    decoder_for,
    extract_title,
)
from probe.steps.http_urls import parse_url, redirect_target
from probe.steps.reuse import HandoverBackend, OpenConnection

#: A current desktop browser: the probe should look like a reader, not like a tool.
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)

_REQUEST_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "ru-KG,ru;q=0.9,ky;q=0.8,en;q=0.7",
    "Accept-Encoding": "gzip, deflate",
}

#: The most response headers one observation stores.  Real sites send a few dozen;
#: a hostile one sent 10,001, which would bloat every copy of the record.
MAX_HEADERS = 100

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: What a request can raise for reasons of the network or the server.
_REQUEST_ERRORS = (httpx.HTTPError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError)

Resolve = Callable[[str], Awaitable[list[str]]]


async def fetch(
    url: str,
    *,
    ip: str | None,
    ids: ObservationIds,
    t0: float,
    timeout: float,  # noqa: ASYNC109 -- the contract: each step owns its own cancel scope
    max_bytes: int = MAX_BODY_BYTES,
    context: ssl.SSLContext,
    source_address: str | None = None,
    resolve: Resolve | None = None,
    max_redirects: int = 10,
    public_networks: Sequence[str] = (),
    connection: OpenConnection | None = None,
) -> list[HttpObservation]:
    """GET ``url`` from ``ip`` (``None``: let the transport resolve the name) and follow
    redirects; one observation per hop, ids from ``ids.next("http")``.

    ``connection``: one the TCP (and TLS) steps opened, for the first request to go
    over instead of a new one when it is to ``ip`` at the URL's port under the URL's
    host as SNI (see :mod:`probe.steps.reuse`).  The fetch owns it from then on and
    closes it, used or not.

    ``public_networks`` (CIDRs) count as public for the redirect rule (see the module
    docstring); only labs set them.

    Never raises for network trouble.  Raises ValueError for a ``url`` that is not an
    http(s) URL with a host: that is the caller's mistake, not an observation.
    """
    backend = HandoverBackend()
    if connection is not None:
        backend.hand_over(connection)  # taken back and closed below if not used
    observations: list[HttpObservation] = []
    try:
        first = parse_url(url)
        port = first.port or (443 if first.scheme == "https" else 80)
        sni = first.raw_host.decode("ascii") if first.scheme == "https" else None
        if connection is not None and not connection.serves(ip, port, sni):
            await _close_quietly(backend.take_back())
        public = tuple(ipaddress.ip_network(network) for network in public_networks)
        deadline = trio.current_time() + timeout
        cookies = httpx.Cookies()  # a browser keeps a hop's cookies for the next (cookie checks)
        async with _transport(context, source_address, backend) as transport:
            hops = _Hops(transport, cookies, ids, t0, deadline, max_bytes)
            await _follow(hops, observations, url, ip, resolve, max_redirects, public)
    finally:
        await _close_quietly(backend.take_back())
    return observations


async def _close_quietly(stream: trio.abc.Stream | None) -> None:
    if stream is not None:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await trio.aclose_forcefully(stream)


def _transport(
    context: ssl.SSLContext, source_address: str | None, backend: HandoverBackend
) -> httpx.AsyncHTTPTransport:
    """httpx's transport, without keep-alive, over ``backend``.

    httpx has no parameter for httpcore's network backend, so its pool is built again
    with the same arguments plus the backend; httpx's request/response mapping and
    exception mapping (on which the failure strings depend) stay httpx's own.
    ``tests/test_http_step.py`` checks that the handover happens.
    """
    transport = httpx.AsyncHTTPTransport(verify=context, local_address=source_address, retries=0)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=context,
        max_keepalive_connections=0,
        local_address=source_address,
        retries=0,
        network_backend=backend,
    )
    return transport


@dataclass(frozen=True)
class _Hops:
    """What every hop of one fetch shares: its transport, cookie jar, ids, clock and caps."""

    transport: httpx.AsyncHTTPTransport
    cookies: httpx.Cookies
    ids: ObservationIds
    t0: float
    deadline: float
    max_bytes: int

    def not_sent(self, url: str, ip: str | None, failure: Failure) -> HttpObservation:
        """The observation of a hop that was not requested, and why."""
        now = trio.current_time() - self.t0
        obs_id = self.ids.next("http")
        return HttpObservation(id=obs_id, url=url, ip=ip, started=now, finished=now, failure=failure)


async def _follow(
    hops: _Hops,
    observations: list[HttpObservation],
    url: str,
    ip: str | None,
    resolve: Resolve | None,
    max_redirects: int,
    public: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> None:
    """The hops of one fetch, appended to ``observations`` as they are made."""
    current_url, current_ip = url, ip
    for hop in range(max_redirects + 1):
        obs = await _get(hops, current_url, current_ip)
        observations.append(obs)
        location = obs.header("location") if obs.status_code in _REDIRECT_STATUSES else None
        if obs.failure is not None or location is None:
            break
        next_url = redirect_target(current_url, location)
        if next_url is None:
            obs.failure = Failure.HTTP_INVALID_REDIRECT
            break
        if hop == max_redirects:
            obs.failure = Failure.HTTP_TOO_MANY_REDIRECTS
            break
        next_ip = current_ip
        next_host = next_url.raw_host.decode("ascii")  # .host would decode IDNA, and may fail
        if is_ip(next_host):
            next_ip = next_host  # nothing to resolve
        elif next_url.raw_host != httpx.URL(current_url).raw_host:
            if resolve is None:
                break  # the Location header is the record; see the module docstring
            addresses = await resolve(next_host)
            if not addresses:
                observations.append(hops.not_sent(str(next_url), None, Failure.DNS_NXDOMAIN))
                break
            next_ip = addresses[0]
        if next_ip is not None and leaves_public(obs.ip or current_ip, next_ip, public):
            observations.append(hops.not_sent(str(next_url), next_ip, Failure.HTTP_REDIRECT_TO_PRIVATE))
            break
        current_url, current_ip = str(next_url), next_ip


async def _get(hops: _Hops, url: str, ip: str | None) -> HttpObservation:
    """One GET; the observation has whatever arrived before a failure or the deadline."""
    started = trio.current_time() - hops.t0
    obs = HttpObservation(id=hops.ids.next("http"), url=url, ip=ip, started=started, finished=started)
    request_url, headers, extensions = _request_target(httpx.URL(url), ip)
    body = Body(hops.max_bytes)
    charset: str | None = None
    with trio.move_on_at(hops.deadline) as scope:
        try:
            # The jar sees the URL by name, as a browser would: cookies belong to the
            # site, not to the address the request happens to go to.
            # The jar is asked only when it holds something, and given a response only
            # when it sets something: each visit wraps the request in urllib's classes,
            # a cost every hop of every measurement paid for a jar that is nearly always empty.
            named = httpx.Request("GET", url)
            if len(hops.cookies.jar):
                hops.cookies.set_cookie_header(named)
                if "cookie" in named.headers:
                    headers = {**headers, "Cookie": named.headers["cookie"]}
            request = httpx.Request(
                "GET", request_url, headers={**_REQUEST_HEADERS, **headers}, extensions=extensions
            )
            response = await hops.transport.handle_async_request(request)
            try:
                response.request = named
                if "set-cookie" in response.headers:
                    with contextlib.suppress(Exception):  # a cookie the jar cannot read is dropped
                        hops.cookies.extract_cookies(response)
                charset = _read_head(obs, response, ip)
                await _read_body(obs, response, body)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    await response.aclose()
        except _REQUEST_ERRORS as exc:
            obs.failure = classify_failure(exc)
    if scope.cancelled_caught:
        obs.failure = Failure.GENERIC_TIMEOUT
    obs.finished = trio.current_time() - hops.t0
    if obs.status_code is not None:  # the body began, even if no byte of it came
        obs.body_length = body.length
        obs.body_sha256 = body.digest.hexdigest()
        obs.body_sample = bytes(body.sample)
        obs.body_truncated = body.truncated
        obs.title = extract_title(obs.body_sample, charset)
    return obs


def _read_head(obs: HttpObservation, response: httpx.Response, ip: str | None) -> str | None:
    """Record the status line and (at most :data:`MAX_HEADERS`) headers; returns the charset."""
    obs.status_code = response.status_code
    obs.http_version = response.http_version
    raw = response.headers.raw
    obs.headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw[:MAX_HEADERS]]
    obs.headers_dropped = max(0, len(raw) - MAX_HEADERS)
    obs.ip = _server_ip(response) or ip
    return response.charset_encoding


async def _read_body(obs: HttpObservation, response: httpx.Response, body: Body) -> None:
    """Stream the body into ``body``, decoded when its coding is one we decode."""
    codings = content_codings(response)
    decoder = decoder_for(codings)
    if decoder is None:
        obs.undecoded_encoding = ", ".join(codings)
        decoder = Decoder(None)
    async for chunk in response.aiter_raw():
        if body.add(decoder.decode(chunk, body.room)):
            break


def _request_target(url: httpx.URL, ip: str | None) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """The URL to connect to, and the Host header and SNI that name the real site."""
    if ip is None or is_ip(url.raw_host.decode("ascii")):
        return url.copy_with(fragment=None), {}, {}
    host = url.raw_host.decode("ascii")
    host_header = host if url.port is None else f"{host}:{url.port}"
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    return url.copy_with(host=ip, fragment=None), {"Host": host_header}, extensions


def _server_ip(response: httpx.Response) -> str | None:
    """The address the response came from, as the connection saw it."""
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    address = stream.get_extra_info("server_addr")
    return str(address[0]) if address else None


__all__ = [
    "BODY_SAMPLE_BYTES",
    "MAX_BODY_BYTES",
    "MAX_HEADERS",
    "MAX_TITLE",
    "USER_AGENT",
    "Resolve",
    "extract_title",
    "fetch",
    "redirect_target",
]

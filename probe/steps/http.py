"""The HTTP step: GET a URL from a chosen address, following redirects one hop at a time.

Why follow redirects ourselves: a blockpage is often *a redirect* (Homeline answers
``302 Location: http://homeline.kg/access/blockpage.html``), so each hop is evidence
and becomes its own :class:`HttpObservation`, in order.

Why one fresh client per call, without keep-alive: httpx pools connections by
IP:port, not by SNI or Host, so a pooled connection made for one name could carry
another name's request.  The client connects to the address it is given while sending
the real Host and SNI: the IP goes in the URL, the name in ``Host`` and in the
``sni_hostname`` extension, and httpx validates the certificate against that name.
It ignores proxy settings from the environment: a measurement goes where it says.

Redirect hops: a hop to the same host reuses the address; a hop to an IP literal goes
there; a hop to another host is resolved with ``resolve`` (its DNS observations are
the caller's to record) and goes to the first address.  Choices, documented here
because they shape the record:

- ``resolve`` is ``None``: following stops; the last observation is the redirect
  itself, with its ``Location`` header, which is the evidence (nothing is invented);
- ``resolve`` gives no address: one more observation for the new URL, with no address
  and failure ``dns_nxdomain_error`` (OONI's name for "could not resolve the host";
  the DNS observations hold the precise reason);
- a ``Location`` that is not an http(s) URL with a host: the redirect's own
  observation gets ``http_invalid_redirect_location_host``; more than
  ``max_redirects`` hops: ``http_too_many_redirects`` on the last one.

Bodies are streamed and read up to ``max_bytes`` (then ``body_truncated``, which is
not a failure).  One deadline, ``timeout`` after the call starts, bounds every hop;
the hop it interrupts records ``generic_timeout_error`` with what it had read.  Time
spent in ``resolve`` is bounded by the DNS steps' own timeouts.  Outside cancellation
propagates.
"""

from __future__ import annotations

import hashlib
import html
import ipaddress
import re
import ssl
from collections.abc import Awaitable, Callable

import httpx
import trio

from probe.failures import Failure, classify_failure
from probe.records import HttpObservation
from probe.steps._ids import ObservationIds

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

#: How much of the body the record keeps.
BODY_SAMPLE_BYTES = 64 * 1024

#: The longest title recorded, in characters.
MAX_TITLE = 200

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)

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
    max_bytes: int = 1 << 20,
    context: ssl.SSLContext,
    source_address: str | None = None,
    resolve: Resolve | None = None,
    max_redirects: int = 10,
) -> list[HttpObservation]:
    """GET ``url`` from ``ip`` (``None``: let the client resolve the name) and follow
    redirects; one observation per hop, ids from ``ids.next("http")``.

    Never raises for network trouble.  Raises ValueError for a ``url`` that is not an
    http(s) URL with a host: that is the caller's mistake, not an observation.
    """
    _parse_url(url)
    deadline = trio.current_time() + timeout
    transport = httpx.AsyncHTTPTransport(
        verify=context,
        local_address=source_address,
        retries=0,
        limits=httpx.Limits(max_keepalive_connections=0),
    )
    observations: list[HttpObservation] = []
    async with httpx.AsyncClient(
        transport=transport,
        headers=_REQUEST_HEADERS,
        follow_redirects=False,
        timeout=None,  # the deadline below is the only timeout
        trust_env=False,
    ) as client:
        current_url, current_ip = url, ip
        for hop in range(max_redirects + 1):
            obs = await _get(client, current_url, current_ip, ids.next("http"), t0, deadline, max_bytes)
            observations.append(obs)
            location = obs.header("location") if obs.status_code in _REDIRECT_STATUSES else None
            if obs.failure is not None or location is None:
                break
            try:
                next_url = httpx.URL(current_url).join(location).copy_with(fragment=None)
                _check_url(next_url)
            except (httpx.InvalidURL, ValueError):
                obs.failure = Failure.HTTP_INVALID_REDIRECT
                break
            if hop == max_redirects:
                obs.failure = Failure.HTTP_TOO_MANY_REDIRECTS
                break
            if _is_ip(next_url.host):
                current_ip = next_url.host  # nothing to resolve
            elif next_url.raw_host != httpx.URL(current_url).raw_host:
                if resolve is None:
                    break  # the Location header is the record; see the module docstring
                addresses = await resolve(next_url.raw_host.decode("ascii"))
                if not addresses:
                    now = trio.current_time() - t0
                    observations.append(
                        HttpObservation(
                            id=ids.next("http"),
                            url=str(next_url),
                            ip=None,
                            started=now,
                            finished=now,
                            failure=Failure.DNS_NXDOMAIN,
                        )
                    )
                    break
                current_ip = addresses[0]
            current_url = str(next_url)
    return observations


def _parse_url(text: str) -> httpx.URL:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {text!r} ({exc})") from None
    _check_url(url)
    return url


def _check_url(url: httpx.URL) -> None:
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise ValueError(f"not an http(s) URL with a host: {str(url)!r}")


class _Body:
    """The bytes of one response as they arrive, up to a limit."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.length = 0
        self.sample = bytearray()
        self.digest = hashlib.sha256()
        self.truncated = False

    def add(self, chunk: bytes) -> bool:
        """Take ``chunk``; ``True`` once the limit is reached and reading should stop."""
        room = self.max_bytes - self.length
        if len(chunk) > room:
            chunk = chunk[:room]
            self.truncated = True
        self.length += len(chunk)
        self.digest.update(chunk)
        if len(self.sample) < BODY_SAMPLE_BYTES:
            self.sample += chunk[: BODY_SAMPLE_BYTES - len(self.sample)]
        return self.truncated


async def _get(
    client: httpx.AsyncClient,
    url: str,
    ip: str | None,
    obs_id: str,
    t0: float,
    deadline: float,
    max_bytes: int,
) -> HttpObservation:
    """One GET; the observation has whatever arrived before a failure or the deadline."""
    started = trio.current_time() - t0
    obs = HttpObservation(id=obs_id, url=url, ip=ip, started=started, finished=started)
    request_url, headers, extensions = _request_target(httpx.URL(url), ip)
    body = _Body(max_bytes)
    charset: str | None = None
    with trio.move_on_at(deadline) as scope:
        try:
            async with client.stream("GET", request_url, headers=headers, extensions=extensions) as response:
                obs.status_code = response.status_code
                obs.http_version = response.http_version
                obs.headers = [
                    (name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers.raw
                ]
                obs.ip = _server_ip(response) or ip
                charset = response.charset_encoding
                async for chunk in response.aiter_bytes():
                    if body.add(chunk):
                        break
        except _REQUEST_ERRORS as exc:
            obs.failure = classify_failure(exc)
    if scope.cancelled_caught:
        obs.failure = Failure.GENERIC_TIMEOUT
    obs.finished = trio.current_time() - t0
    if obs.status_code is not None:  # the body began, even if no byte of it came
        obs.body_length = body.length
        obs.body_sha256 = body.digest.hexdigest()
        obs.body_sample = bytes(body.sample)
        obs.body_truncated = body.truncated
        obs.title = extract_title(obs.body_sample, charset)
    return obs


def _request_target(url: httpx.URL, ip: str | None) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """The URL to connect to, and the Host header and SNI that name the real site."""
    if ip is None or _is_ip(url.host):
        return url.copy_with(fragment=None), {}, {}
    host = url.raw_host.decode("ascii")
    host_header = host if url.port is None else f"{host}:{url.port}"
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    return url.copy_with(host=ip, fragment=None), {"Host": host_header}, extensions


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _server_ip(response: httpx.Response) -> str | None:
    """The address the response came from, as the connection saw it."""
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    address = stream.get_extra_info("server_addr")
    return str(address[0]) if address else None


def extract_title(sample: bytes, charset: str | None = None) -> str | None:
    """The first ``<title>`` of ``sample``: decoded leniently (the response's charset,
    else UTF-8, undecodable bytes replaced), entities resolved, whitespace collapsed,
    at most 200 characters; ``None`` without a complete title element."""
    match = _TITLE.search(sample)
    if match is None:
        return None
    raw = match.group(1)
    try:
        text = raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset name Python does not know
        text = raw.decode("utf-8", errors="replace")
    title = " ".join(html.unescape(text).split())
    return title[:MAX_TITLE]

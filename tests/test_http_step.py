"""The HTTP step against lab sites: pages, blockpages, redirects and broken servers.

The step connects to the lab address while sending the real Host and SNI, as it
does on the Internet; the sites run in a LabThread and everything stays on loopback.
"""

from __future__ import annotations

import functools
import hashlib
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

from probe.failures import Failure
from probe.lab.certs import LabCA
from probe.lab.runner import LabThread
from probe.lab.web_servers import (
    BLOCKPAGE_MARKER,
    BLOCKPAGE_TITLE,
    ELCAT_PHRASE,
    HOMELINE_BLOCKPAGE_URL,
    Behaviour,
    LabSite,
    WebLab,
    honest_page,
    honest_title,
)
from probe.records import HttpObservation
from probe.steps import http, tls
from probe.steps._ids import ObservationIds

CONTROL_SOURCE = "127.0.0.99"
TIMEOUT = 0.5
PAGE = honest_page("example.kg")


@pytest.fixture(scope="module")
def lab() -> Iterator[WebLab]:
    with LabThread() as thread, LabCA() as ca:
        yield WebLab(thread, ca=ca)


@pytest.fixture(scope="module")
def context(lab: WebLab) -> ssl.SSLContext:
    return tls.make_ssl_context(lab.ca.ca_pem_path)


async def start(method: Callable[..., LabSite], *args: Any, **kwargs: Any) -> LabSite:
    """Start a lab server from async code: LabThread.start blocks, so it runs in a worker thread."""
    return await trio.to_thread.run_sync(functools.partial(method, *args, **kwargs))


async def fetch(
    site: LabSite, context: ssl.SSLContext, host: str = "example.kg", **kwargs: Any
) -> list[HttpObservation]:
    options: dict[str, Any] = {"timeout": TIMEOUT, "ip": site.ip}
    options.update(kwargs)
    return await http.fetch(
        site.url(host), ids=ObservationIds(), t0=trio.current_time(), context=context, **options
    )


async def test_honest_http(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the site is honest, then one observation holds status, headers in order, title and body hash."""
    site = await start(lab.site, https=False)
    [obs] = await fetch(site, context)
    assert (obs.id, obs.url, obs.ip, obs.failure) == ("http/0", site.url("example.kg"), site.ip, None)
    assert (obs.status_code, obs.http_version) == (200, "HTTP/1.1")
    assert [name for name, _ in obs.headers] == ["Server", "Content-Type", "Connection", "Content-Length"]
    assert obs.header("content-length") == str(len(PAGE))
    assert obs.title == honest_title("example.kg")
    assert obs.body_length == len(PAGE)
    assert obs.body_sha256 == hashlib.sha256(PAGE).hexdigest()
    assert obs.body_sample == PAGE and not obs.body_truncated
    assert 0 <= obs.started <= obs.finished < TIMEOUT


async def test_honest_https_sends_host_and_sni(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the URL is https, then the step reaches the IP with the site's SNI and Host and validates it."""
    site = await start(lab.site, pages={"example.kg": PAGE})  # any other Host would get a 404
    [obs] = await fetch(site, context)
    assert obs.failure is None
    assert obs.status_code == 200
    assert obs.body_sha256 == hashlib.sha256(PAGE).hexdigest()


async def test_reset(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the site resets the connection, then the failure is connection_reset."""
    site = await start(lab.site, Behaviour.reset(), https=False)
    [obs] = await fetch(site, context)
    assert obs.failure == Failure.CONNECTION_RESET
    assert obs.status_code is None and obs.body_sha256 is None


async def test_host_reset(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the Host header is filtered, then the request is reset while another host is served."""
    site = await start(lab.site, Behaviour.host_reset("example.kg"), https=False)
    [blocked] = await fetch(site, context)
    [other] = await fetch(site, context, host="other.kg")
    assert blocked.failure == Failure.CONNECTION_RESET
    assert other.failure is None and other.title == honest_title("other.kg")


async def test_eof_before_response(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the site closes after the request without answering, then the failure is eof_error."""
    site = await start(lab.site, Behaviour.close(), https=False)
    [obs] = await fetch(site, context)
    assert obs.failure == Failure.EOF


async def test_blackhole(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the site never answers, then the step's timeout records generic_timeout_error."""
    site = await start(lab.site, Behaviour.blackhole())
    [obs] = await fetch(site, context)
    assert obs.failure == Failure.GENERIC_TIMEOUT
    assert TIMEOUT <= obs.finished - obs.started < TIMEOUT + 0.3


async def test_blockpage_200(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the site serves the blockpage with 200, then its title and ElCat's sentence are recorded."""
    site = await start(lab.site, Behaviour.blockpage_200())
    [obs] = await fetch(site, context)
    assert obs.failure is None and obs.status_code == 200
    assert obs.title == BLOCKPAGE_TITLE
    assert ELCAT_PHRASE.encode() in obs.body_sample
    assert BLOCKPAGE_MARKER.encode() in obs.body_sample


async def test_blockpage_redirect_without_resolver(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the site redirects elsewhere and no resolver is given, then the chain stops at the 302 and
    keeps its Location."""
    site = await start(lab.site, Behaviour.blockpage_redirect(), https=False)
    [obs] = await fetch(site, context)
    assert obs.failure is None
    assert obs.status_code == 302
    assert obs.header("Location") == HOMELINE_BLOCKPAGE_URL


async def test_redirect_to_other_host_is_resolved(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the redirect goes to another host, then it is resolved and the next hop is fetched there."""
    blockpage = await start(lab.blockpage, https=False)
    location = f"http://homeline.kg:{blockpage.port}/access/blockpage.html"
    site = await start(lab.site, Behaviour.blockpage_redirect(location))
    asked: list[str] = []

    async def resolve(name: str) -> list[str]:
        asked.append(name)
        return [blockpage.ip, "127.0.0.2"]

    first, second = await fetch(site, context, resolve=resolve)
    assert asked == ["homeline.kg"]
    assert (first.id, first.status_code, first.header("location")) == ("http/0", 302, location)
    assert (second.id, second.url, second.ip) == ("http/1", location, blockpage.ip)
    assert second.status_code == 200 and second.title == BLOCKPAGE_TITLE


async def test_redirect_to_unresolvable_host(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the redirect's host resolves to nothing, then one more hop records dns_nxdomain_error."""
    site = await start(lab.site, Behaviour.blockpage_redirect(), https=False)

    async def resolve(name: str) -> list[str]:
        return []

    first, second = await fetch(site, context, resolve=resolve)
    assert first.status_code == 302 and first.failure is None
    assert (second.url, second.ip, second.failure) == (HOMELINE_BLOCKPAGE_URL, None, Failure.DNS_NXDOMAIN)


async def test_too_many_redirects(lab: WebLab, context: ssl.SSLContext) -> None:
    """If a same-host redirect loops, then every hop reuses the address and the last records
    http_too_many_redirects."""
    loop = Behaviour.blockpage_redirect(f"http://example.kg:{lab.network.port}/again")
    site = await start(lab.site, loop, https=False)
    observations = await fetch(site, context, max_redirects=2)
    assert [o.id for o in observations] == ["http/0", "http/1", "http/2"]
    assert {o.ip for o in observations} == {site.ip}
    assert [o.failure for o in observations] == [None, None, Failure.HTTP_TOO_MANY_REDIRECTS]


async def test_invalid_redirect_location(lab: WebLab, context: ssl.SSLContext) -> None:
    """If Location is not an http(s) URL, then the redirect records http_invalid_redirect_location_host."""
    site = await start(lab.site, Behaviour.blockpage_redirect("ftp://example.kg/file"), https=False)
    [obs] = await fetch(site, context)
    assert obs.status_code == 302
    assert obs.failure == Failure.HTTP_INVALID_REDIRECT


async def test_endless_body_is_capped(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the body never ends, then reading stops at max_bytes with body_truncated and no failure."""
    site = await start(lab.site, Behaviour.endless_body())
    [obs] = await fetch(site, context, max_bytes=100_000)
    assert obs.failure is None
    assert obs.body_truncated is True
    assert obs.body_length == 100_000
    assert len(obs.body_sample) == http.BODY_SAMPLE_BYTES


async def test_drip_times_out_with_partial_body(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the body drips, then the timeout records generic_timeout_error with the bytes read so far."""
    site = await start(lab.site, Behaviour.drip(0.1), https=False)
    [obs] = await fetch(site, context)
    assert obs.failure == Failure.GENERIC_TIMEOUT
    assert obs.status_code == 200
    assert 2 <= obs.body_length <= 7
    assert obs.body_sample == PAGE[: obs.body_length]
    assert obs.body_sha256 == hashlib.sha256(obs.body_sample).hexdigest()
    assert obs.title is None


async def test_garbage(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the site answers with random bytes, then the failure is http_invalid_response."""
    site = await start(lab.site, Behaviour.garbage(), https=False)
    [obs] = await fetch(site, context)
    assert obs.failure == Failure.HTTP_INVALID_RESPONSE


async def test_untrusted_blockpage_server(lab: WebLab, context: ssl.SSLContext) -> None:
    """If an https URL leads to the blockpage server, then the failure is ssl_unknown_authority."""
    site = await start(lab.blockpage)
    [obs] = await fetch(site, context)
    assert obs.failure == Failure.SSL_UNKNOWN_AUTHORITY


async def test_hostname_mismatch(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the certificate is for another name, then the failure is ssl_invalid_hostname."""
    site = await start(lab.site, cert_names=("other.kg",))
    [obs] = await fetch(site, context)
    assert obs.failure == Failure.SSL_INVALID_HOSTNAME


async def test_source_address_sees_honest_site(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the control's source address is given, then a censoring site serves it the real page."""
    site = await start(lab.site, Behaviour.blockpage_200())
    [obs] = await fetch(site, context, source_address=CONTROL_SOURCE)
    assert obs.failure is None and obs.title == honest_title("example.kg")


async def test_outside_cancellation_propagates(lab: WebLab, context: ssl.SSLContext) -> None:
    """If an outer scope cancels the fetch, then the cancellation propagates instead of a timeout record."""
    site = await start(lab.site, Behaviour.drip(0.1))
    with trio.move_on_after(0.3) as outer:
        await fetch(site, context, timeout=5)
        pytest.fail("the fetch swallowed the outer cancellation")
    assert outer.cancelled_caught


async def test_rejects_non_http_url(context: ssl.SSLContext) -> None:
    """If the URL is not http(s), then fetch raises ValueError instead of recording a failure."""
    with pytest.raises(ValueError):
        await http.fetch(
            "ftp://example.kg/",
            ip="127.0.0.1",
            ids=ObservationIds(),
            t0=0.0,
            timeout=TIMEOUT,
            context=context,
        )


def test_extract_title() -> None:
    """If a title has entities, odd case, extra space or bad bytes, then it is cleaned; none gives None."""
    assert http.extract_title(b"<html><TITLE lang=ru>\n  Kloop &amp;  News \n</Title>") == "Kloop & News"
    assert http.extract_title("<title>Клооп</title>".encode("cp1251"), "cp1251") == "Клооп"
    assert http.extract_title(b"<title>\xff ok</title>", "no-such-charset") == "\ufffd ok"
    assert http.extract_title(b"<title>" + b"x" * 500 + b"</title>") == "x" * 200
    assert http.extract_title(b"<title>never closed") is None
    assert http.extract_title(b"<p>no title</p>") is None


def test_user_agent_looks_like_a_browser() -> None:
    """If a server logs the User-Agent, then it sees a common browser, not the tool."""
    assert http.USER_AGENT.startswith("Mozilla/5.0")
    assert "kuzot" not in http.USER_AGENT.lower() and "httpx" not in http.USER_AGENT.lower()


async def test_redirect_to_an_address_needs_no_resolver(lab: WebLab, context: ssl.SSLContext) -> None:
    """If Location names an IP address, then the next hop goes there without resolving anything."""
    target = await start(lab.site, https=False)
    location = f"http://{target.ip}:{target.port}/"
    site = await start(lab.site, Behaviour.blockpage_redirect(location), https=False)
    first, second = await fetch(site, context)
    assert first.status_code == 302
    assert (second.url, second.ip, second.status_code) == (location, target.ip, 200)

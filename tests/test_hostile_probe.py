"""The probe against hostile servers: each breaks one assumption, none may break the probe.

Every server is a real one in the loopback lab (probe/lab/web_servers.py,
probe/lab/dns_server.py); what each does and what the probe records instead is in
docs/hostile-input.md.
"""

from __future__ import annotations

import functools
import hashlib
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.failures import Failure
from probe.lab.certs import LabCA
from probe.lab.dns_server import Behaviour as DnsBehaviour
from probe.lab.dns_server import LabResolver, LabZone
from probe.lab.loopback import LoopbackLab, Scenario
from probe.lab.runner import LabThread
from probe.lab.web_servers import Behaviour, LabSite, WebLab, compressed_zeros, honest_page, honest_title
from probe.records import HttpObservation
from probe.run import RunPlan, execute_run
from probe.settings import Timeouts
from probe.steps import dns, http, tls
from probe.steps._ids import ObservationIds
from probe.steps.addresses import leaves_public
from probe.steps.http_body import Decoder
from probe.store import Store
from probe.targets import Target

TIMEOUT = 5.0
MAX_BYTES = 1 << 20


@pytest.fixture(scope="module")
def lab() -> Iterator[WebLab]:
    with LabThread() as thread, LabCA() as ca:
        yield WebLab(thread, ca=ca)


@pytest.fixture(scope="module")
def context(lab: WebLab) -> ssl.SSLContext:
    return tls.make_ssl_context(lab.ca.ca_pem_path)


async def start(method: Callable[..., LabSite], *args: Any, **kwargs: Any) -> LabSite:
    return await trio.to_thread.run_sync(functools.partial(method, *args, **kwargs))


async def fetch(site: LabSite, context: ssl.SSLContext, **kwargs: Any) -> list[HttpObservation]:
    options: dict[str, Any] = {"timeout": TIMEOUT, "ip": site.ip, "max_bytes": MAX_BYTES}
    options.update(kwargs)
    return await http.fetch(
        site.url("example.kg"), ids=ObservationIds(), t0=trio.current_time(), context=context, **options
    )


# --- redirects ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "mailto:editor@example.kg",
        "javascript:alert(1)",
        "data:text/html,<title>x</title>",
        "http://",
        "https://",
        "http:///path",
        "//",
        "http://[::1",
    ],
)
async def test_redirect_without_a_host_is_recorded(
    lab: WebLab, context: ssl.SSLContext, location: str
) -> None:
    """If a redirect's Location names no http(s) host, then its hop records http_invalid_redirect_location_host and nothing is followed."""
    site = await start(lab.site, Behaviour.blockpage_redirect(location), https=False)
    [obs] = await fetch(site, context)
    assert (obs.status_code, obs.header("location"), obs.failure) == (
        302,
        location,
        Failure.HTTP_INVALID_REDIRECT,
    )


async def test_refused_redirect_hop_is_connection_refused(lab: WebLab, context: ssl.SSLContext) -> None:
    """If a redirect leads to an address where nothing listens, then that hop records connection_refused."""
    nowhere = f"http://{lab.next_ip()}:{lab.network.port}/"
    site = await start(lab.site, Behaviour.blockpage_redirect(nowhere), https=False)
    first, second = await fetch(site, context)
    assert (first.status_code, first.failure) == (302, None)
    assert (second.url, second.status_code, second.failure) == (nowhere, None, Failure.CONNECTION_REFUSED)


async def test_redirect_from_public_to_private_is_not_followed(lab: WebLab, context: ssl.SSLContext) -> None:
    """If a site on a public address redirects to a non-global one, then no request goes there and the hop records http_redirect_to_private_address."""
    router = await start(lab.site, https=False, pages={"192.168.1.1": b"<title>Router admin</title>"})
    location = f"http://{router.ip}:{router.port}/"
    site = await start(lab.site, Behaviour.blockpage_redirect(location), https=False)
    first, second = await fetch(site, context, public_networks=[f"{site.ip}/32"])
    assert first.status_code == 302 and first.failure is None
    assert (second.url, second.ip, second.failure) == (location, router.ip, Failure.HTTP_REDIRECT_TO_PRIVATE)
    assert second.status_code is None and second.body_sample == b"" and second.title is None


async def test_redirect_to_a_name_on_a_private_address_is_not_followed(
    lab: WebLab, context: ssl.SSLContext
) -> None:
    """If a public site redirects to a name that resolves to a non-global address, then that hop is not requested either."""
    router = await start(lab.site, https=False)
    location = f"http://router.lan:{router.port}/"
    site = await start(lab.site, Behaviour.blockpage_redirect(location), https=False)

    async def resolve(name: str) -> list[str]:
        return [router.ip]

    _first, second = await fetch(site, context, resolve=resolve, public_networks=[f"{site.ip}/32"])
    assert (second.url, second.ip, second.failure) == (location, router.ip, Failure.HTTP_REDIRECT_TO_PRIVATE)


async def test_redirects_among_public_or_from_private_addresses_are_followed(
    lab: WebLab, context: ssl.SSLContext
) -> None:
    """If a redirect goes from public to public, or from a non-global address anywhere, then it is followed."""
    target = await start(lab.site, https=False)
    location = f"http://{target.ip}:{target.port}/"
    site = await start(lab.site, Behaviour.blockpage_redirect(location), https=False)
    both_public = [f"{site.ip}/32", f"{target.ip}/32"]
    for public in (both_public, [f"{target.ip}/32"], []):
        _first, second = await fetch(site, context, public_networks=public)
        assert (second.ip, second.status_code, second.failure) == (target.ip, 200, None), public


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("192.168.1.1", True),
        ("10.0.0.138", True),
        ("172.16.5.4", True),
        ("100.64.0.1", True),  # carrier-grade NAT: the ISP's own network
        ("169.254.169.254", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd00::1", True),
        ("::ffff:192.168.1.1", True),
        ("8.8.8.8", False),
        ("2001:4860:4860::8888", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_which_addresses_are_not_global(address: str, private: bool) -> None:
    """If an address is on a LAN, loopback, link-local or carrier-grade NAT, then a public site's redirect may not go there."""
    assert leaves_public("93.184.216.34", address, ()) is private
    assert leaves_public("192.168.1.1", address, ()) is False
    assert leaves_public(None, address, ()) is private


# --- bodies --------------------------------------------------------------------------------


async def test_stacked_gzip_bomb_is_not_decoded(lab: WebLab, context: ssl.SSLContext) -> None:
    """If a body is a gigabyte of zeros under `gzip, gzip`, then it is kept as it came (a few KB), marked undecoded, and memory stays small."""
    wire = await trio.to_thread.run_sync(compressed_zeros, "gzip, gzip", 1 << 30)
    site = await start(lab.site, Behaviour.bomb("gzip, gzip", 1 << 30), https=False)
    [obs] = await fetch(site, context)
    assert (obs.status_code, obs.failure, obs.undecoded_encoding) == (200, None, "gzip, gzip")
    assert obs.body_length == len(wire) < 10_000 and not obs.body_truncated
    assert obs.body_sha256 == hashlib.sha256(wire).hexdigest()


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate"])
async def test_one_coding_is_decoded_up_to_the_cap(
    lab: WebLab, context: ssl.SSLContext, encoding: str
) -> None:
    """If a single gzip or deflate body inflates far beyond max_bytes, then decoding stops at max_bytes decoded bytes with body_truncated."""
    site = await start(lab.site, Behaviour.bomb(encoding, 256 << 20), https=False)
    with trio.fail_after(TIMEOUT * 2):
        [obs] = await fetch(site, context, max_bytes=100_000)
    assert (obs.status_code, obs.failure, obs.undecoded_encoding) == (200, None, None)
    assert obs.body_length == 100_000 and obs.body_truncated
    assert obs.body_sample == bytes(http.BODY_SAMPLE_BYTES)
    assert obs.body_sha256 == hashlib.sha256(bytes(100_000)).hexdigest()


async def test_small_encoded_body_is_decoded_whole(lab: WebLab, context: ssl.SSLContext) -> None:
    """If a gzip body inflates to less than max_bytes, then the record holds the whole decoded body."""
    site = await start(lab.site, Behaviour.bomb("gzip", 5000), https=False)
    [obs] = await fetch(site, context)
    assert (obs.body_length, obs.body_truncated, obs.failure) == (5000, False, None)
    assert obs.body_sha256 == hashlib.sha256(bytes(5000)).hexdigest()


def test_deflate_without_zlib_wrapper_is_decoded() -> None:
    """If a server sends raw deflate as `deflate`, then the body is still decoded, as browsers do."""
    import zlib

    page = honest_page("example.kg")
    coder = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = coder.compress(page) + coder.flush()
    assert Decoder("deflate").decode(raw, 1 << 20) == page
    assert Decoder("deflate").decode(zlib.compress(page), 100) == page[:101]


async def test_endless_headers_are_an_invalid_response(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the response head never ends, then the hop records http_invalid_response quickly, not a timeout."""
    site = await start(lab.site, Behaviour.endless_headers(), https=False)
    [obs] = await fetch(site, context)
    assert obs.failure == Failure.HTTP_INVALID_RESPONSE
    assert obs.finished < TIMEOUT


async def test_endless_body_over_tls_stops_at_the_cap(lab: WebLab, context: ssl.SSLContext) -> None:
    """If an https body never ends, then reading stops at max_bytes with body_truncated and the title intact."""
    site = await start(lab.site, Behaviour.endless_body())
    [obs] = await fetch(site, context)
    assert (obs.failure, obs.body_length, obs.body_truncated) == (None, MAX_BYTES, True)


async def test_dripping_body_ends_at_the_step_deadline(lab: WebLab, context: ssl.SSLContext) -> None:
    """If the body comes a byte at a time, then the HTTP step's own deadline ends it with what had come."""
    site = await start(lab.site, Behaviour.drip(0.05), https=False)
    [obs] = await fetch(site, context, timeout=1.0)
    assert obs.failure == Failure.GENERIC_TIMEOUT and 0 < obs.body_length < 100
    assert 1.0 <= obs.finished < 3.0


async def test_many_headers_are_capped_and_counted(lab: WebLab, context: ssl.SSLContext) -> None:
    """If a response has 10,001 extra headers, then the first 100 are stored and the rest counted in headers_dropped."""
    site = await start(lab.site, Behaviour.many_headers(10_001), https=False)
    [obs] = await fetch(site, context)
    assert obs.failure is None and obs.status_code == 200
    assert len(obs.headers) == http.MAX_HEADERS
    assert obs.headers_dropped == 4 + 10_001 - http.MAX_HEADERS  # Server, Content-Type, Connection, Length
    assert obs.title == honest_title("example.kg")


# --- DNS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resolver() -> Iterator[tuple[LabResolver, tuple[str, int]]]:
    with LabThread() as thread:
        lab_resolver = LabResolver(LabZone({"flood.kg": ["127.0.0.5"], "many.kg": ["127.0.0.6"]}))
        address = thread.start(lab_resolver.serve, "127.0.0.1", 0)
        yield lab_resolver, address


async def test_dns_flood_is_capped_and_counted(resolver: tuple[LabResolver, tuple[str, int]]) -> None:
    """If a resolver floods a query with a thousand replies, then 16 extra responses are stored and the rest counted."""
    lab_resolver, address = resolver
    lab_resolver.set_lie("flood.kg", DnsBehaviour.flood())
    obs = await dns.query_udp(
        "flood.kg", "A", address, obs_id="dns/0", t0=trio.current_time(), timeout=2, window=0.5
    )
    assert obs.failure is None and obs.addresses() == ["127.0.0.5"]
    assert len(obs.extra_responses) == dns.MAX_EXTRA_RESPONSES
    assert obs.extra_responses_dropped > 0


async def test_dns_answers_are_capped_and_counted(resolver: tuple[LabResolver, tuple[str, int]]) -> None:
    """If a reply holds 500 addresses, then 64 are stored and the rest counted in answers_dropped."""
    lab_resolver, address = resolver
    many = [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(500)]
    lab_resolver.set_lie("many.kg", DnsBehaviour.address(*many))
    obs = await dns.query_udp(
        "many.kg", "A", address, obs_id="dns/0", t0=trio.current_time(), timeout=2, window=0.1
    )
    assert len(obs.answers) == dns.MAX_ANSWERS
    assert obs.answers_dropped == 500 - dns.MAX_ANSWERS


# --- the run ---------------------------------------------------------------------------------


def test_exception_in_one_target_is_that_targets_record(tmp_path: Path) -> None:
    """If measuring one target raises, then that target is stored with unknown_failure and the exception class, and the others are measured."""
    with LoopbackLab() as lab:
        honest = lab.add(Scenario("honest", "honest.kg", https=False))
        # Not an http(s) URL, so the HTTP step raises ValueError: a caller's mistake the
        # target list would normally catch, here standing for any bug.
        broken = Target(f"ftp://{honest.site.ip}:{honest.site.port}/")
        store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
        try:
            plan = RunPlan(targets=[broken, Target(honest.url)], settings=lab.probe_settings())
            result = trio.run(execute_run, plan, store)
            stored = {m.url: m for m in store.iter_measurements()}
        finally:
            store.close()
    assert result.run.status == "finished"
    assert set(stored) == {broken.url, honest.url}
    assert stored[broken.url].annotations == {"failure": "unknown_failure", "exception": "ValueError"}
    assert stored[honest.url].http[-1].status_code == 200


def test_run_deadline_holds_against_hostile_bodies(tmp_path: Path) -> None:
    """If every site drips, never ends or is a bomb, then a run with a short deadline ends on time and says deadline_hit."""
    with LoopbackLab() as lab:
        behaviours = [Behaviour.drip(0.5), Behaviour.bomb("gzip", 1 << 30), Behaviour.blackhole()]
        targets = [
            Target(lab.add(Scenario(f"s{i}", f"s{i}.kg", site=b, https=False)).url)
            for i, b in enumerate(behaviours)
        ]
        store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
        try:
            settings = lab.probe_settings(timeouts=Timeouts(dns=2, connect=30, tls=30, http=60))
            plan = RunPlan(targets=targets, settings=settings, deadline=2.0)
            started = time.monotonic()
            result = trio.run(execute_run, plan, store)
            elapsed = time.monotonic() - started
        finally:
            store.close()
    assert result.deadline_hit and result.run.status == "deadline"
    assert elapsed < 2.0 + 5.0  # the deadline plus the shielded saves, generously


def test_corrupt_compressed_body_is_a_decoding_error() -> None:
    """If a gzip body is not gzip, then decoding raises httpx's DecodingError, which the step records as http_invalid_response."""
    from probe.failures import classify_failure

    with pytest.raises(httpx.DecodingError) as caught:
        Decoder("gzip").decode(b"this is not gzip at all", 1000)
    assert classify_failure(caught.value) == Failure.HTTP_INVALID_RESPONSE


async def test_cookie_set_on_a_redirect_is_sent_on_the_next_hop(lab: WebLab, context: ssl.SSLContext) -> None:
    """If a site redirects to itself with a cookie and wants it back (an anti-bot check), then the next hop sends it and gets the page."""
    site = await start(lab.site, Behaviour.cookie_check())
    first, second = await fetch(site, context)
    assert (first.status_code, second.status_code, second.failure) == (302, 200, None)
    assert second.title == honest_title("example.kg")


async def test_nul_and_surrogates_never_reach_the_title(lab: WebLab, context: ssl.SSLContext) -> None:
    """If a page's title holds a NUL byte (or decodes to a lone surrogate), then the recorded title has U+FFFD there and the record serialises."""
    pages = {"example.kg": b"<title>Kloop\x00News</title>"}
    site = await start(lab.site, https=False, pages=pages)
    [obs] = await fetch(site, context)
    assert obs.title == "Kloop\ufffdNews"
    assert http.extract_title(b"<title>+2AA-x</title>", "utf-7") == "\ufffdx"
    assert http.extract_title(b"<title>a&#0;b</title>") == "a\ufffdb"


_LOCATION_PIECES = st.sampled_from(
    [
        "http:",
        "https:",
        "mailto:",
        "//",
        "/",
        "[",
        "]",
        ":",
        "@",
        "%",
        "xn--",
        "..",
        "?",
        "#",
        "\\",
        " ",
        "\t",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(_LOCATION_PIECES, st.text(max_size=8), st.integers(0, 99999).map(str)), max_size=8
    ).map("".join)
)
def test_any_location_gives_a_url_or_none(location: str) -> None:
    """If a Location header holds anything at all, then the redirect rule gives an http(s) URL with a host, or None, and never raises."""
    target = http.redirect_target("https://example.kg:8443/a/b?c", location)
    if target is not None:
        assert target.scheme in ("http", "https") and target.raw_host
        assert target.host  # decodable, so the request can be built
        for ip in ("127.0.0.1", "::1"):
            request_url, headers, _ = http._request_target(target, ip)
            httpx.Request("GET", request_url, headers=headers)
            httpx.Request("GET", str(target))  # the cookie jar's view of it

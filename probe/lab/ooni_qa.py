"""OONI's Web Connectivity QA scenarios, replayed in Kuzot's loopback lab.

OONI Probe's QA suite (``internal/webconnectivityqa`` in ooni/probe-cli) names about
fifty censorship situations, each with the outcome OONI expects (``accessible`` and
``blocking``).  Agreeing with it, case by case, is the best outside check of our
verdict rules; every case where Kuzot deliberately gives another answer is listed in
:attr:`QaCase.difference` and in ``docs/ooni-qa.md``.

Only the facts come from OONI (scenario names, what each does to the network, the
expected outcome); the lab set-ups are our own.  Each case says in which lab it runs:
``loopback`` (:class:`~probe.lab.loopback.LoopbackLab`, any user), ``netns`` (the
namespace lab's ``ooni-qa`` scenario, root), or ``none`` with the reason it cannot run.
The loopback lab lives on 127.0.0.0/8, so it cannot tell a private or loopback address
from a public one: a "bogon" there is an unused lab address (see ``docs/ooni-qa.md``).
"""

from __future__ import annotations

import contextlib
import functools
import socket
from dataclasses import dataclass

import idna
import trio

from probe.lab.dns_server import Behaviour as DnsBehaviour
from probe.lab.loopback import BLOCKPAGE_IP, LoopbackLab
from probe.lab.web_servers import PROBE_SOURCE, SitePolicy, honest_page, serve_site
from probe.lab.web_servers import Behaviour as WebBehaviour

#: The body of the lab's CDN challenge page (a Cloudflare-style CAPTCHA, status 503).
CAPTCHA_HTML = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    b"<h1>Checking your browser before accessing the site.</h1>"
    b"<p>Please complete the security check to continue.</p></body></html>"
)
#: How large the lab's "large file" is: well past the probe's default byte cap.
LARGE_FILE_BYTES = 3 << 20


@dataclass(frozen=True)
class QaCase:
    """One OONI QA scenario: OONI's expected outcome and Kuzot's."""

    name: str  # OONI's scenario name, unchanged
    what: str  # what the network does, in a sentence
    ooni_accessible: bool | None
    ooni_blocking: str | bool | None  # "dns", "tcp_ip", "tls", "http-failure", "http-diff", False, None
    kuzot_status: str
    kuzot_blocking: str | None = None
    lab: str = "loopback"  # "loopback", "netns" or "none"
    #: Why Kuzot deliberately answers otherwise than OONI ("" when it agrees).
    difference: str = ""
    #: Set when the case waits for another change (the test is xfail, not strict).
    pending: str = ""

    @property
    def agrees(self) -> bool:
        """Whether Kuzot's expected outcome is OONI's: blocked at the same layer;
        accessible where OONI says accessible; down or inconclusive where OONI says
        neither accessible nor blocked; inconclusive where OONI cannot tell."""
        if isinstance(self.ooni_blocking, str):
            return self.kuzot_status == "blocked" and self.kuzot_blocking == self.ooni_blocking
        if self.ooni_accessible is True:
            return self.kuzot_status == "accessible"
        if self.ooni_accessible is False:
            return self.kuzot_status in ("down", "inconclusive")
        return self.kuzot_status == "inconclusive"



CASES: tuple[QaCase, ...] = (
    QaCase("successWithHTTP", "nothing is blocked (HTTP)", True, False, "accessible"),
    QaCase("successWithHTTPS", "nothing is blocked (HTTPS)", True, False, "accessible"),
    QaCase(
        "badSSLWithExpiredCertificate",
        "the site's certificate has expired, for everyone",
        False,
        False,
        "down",
        lab="none",
        difference="not replayed: the lab CA issues no expired certificates; the same rule as "
        "badSSLWithWrongServerName applies (the control fails the same handshake: down)",
    ),
    QaCase(
        "badSSLWithWrongServerName",
        "the site's certificate is for another name, for everyone",
        False,
        False,
        "down",
    ),
    QaCase(
        "badSSLWithUnknownAuthorityWithConsistentDNS",
        "the site's certificate comes from an unknown CA, for everyone",
        False,
        False,
        "down",
    ),
    QaCase(
        "badSSLWithUnknownAuthorityWithInconsistentDNS",
        "the ISP resolver points to a blockpage server with its own CA",
        False,
        "dns",
        "blocked",
        "dns",
    ),
    QaCase(
        "cloudflareCAPTCHAWithHTTP",
        "a CDN answers the probe with a 503 CAPTCHA over plain HTTP",
        False,
        "http-diff",
        "blocked",
        "http-diff",
    ),
    QaCase(
        "cloudflareCAPTCHAWithHTTPS",
        "a CDN answers the probe with a 503 CAPTCHA over validated TLS",
        True,
        False,
        "accessible",
    ),
    QaCase(
        "controlFailureWithSuccessfulHTTPWebsite",
        "the control helper cannot be reached; the HTTP site loads",
        None,
        None,
        "accessible",
        difference="OONI leaves accessible unset; Kuzot calls a page that loaded with no blockpage "
        "fingerprint accessible (http.reached_without_control_page), never blocked",
    ),
    QaCase(
        "controlFailureWithSuccessfulHTTPSWebsite",
        "the control helper cannot be reached; the HTTPS site loads",
        True,
        False,
        "accessible",
    ),
    QaCase(
        "dnsBlockingAndroidDNSCacheNoData",
        "Android's getaddrinfo says android_dns_cache_no_data",
        False,
        "dns",
        "blocked",
        "dns",
        lab="none",
        difference="not replayed: Kuzot runs on desktop and server systems, not Android",
    ),
    QaCase(
        "dnsBlockingBOGON",
        "the ISP resolver answers a bogon address",
        False,
        "dns",
        "blocked",
        "dns",
        difference="in the loopback lab every address is a loopback one, so the bogon is an unused "
        "lab address; Kuzot reaches the site at the control's address (dns.control_addresses_reachable)",
    ),
    QaCase("dnsBlockingNXDOMAIN", "the ISP resolver says NXDOMAIN", False, "dns", "blocked", "dns"),
    QaCase(
        "dnsHijackingToLocalhostWithHTTP",
        "the ISP resolver answers 127.0.0.1 (HTTP)",
        False,
        "dns",
        "blocked",
        "dns",
        difference="the lab stands in an unused lab address for 127.0.0.1 (every lab address is loopback)",
    ),
    QaCase(
        "dnsHijackingToLocalhostWithHTTPS",
        "the ISP resolver answers 127.0.0.1 (HTTPS)",
        False,
        "dns",
        "blocked",
        "dns",
        difference="the lab stands in an unused lab address for 127.0.0.1 (every lab address is loopback)",
    ),
    QaCase(
        "dnsHijackingToProxyWithHTTPURL",
        "the ISP resolver points to a transparent proxy that serves the real page (HTTP)",
        True,
        False,
        "accessible",
    ),
    QaCase(
        "dnsHijackingToProxyWithHTTPSURL",
        "the ISP resolver points to a transparent proxy that passes TLS through (HTTPS)",
        True,
        False,
        "accessible",
    ),
    QaCase(
        "ghostDNSBlockingWithHTTP",
        "the name no longer exists, but the ISP resolver still answers a blockpage address (HTTP)",
        False,
        "dns",
        "blocked",
        "dns",
    ),
    QaCase(
        "ghostDNSBlockingWithHTTPS",
        "the name no longer exists, but the ISP resolver still answers a blockpage address (HTTPS)",
        False,
        "dns",
        "blocked",
        "dns",
    ),
    QaCase(
        "httpBlockingConnectionReset",
        "a middlebox resets the connection when it sees the Host header",
        False,
        "http-failure",
        "blocked",
        "http-failure",
    ),
    QaCase(
        "httpDiffWithConsistentDNS",
        "a middlebox answers with a blockpage over plain HTTP",
        False,
        "http-diff",
        "blocked",
        "http-diff",
    ),
    QaCase(
        "httpDiffWithInconsistentDNS",
        "the ISP resolver points to a blockpage server",
        False,
        "dns",
        "blocked",
        "dns",
    ),
    QaCase("idnaWithoutCensorshipLowercase", "http://яндекс.рф/, nothing blocked", True, False, "accessible"),
    QaCase(
        "idnaWithoutCensorshipWithFirstLetterUppercase",
        "http://Яндекс.рф/, nothing blocked",
        True,
        False,
        "accessible",
    ),
    QaCase("largeFileWithHTTP", "a page far larger than the byte cap (HTTP)", True, False, "accessible"),
    QaCase("largeFileWithHTTPS", "a page far larger than the byte cap (HTTPS)", True, False, "accessible"),
    QaCase(
        "localhostWithHTTP",
        "the site's own DNS answers a loopback address, for everyone (HTTP)",
        False,
        False,
        "down",
    ),
    QaCase(
        "localhostWithHTTPS",
        "the site's own DNS answers a loopback address, for everyone (HTTPS)",
        False,
        False,
        "down",
    ),
    QaCase(
        "redirectWithBrokenLocationForHTTP",
        "the site redirects to Location: http:// (no host), for everyone",
        False,
        "http-failure",
        "down",
        difference="the control follows the same broken redirect and fails the same way: the site "
        "fails for everyone, so Kuzot says down, not blocked",
    ),
    QaCase(
        "redirectWithBrokenLocationForHTTPS",
        "the site redirects to Location: https:// (no host), for everyone",
        False,
        "http-failure",
        "down",
        difference="as redirectWithBrokenLocationForHTTP",
    ),
    QaCase(
        "redirectWithConsistentDNSAndThenConnectionRefusedForHTTP",
        "a redirect to an HTTP URL whose address refuses the probe's connections",
        False,
        "http-failure",
        "blocked",
        "http-failure",
        lab="none",
        difference="not replayed: refusing one client's SYN needs a packet filter, and the namespace "
        "lab has no redirecting site yet; the step test records connection_refused on such a hop",
    ),
    QaCase(
        "redirectWithConsistentDNSAndThenConnectionRefusedForHTTPS",
        "a redirect to an HTTPS URL whose address refuses the probe's connections",
        False,
        "http-failure",
        "blocked",
        "http-failure",
        lab="none",
        difference="as redirectWithConsistentDNSAndThenConnectionRefusedForHTTP",
    ),
    QaCase(
        "redirectWithConsistentDNSAndThenConnectionResetForHTTP",
        "a redirect to an HTTP URL whose server resets the probe",
        False,
        "http-failure",
        "blocked",
        "http-failure",
    ),
    QaCase(
        "redirectWithConsistentDNSAndThenConnectionResetForHTTPS",
        "a redirect to an HTTPS URL whose server resets the probe",
        False,
        "http-failure",
        "blocked",
        "http-failure",
    ),
    QaCase(
        "redirectWithConsistentDNSAndThenNXDOMAIN",
        "a redirect to a name the ISP resolver says does not exist",
        False,
        "dns",
        "blocked",
        "dns",
    ),
    QaCase(
        "redirectWithConsistentDNSAndThenEOFForHTTP",
        "a redirect to an HTTP URL whose server closes on the probe",
        False,
        "http-failure",
        "blocked",
        "http-failure",
    ),
    QaCase(
        "redirectWithConsistentDNSAndThenEOFForHTTPS",
        "a redirect to an HTTPS URL whose server closes on the probe",
        False,
        "http-failure",
        "blocked",
        "http-failure",
    ),
    QaCase(
        "redirectWithConsistentDNSAndThenTimeoutForHTTP",
        "a redirect to an HTTP URL whose server never answers the probe",
        False,
        "http-failure",
        "blocked",
        "http-failure",
    ),
    QaCase(
        "redirectWithConsistentDNSAndThenTimeoutForHTTPS",
        "a redirect to an HTTPS URL whose server never answers the probe",
        False,
        "http-failure",
        "blocked",
        "http-failure",
    ),
    QaCase(
        "tcpBlockingConnectTimeout",
        "packets to the site's address are dropped",
        False,
        "tcp_ip",
        "blocked",
        "tcp_ip",
        lab="netns",
        difference="loopback cannot drop one client's SYNs; the namespace lab's ooni-qa scenario does "
        "(ip_blackhole)",
    ),
    QaCase(
        "tcpBlockingConnectionRefusedWithInconsistentDNS",
        "the ISP resolver points to an address that refuses connections",
        False,
        "dns",
        "blocked",
        "dns",
    ),
    QaCase(
        "throttlingWithHTTP",
        "the site's bytes are throttled until the request times out (HTTP)",
        False,
        "http-failure",
        "blocked",
        "http-failure",
    ),
    QaCase(
        "throttlingWithHTTPS",
        "the site's bytes are throttled until the request times out (HTTPS)",
        False,
        "http-failure",
        "blocked",
        "http-failure",
    ),
    QaCase(
        "tlsBlockingConnectionResetWithConsistentDNS",
        "a middlebox resets TLS handshakes naming the site",
        False,
        "http-failure",
        "blocked",
        "tls",
        difference="Kuzot's comparison handshake (an innocuous name to the same address) completes, "
        "so it names SNI filtering (tls) where OONI says http-failure: a more precise layer",
    ),
    QaCase(
        "tlsBlockingConnectionResetWithInconsistentDNS",
        "the ISP resolver points elsewhere and a middlebox resets TLS handshakes naming the site",
        False,
        "dns",
        "blocked",
        "tls",
        difference="the SNI evidence decides before the DNS comparison (rules 2026.12.1): the handshake "
        "is reset for the site's name at every address, its own included, while another name "
        "completes, so the name is filtered whatever the resolver says",
    ),
    QaCase("websiteDownNXDOMAIN", "the name does not exist, for everyone", False, False, "down"),
    QaCase("websiteDownNoAddrs", "the name has no address, for everyone", False, False, "down"),
    QaCase("websiteDownTCPConnect", "nothing listens on the URL's port, for everyone", False, False, "down"),
)


def case(name: str) -> QaCase:
    for item in CASES:
        if item.name == name:
            return item
    raise KeyError(name)


# --- lab set-ups -------------------------------------------------------------------------


async def serve_captcha(
    ip: str,
    port: int,
    *,
    tls: object | None,
    censored_sources: frozenset[str] = frozenset({PROBE_SOURCE}),
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A CDN edge: a 503 challenge page to the probe's address, the real page to others."""
    from probe.lab import web_servers as w

    listener = await w._listen(ip, port)
    with listener:
        async with trio.open_nursery() as nursery:
            task_status.started((ip, listener.getsockname()[1]))
            while True:
                sock, address = await listener.accept()
                nursery.start_soon(_captcha_connection, sock, tls, address[0] in censored_sources)


async def _captcha_connection(sock: trio.socket.SocketType, tls: object | None, challenge: bool) -> None:
    import ssl

    from probe.lab import web_servers as w

    with (
        sock,
        contextlib.suppress(
            OSError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, EOFError
        ),
    ):
        stream: trio.abc.Stream = trio.SocketStream(sock)
        if isinstance(tls, ssl.SSLContext):
            tls_stream = trio.SSLStream(stream, tls, server_side=True, https_compatible=True)
            await tls_stream.do_handshake()
            stream = tls_stream
        with trio.move_on_after(30):
            head = await w._read_head(stream)
            if head is None:
                return
            _, host = w._parse_request(head)
            if challenge:
                await stream.send_all(w._response(503, CAPTCHA_HTML, extra=[("CF-Ray", "0-LAB")]))
            else:
                await stream.send_all(w._response(200, honest_page(host)))
            with trio.move_on_after(1):
                await stream.aclose()


def _unused_address(lab: LoopbackLab) -> str:
    """A lab address where nothing listens: connects to it are refused."""
    return lab.web.next_ip()


def _site(
    lab: LoopbackLab,
    domain: str,
    *,
    https: bool,
    behaviour: WebBehaviour | None = None,
    everyone: bool = False,
    cert_names: list[str] | None = None,
    pages: object | None = None,
    in_zone: bool = True,
) -> tuple[str, int]:
    site = lab.web.site(
        behaviour,
        https=https,
        cert_names=cert_names or [domain],
        censored_sources=None if everyone else (PROBE_SOURCE,),
        # mypy: pages built as a plain dict of host to bytes, the Pages mapping's shape
        pages=pages,  # type: ignore[arg-type]
    )
    if in_zone:
        lab.zone.set(domain, [site.ip])
    return site.ip, site.port


def _url(https: bool, domain: str, port: int, path: str = "/") -> str:
    return f"{'https' if https else 'http'}://{domain}:{port}{path}"


def _redirecting(lab: LoopbackLab, slug: str, target_url: str) -> str:
    """An https "link shortener" redirecting everyone to ``target_url``."""
    domain = f"short-{slug}.qa.lab"
    _, port = _site(
        lab, domain, https=True, behaviour=WebBehaviour.blockpage_redirect(target_url), everyone=True
    )
    return _url(True, domain, port)


def setup(lab: LoopbackLab, qa: QaCase) -> str:
    """Build ``qa``'s situation in ``lab``; the URL the probe must measure."""
    name = qa.name
    slug = name.lower()
    domain = f"{slug}.qa.lab"
    if name in (
        "successWithHTTP",
        "successWithHTTPS",
        "controlFailureWithSuccessfulHTTPWebsite",
        "controlFailureWithSuccessfulHTTPSWebsite",
    ):
        https = "HTTPS" in name
        _, port = _site(lab, domain, https=https)
        return _url(https, domain, port)
    if name == "badSSLWithWrongServerName":
        _, port = _site(lab, domain, https=True, everyone=True, cert_names=["wrong.host.qa.lab"])
        return _url(True, domain, port)
    if name == "badSSLWithUnknownAuthorityWithConsistentDNS":
        ip = lab.web.next_ip()
        tls = lab.web.server_context([domain], ca=lab.rogue_ca)
        server = functools.partial(serve_site, tls=tls, policy=SitePolicy(None, censored_sources=None))
        ip, port = lab.thread.start(server, ip, lab.web.network.port)
        lab.zone.set(domain, [ip])
        return _url(True, domain, port)
    if name in ("badSSLWithUnknownAuthorityWithInconsistentDNS", "httpDiffWithInconsistentDNS"):
        https = name.startswith("badSSL")
        _, port = _site(lab, domain, https=https)
        lab.isp_resolver.set_lie(domain, DnsBehaviour.address(BLOCKPAGE_IP))
        return _url(https, domain, port)
    if name.startswith("cloudflareCAPTCHA"):
        https = name.endswith("HTTPS")
        captcha_tls = lab.web.server_context([domain]) if https else None
        ip, port = lab.thread.start(
            functools.partial(serve_captcha, tls=captcha_tls), lab.web.next_ip(), lab.web.network.port
        )
        lab.zone.set(domain, [ip])
        return _url(https, domain, port)
    if name == "dnsBlockingNXDOMAIN":
        _, port = _site(lab, domain, https=True)
        lab.isp_resolver.set_lie(domain, DnsBehaviour.nxdomain())
        return _url(True, domain, port)
    if name in (
        "dnsBlockingBOGON",
        "dnsHijackingToLocalhostWithHTTP",
        "dnsHijackingToLocalhostWithHTTPS",
        "tcpBlockingConnectionRefusedWithInconsistentDNS",
    ):
        https = name in ("dnsBlockingBOGON", "dnsHijackingToLocalhostWithHTTPS")
        _, port = _site(lab, domain, https=https)
        lab.isp_resolver.set_lie(domain, DnsBehaviour.address(_unused_address(lab)))
        return _url(https, domain, port)
    if name.startswith("dnsHijackingToProxy"):
        https = name.endswith("HTTPSURL")
        _, port = _site(lab, domain, https=https)
        proxy = lab.web.site(None, https=https, cert_names=[domain])  # serves the real page
        lab.isp_resolver.set_lie(domain, DnsBehaviour.address(proxy.ip))
        return _url(https, domain, port)
    if name.startswith("ghostDNSBlocking"):
        https = name.endswith("HTTPS")
        blockpage = lab.web.blockpage(https=https, untrusted_ca=lab.rogue_ca)
        lab.isp_resolver.set_lie(domain, DnsBehaviour.address(blockpage.ip))
        return _url(https, domain, blockpage.port)
    if name == "httpBlockingConnectionReset":
        _, port = _site(lab, domain, https=False, behaviour=WebBehaviour.host_reset(domain))
        return _url(False, domain, port)
    if name == "httpDiffWithConsistentDNS":
        _, port = _site(lab, domain, https=False, behaviour=WebBehaviour.blockpage_200())
        return _url(False, domain, port)
    if name.startswith("idnaWithoutCensorship"):
        written = "Яндекс.рф" if "Uppercase" in name else "яндекс.рф"
        ascii_name = idna.encode(written, uts46=True).decode("ascii")
        _, port = _site(lab, ascii_name, https=False)
        return _url(False, written, port)
    if name.startswith("largeFile"):
        https = name.endswith("HTTPS")
        body = (
            b"<html><head><title>Large file</title></head><body>"
            + b"0" * LARGE_FILE_BYTES
            + b"</body></html>"
        )
        _, port = _site(lab, domain, https=https, pages=lambda host: body)
        return _url(https, domain, port)
    if name.startswith("localhostWith"):
        https = name.endswith("HTTPS")
        lab.zone.set(domain, [_unused_address(lab)])
        return _url(https, domain, lab.web.network.port)
    if name.startswith("redirectWithBrokenLocation"):
        https = name.endswith("HTTPS")
        location = "https://" if https else "http://"
        _, port = _site(
            lab, domain, https=https, behaviour=WebBehaviour.blockpage_redirect(location), everyone=True
        )
        return _url(https, domain, port)
    if name.startswith("redirectWithConsistentDNSAndThen"):
        target_https = name.endswith("HTTPS")
        behaviour = {
            "ConnectionReset": WebBehaviour.reset(),
            "EOF": WebBehaviour.close(),
            "Timeout": WebBehaviour.blackhole(),
            "NXDOMAIN": None,
        }
        kind = next(k for k in behaviour if f"Then{k}" in name)
        target = f"target-{slug}.qa.lab"
        _, port = _site(lab, target, https=target_https, behaviour=behaviour[kind])
        if kind == "NXDOMAIN":
            lab.isp_resolver.set_lie(target, DnsBehaviour.nxdomain())
        return _redirecting(lab, slug, _url(target_https, target, port))
    if name.startswith("throttling"):
        https = name.endswith("HTTPS")
        _, port = _site(lab, domain, https=https, behaviour=WebBehaviour.drip(0.5))
        return _url(https, domain, port)
    if name == "tlsBlockingConnectionResetWithConsistentDNS":
        _, port = _site(lab, domain, https=True, behaviour=WebBehaviour.sni_reset(domain))
        return _url(True, domain, port)
    if name == "tlsBlockingConnectionResetWithInconsistentDNS":
        _, port = _site(lab, domain, https=True, behaviour=WebBehaviour.sni_reset(domain))
        proxy = lab.web.site(WebBehaviour.sni_reset(domain), https=True, cert_names=[domain])
        lab.isp_resolver.set_lie(domain, DnsBehaviour.address(proxy.ip))
        return _url(True, domain, port)
    if name == "websiteDownNXDOMAIN":
        return _url(False, domain, lab.web.network.port)
    if name == "websiteDownNoAddrs":
        lab.zone.set(domain, [])
        return _url(False, domain, lab.web.network.port)
    if name == "websiteDownTCPConnect":
        ip, port = _site(lab, domain, https=False)
        return _url(False, domain, _free_port(ip))
    raise KeyError(f"no loopback set-up for {name}")


def _free_port(ip: str) -> int:
    """A port on ``ip`` where nothing listens (bound and released at once)."""
    with socket.socket() as probe:
        probe.bind((ip, 0))
        return int(probe.getsockname()[1])


def loopback_cases() -> list[QaCase]:
    return [c for c in CASES if c.lab == "loopback"]

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
import ssl

import idna
import trio

from probe.lab.dns_server import Behaviour as DnsBehaviour
from probe.lab.http_wire import http_response, parse_request, read_request_head
from probe.lab.loopback import BLOCKPAGE_IP, LoopbackLab
from probe.lab.ooni_qa_cases import CAPTCHA_HTML, CASES, LARGE_FILE_BYTES, QaCase, case, loopback_cases
from probe.lab.web_servers import PROBE_SOURCE, SitePolicy, honest_page, serve_site
from probe.lab.web_servers import Behaviour as WebBehaviour

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
            head = await read_request_head(stream)
            if head is None:
                return
            _, host = parse_request(head)
            if challenge:
                await stream.send_all(http_response(503, CAPTCHA_HTML, extra=[("CF-Ray", "0-LAB")]))
            else:
                await stream.send_all(http_response(200, honest_page(host)))
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
    for family in (_setup_site, _setup_dns, _setup_http, _setup_redirects, _setup_tls_and_down):
        url = family(lab, name, slug, domain)
        if url is not None:
            return url
    raise KeyError(f"no loopback set-up for {name}")


def _setup_site(lab: LoopbackLab, name: str, slug: str, domain: str) -> str | None:
    """The site itself: success, bad certificates, a CDN's challenge."""
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
    return None


def _setup_dns(lab: LoopbackLab, name: str, slug: str, domain: str) -> str | None:
    """The ISP resolver lies: NXDOMAIN, a bogon, a proxy, a blockpage."""
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
    return None


def _setup_http(lab: LoopbackLab, name: str, slug: str, domain: str) -> str | None:
    """HTTP-level blocking, names and bodies that test the probe's handling."""
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
    return None


def _setup_redirects(lab: LoopbackLab, name: str, slug: str, domain: str) -> str | None:
    """Redirects, then throttling."""
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
    return None


def _setup_tls_and_down(lab: LoopbackLab, name: str, slug: str, domain: str) -> str | None:
    """TLS blocking, and sites down for everyone."""
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
    return None


def _free_port(ip: str) -> int:
    """A port on ``ip`` where nothing listens (bound and released at once)."""
    with socket.socket() as probe:
        probe.bind((ip, 0))
        return int(probe.getsockname()[1])


__all__ = [
    "CAPTCHA_HTML",
    "CASES",
    "LARGE_FILE_BYTES",
    "QaCase",
    "case",
    "loopback_cases",
    "serve_captcha",
    "setup",
]

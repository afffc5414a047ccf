"""OONI's Web Connectivity QA scenarios as data: one :class:`QaCase` per scenario, with
OONI's expected outcome and Kuzot's (the set-ups that build each in the loopback lab
are in :mod:`probe.lab.ooni_qa`).

Only the facts come from OONI (scenario names, what each does to the network, the
expected outcome).  Every case where Kuzot deliberately gives another answer says why
in :attr:`QaCase.difference` (and ``docs/ooni-qa.md`` lists them).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def loopback_cases() -> list[QaCase]:
    return [c for c in CASES if c.lab == "loopback"]

"""Verdict rules on hand-built records: one test per rule and per false-positive trap.

These are pure functions over archival records, so the tests build ``Measurement``
records directly (no network, no mocks of it).  Addresses are documentation or lab
ranges; ``PUBLIC`` stands for a site's real address as an honest resolver gives it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.bundled import fingerprint_dir
from analysis.fingerprints import FingerprintSet, load_fingerprints
from analysis.verdicts import RULES, RULES_VERSION, VERDICT_COLUMNS, judge, judge_all, verdicts_frame
from analysis.verdicts.rules import with_current_table
from probe.failures import Failure
from probe.records import (
    CertificateInfo,
    ControlObservations,
    DnsAnswer,
    DnsObservation,
    DnsResponse,
    HttpObservation,
    Measurement,
    TcpObservation,
    TlsObservation,
)

FPS = load_fingerprints()
NO_FPS = FingerprintSet()
HOST = "news.kg"
URL = f"https://{HOST}/"
PUBLIC = "93.184.216.34"  # strings only: nothing is ever sent
OTHER_PUBLIC = "151.101.1.69"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
GOOD_CERT = CertificateInfo("aa" * 32, f"CN={HOST}", "CN=Real CA", [HOST], "2026-01-01", "2027-01-01")
ROGUE_CERT = CertificateInfo("bb" * 32, f"CN={HOST}", "CN=ISP Filter", [HOST], "2026-01-01", "2027-01-01")
PAGE_TITLE = "Kyrgyzstan news: the latest reports"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "verdicts.md"


# --- record builders ----------------------------------------------------------------------


def dns(
    obs_id: str,
    addresses: list[str] | None = None,
    failure: Failure | None = None,
    *,
    host: str = HOST,
    qtype: str = "A",
    extra: list[list[str]] | None = None,
) -> DnsObservation:
    answers = [DnsAnswer("AAAA" if ":" in a else "A", a, 300) for a in addresses or []]
    extras = [
        DnsResponse(0.01, "NOERROR", [DnsAnswer("AAAA" if ":" in a else "A", a, 300) for a in reply])
        for reply in extra or []
    ]
    rcode = {Failure.DNS_NXDOMAIN: "NXDOMAIN", Failure.DNS_SERVER_FAILURE: "SERVFAIL"}.get(failure, "NOERROR")  # type: ignore[arg-type]
    return DnsObservation(
        obs_id, host, qtype, "192.0.2.53:53", "udp", 0.0, 0.01, failure, rcode, answers, extras
    )


def tcp(obs_id: str, ip: str = PUBLIC, failure: Failure | None = None) -> TcpObservation:
    return TcpObservation(obs_id, ip, 443, 0.01, 0.02, failure)


def tls(
    obs_id: str,
    ip: str = PUBLIC,
    failure: Failure | None = None,
    *,
    cert: CertificateInfo | None = GOOD_CERT,
    purpose: str = "target",
    server_name: str = HOST,
) -> TlsObservation:
    certs = [cert] if cert is not None and (failure is None or failure.startswith("ssl_")) else []
    validated = None if not certs else failure is None
    return TlsObservation(
        obs_id, ip, 443, server_name, 0.02, 0.05, failure, "TLSv1.3", None, None, certs, validated, purpose
    )


def http(
    obs_id: str,
    *,
    url: str = URL,
    ip: str | None = PUBLIC,
    status: int | None = 200,
    failure: Failure | None = None,
    title: str | None = PAGE_TITLE,
    length: int = 40_000,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    finished: float = 0.3,
) -> HttpObservation:
    if failure is not None and status is None:
        title, length = None, 0
    return HttpObservation(
        obs_id,
        url,
        ip,
        0.05,
        finished,
        failure,
        status,
        "HTTP/1.1",
        headers or [("Content-Type", "text/html; charset=utf-8")],
        title,
        len(body) if body else length,
        None,
        body,
    )


def control(
    *,
    dns_obs: list[DnsObservation] | None = None,
    tcp_obs: list[TcpObservation] | None = None,
    tls_obs: list[TlsObservation] | None = None,
    http_obs: list[HttpObservation] | None = None,
    source: str = "http://127.0.0.1:9999/api/v1/control",
    failure: Failure | None = None,
) -> ControlObservations:
    """The honest control: resolves PUBLIC, connects, validates, loads the page."""

    def prefixed(items: list, kind: str) -> list:  # type: ignore[type-arg]
        return [replace(o, id=f"control/{o.id}") for o in items]

    return ControlObservations(
        source=source,
        failure=failure,
        dns=prefixed(dns_obs if dns_obs is not None else [dns("dns/0", [PUBLIC])], "dns"),
        tcp=prefixed(tcp_obs if tcp_obs is not None else [tcp("tcp/0")], "tcp"),
        tls=prefixed(tls_obs if tls_obs is not None else [tls("tls/0")], "tls"),
        http=prefixed(http_obs if http_obs is not None else [http("http/0")], "http"),
    )


def measurement(
    *,
    dns_obs: list[DnsObservation] | None = None,
    tcp_obs: list[TcpObservation] | None = None,
    tls_obs: list[TlsObservation] | None = None,
    http_obs: list[HttpObservation] | None = None,
    ctrl: ControlObservations | None = None,
    url: str = URL,
    role: str = "target",
    run_id: str | None = "run-1",
    mid: str = "m-1",
) -> Measurement:
    """The honest probe side, with any part replaced."""
    return Measurement(
        id=mid,
        url=url,
        domain=url.split("/")[2],
        started_at=T0,
        run_id=run_id,
        role=role,
        probe_asn=8449,
        probe_cc="KG",
        dns=dns_obs if dns_obs is not None else [dns("dns/0", [PUBLIC])],
        tcp=tcp_obs if tcp_obs is not None else [tcp("tcp/0")],
        tls=tls_obs if tls_obs is not None else [tls("tls/0")],
        http=http_obs if http_obs is not None else [http("http/0")],
        control=ctrl,
    )


def verdict_of(m: Measurement, fps: FingerprintSet = FPS):  # type: ignore[no-untyped-def]
    v = judge(m, fingerprints=fps)
    assert v.rule_id in RULES
    assert v.rules_version == RULES_VERSION
    assert (v.blocking is not None) == (v.status == "blocked")
    assert v.reason and "\n" not in v.reason
    return v


PLAIN_URL = f"http://{HOST}/"


def plain_http(*, http_obs: list[HttpObservation]) -> Measurement:
    """A plain-HTTP measurement with the honest control: a middlebox can forge any page here."""
    ctrl = control(
        tcp_obs=[TcpObservation("tcp/0", PUBLIC, 80, 0.01, 0.02)],
        tls_obs=[],
        http_obs=[http("http/0", url=PLAIN_URL)],
    )
    return measurement(
        url=PLAIN_URL,
        tcp_obs=[TcpObservation("tcp/0", PUBLIC, 80, 0.01, 0.02)],
        tls_obs=[],
        http_obs=http_obs,
        ctrl=ctrl,
    )


# --- accessible and down --------------------------------------------------------------------


def test_honest_site_is_accessible() -> None:
    """If the probe and the control load the same page, then the site is accessible."""
    v = verdict_of(measurement(ctrl=control()))
    assert (v.status, v.blocking, v.rule_id) == ("accessible", None, "http.consistent_with_control")
    assert "http/0" in v.observation_ids and "control/http/0" in v.observation_ids


def test_slow_but_successful_is_accessible() -> None:
    """If the probe's page took many seconds but arrived intact, then the site is accessible."""
    v = verdict_of(measurement(http_obs=[http("http/0", finished=19.5)], ctrl=control()))
    assert v.status == "accessible"


def test_site_down_for_everyone_is_down() -> None:
    """If the probe's and the control's TLS handshakes both time out, then the site is down, not blocked."""
    m = measurement(
        tls_obs=[tls("tls/0", failure=Failure.GENERIC_TIMEOUT)],
        http_obs=[],
        ctrl=control(tls_obs=[tls("tls/0", failure=Failure.GENERIC_TIMEOUT)], http_obs=[]),
    )
    v = verdict_of(m)
    assert v.status == "down"


def test_site_down_with_nxdomain_for_everyone_is_down() -> None:
    """If both the probe's and the control's resolvers say NXDOMAIN, then the site is down."""
    m = measurement(
        dns_obs=[dns("dns/0", failure=Failure.DNS_NXDOMAIN)],
        tcp_obs=[],
        tls_obs=[],
        http_obs=[],
        ctrl=control(
            dns_obs=[dns("dns/0", failure=Failure.DNS_NXDOMAIN)], tcp_obs=[], tls_obs=[], http_obs=[]
        ),
    )
    v = verdict_of(m)
    assert (v.status, v.rule_id) == ("down", "dns.failure_in_control_too")


def test_server_error_everywhere_is_down() -> None:
    """If the server answers 503 to both vantages, then the site is down."""
    m = measurement(
        http_obs=[http("http/0", status=503, title=None, length=200)],
        ctrl=control(http_obs=[http("http/0", status=503, title=None, length=200)]),
    )
    assert verdict_of(m).status == "down"


def test_probe_reached_site_although_control_failed_is_accessible() -> None:
    """If the probe loaded the page but the control's request failed, then the site is accessible."""
    m = measurement(ctrl=control(http_obs=[http("http/0", status=None, failure=Failure.GENERIC_TIMEOUT)]))
    v = verdict_of(m)
    assert (v.status, v.rule_id) == ("accessible", "http.reached_without_control_page")


def test_probe_reached_site_without_any_control_is_accessible() -> None:
    """If there is no control but nothing failed and no fingerprint matched, then the site is accessible."""
    assert verdict_of(measurement(ctrl=None)).status == "accessible"


def test_missing_aaaa_answer_is_not_dns_blocking() -> None:
    """If an IPv4-only site has no AAAA answer but its A answer works, then the site is accessible."""
    m = measurement(
        dns_obs=[dns("dns/0", [PUBLIC]), dns("dns/1", failure=Failure.DNS_NO_ANSWER, qtype="AAAA")],
        ctrl=control(),
    )
    assert verdict_of(m).status == "accessible"


def test_cdn_with_disjoint_but_validating_addresses_is_accessible() -> None:
    """If the probe's DNS answers share nothing with the control's but TLS validated, then it is a CDN, not a lie."""
    m = measurement(
        dns_obs=[dns("dns/0", [OTHER_PUBLIC])],
        tcp_obs=[tcp("tcp/0", OTHER_PUBLIC)],
        tls_obs=[tls("tls/0", OTHER_PUBLIC)],
        http_obs=[http("http/0", ip=OTHER_PUBLIC)],
        ctrl=control(),
    )
    assert verdict_of(m).status == "accessible"


def test_cdn_with_disjoint_validating_addresses_is_not_dns_blocking_when_http_fails() -> None:
    """If a CDN's validated addresses then fail at HTTP, then the verdict is about HTTP, never DNS."""
    m = measurement(
        dns_obs=[dns("dns/0", [OTHER_PUBLIC])],
        tcp_obs=[tcp("tcp/0", OTHER_PUBLIC)],
        tls_obs=[tls("tls/0", OTHER_PUBLIC)],
        http_obs=[http("http/0", ip=OTHER_PUBLIC, status=None, failure=Failure.CONNECTION_RESET)],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert v.blocking != "dns"
    assert v.rule_id == "http.failure_vs_control"


def test_disjoint_unverified_addresses_are_inconclusive() -> None:
    """If the probe's DNS answers differ from the control's and could not be checked by TLS, then a CDN is not ruled out."""
    m = measurement(
        dns_obs=[dns("dns/0", [OTHER_PUBLIC])],
        tcp_obs=[tcp("tcp/0", OTHER_PUBLIC, Failure.GENERIC_TIMEOUT)],
        tls_obs=[],
        http_obs=[],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert (v.status, v.rule_id) == ("inconclusive", "dns.inconsistent_unverified")
    assert "cannot be ruled out" in v.reason


# --- probe offline ---------------------------------------------------------------------------


def _canary(ok: bool, run_id: str = "run-1", mid: str = "canary-1") -> Measurement:
    url = "https://canary.kuzot-lab.net/"
    if ok:
        return measurement(url=url, role="canary", run_id=run_id, mid=mid, ctrl=None)
    return measurement(
        url=url,
        role="canary",
        run_id=run_id,
        mid=mid,
        tcp_obs=[tcp("tcp/0", failure=Failure.NETWORK_UNREACHABLE)],
        tls_obs=[],
        http_obs=[],
    )


def test_probe_offline_is_never_blocked() -> None:
    """If every canary of a run failed, then each target of that run is probe_offline, never blocked."""
    blocked_looking = measurement(
        dns_obs=[dns("dns/0", failure=Failure.DNS_NXDOMAIN)],
        tcp_obs=[],
        tls_obs=[],
        http_obs=[],
        ctrl=control(),
    )
    out = judge_all([_canary(False), _canary(False, mid="canary-2"), blocked_looking], fingerprints=FPS)
    assert [v.measurement_id for v in out] == ["m-1"]
    assert (out[0].status, out[0].blocking, out[0].rule_id) == ("probe_offline", None, "probe.offline")


def test_one_working_canary_means_probe_online() -> None:
    """If at least one canary of the run loaded, then the targets are judged on their own observations."""
    target = measurement(ctrl=control())
    out = judge_all([_canary(False), _canary(True, mid="canary-2"), target], fingerprints=FPS)
    assert [v.status for v in out] == ["accessible"]


def test_canaries_of_another_run_do_not_count() -> None:
    """If only another run's canaries failed, then this run's targets are not probe_offline."""
    out = judge_all([_canary(False, run_id="run-2"), measurement(ctrl=control())], fingerprints=FPS)
    assert [v.status for v in out] == ["accessible"]


# --- DNS ---------------------------------------------------------------------------------------


def test_nxdomain_where_control_resolves_is_dns_blocking() -> None:
    """If the probe's resolver says NXDOMAIN while the control resolves the name, then it is DNS blocking."""
    m = measurement(
        dns_obs=[dns("dns/0", failure=Failure.DNS_NXDOMAIN)],
        tcp_obs=[],
        tls_obs=[],
        http_obs=[],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.confirmed, v.rule_id) == (
        "blocked",
        "dns",
        False,
        "dns.nxdomain_vs_control",
    )
    assert v.observation_ids == ["dns/0", "control/dns/0"]


def test_servfail_where_control_resolves_is_dns_blocking() -> None:
    """If the probe's resolver says SERVFAIL while the control resolves, then it is DNS blocking."""
    m = measurement(
        dns_obs=[dns("dns/0", failure=Failure.DNS_SERVER_FAILURE)],
        tcp_obs=[],
        tls_obs=[],
        http_obs=[],
        ctrl=control(),
    )
    assert verdict_of(m).rule_id == "dns.error_vs_control"


def test_dns_timeout_is_inconclusive() -> None:
    """If the probe's resolver times out while the control resolves, then a broken resolver is not ruled out."""
    m = measurement(
        dns_obs=[dns("dns/0", failure=Failure.GENERIC_TIMEOUT)],
        tcp_obs=[],
        tls_obs=[],
        http_obs=[],
        ctrl=control(),
    )
    assert verdict_of(m).status == "inconclusive"


def test_nxdomain_without_control_is_inconclusive() -> None:
    """If the probe gets NXDOMAIN and there is no control at all, then the verdict is inconclusive."""
    m = measurement(dns_obs=[dns("dns/0", failure=Failure.DNS_NXDOMAIN)], tcp_obs=[], tls_obs=[], http_obs=[])
    v = verdict_of(m)
    assert (v.status, v.rule_id) == ("inconclusive", "dns.failure_without_control")
    assert "ruled out" in v.reason


def test_nxdomain_with_doh_control_is_dns_blocking() -> None:
    """If only a DNS-over-HTTPS control exists and it resolves the name, then NXDOMAIN is DNS blocking."""
    doh = ControlObservations(
        source="doh:https://dns.example/dns-query", dns=[dns("control/dns/0", [PUBLIC])]
    )
    m = measurement(
        dns_obs=[dns("dns/0", failure=Failure.DNS_NXDOMAIN)], tcp_obs=[], tls_obs=[], http_obs=[], ctrl=doh
    )
    assert verdict_of(m).rule_id == "dns.nxdomain_vs_control"


def test_bogon_answer_is_confirmed_dns_blocking() -> None:
    """If the probe's resolver answers a private address while the control's are public, then it is confirmed DNS blocking."""
    m = measurement(
        dns_obs=[dns("dns/0", ["10.10.34.34"])],
        tcp_obs=[tcp("tcp/0", "10.10.34.34", Failure.GENERIC_TIMEOUT)],
        tls_obs=[],
        http_obs=[],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.confirmed, v.rule_id) == ("blocked", "dns", True, "dns.bogon_answer")
    assert "10.10.34.34" in v.reason and "private" in v.reason


def test_lab_private_range_internet_is_not_flagged_bogon() -> None:
    """If the control's answers are loopback too (the lab), then the probe's loopback answers are not bogons."""
    lab_site, lab_other = "127.12.34.5", "127.12.34.6"
    m = measurement(
        dns_obs=[dns("dns/0", [lab_site])],
        tcp_obs=[tcp("tcp/0", lab_site)],
        tls_obs=[tls("tls/0", lab_site)],
        http_obs=[http("http/0", ip=lab_site)],
        ctrl=control(
            dns_obs=[dns("dns/0", [lab_other])],
            tcp_obs=[tcp("tcp/0", lab_other)],
            tls_obs=[tls("tls/0", lab_other)],
            http_obs=[http("http/0", ip=lab_other)],
        ),
    )
    assert verdict_of(m).status == "accessible"
    failing = replace(m, tcp=[tcp("tcp/0", lab_site, Failure.CONNECTION_REFUSED)], tls=[], http=[])
    v = verdict_of(failing)
    assert v.rule_id != "dns.bogon_answer"
    assert v.status != "blocked"


def test_injected_reply_is_dns_blocking() -> None:
    """If one query got two differing replies and the control resolved the name, then it is DNS blocking."""
    m = measurement(
        dns_obs=[dns("dns/0", [OTHER_PUBLIC], extra=[[PUBLIC]])],
        tcp_obs=[tcp("tcp/0", OTHER_PUBLIC)],
        tls_obs=[tls("tls/0", OTHER_PUBLIC, Failure.CONNECTION_RESET, cert=None)],
        http_obs=[],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.rule_id) == ("blocked", "dns", "dns.injected_reply")
    assert "two different replies" in v.reason


def test_identical_duplicate_reply_is_not_injection() -> None:
    """If a resolver sends the same reply twice, then that is not injection."""
    m = measurement(dns_obs=[dns("dns/0", [PUBLIC], extra=[[PUBLIC]])], ctrl=control())
    assert verdict_of(m).status == "accessible"


def test_injected_lab_blockpage_address_is_confirmed() -> None:
    """If the injected first reply is the lab's blockpage address, then the DNS block is confirmed."""
    lab = "127.66.66.66"
    m = measurement(
        dns_obs=[dns("dns/0", [lab], extra=[["127.12.34.5"]])],
        tcp_obs=[tcp("tcp/0", lab)],
        tls_obs=[tls("tls/0", lab, Failure.SSL_UNKNOWN_AUTHORITY, cert=ROGUE_CERT)],
        http_obs=[http("http/0", ip=lab, status=None, failure=Failure.SSL_UNKNOWN_AUTHORITY)],
        ctrl=control(dns_obs=[dns("dns/0", ["127.12.34.5"])]),
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.confirmed, v.rule_id) == (
        "blocked",
        "dns",
        True,
        "dns.injected_blockpage_address",
    )


def test_blockpage_address_without_control_is_confirmed() -> None:
    """If the resolver answers a fingerprinted blockpage address and there is no control, then it is still confirmed."""
    lab = "127.66.66.66"
    m = measurement(
        dns_obs=[dns("dns/0", [lab])],
        tcp_obs=[tcp("tcp/0", lab)],
        tls_obs=[tls("tls/0", lab, Failure.SSL_UNKNOWN_AUTHORITY, cert=ROGUE_CERT)],
        http_obs=[http("http/0", ip=lab, status=None, failure=Failure.SSL_UNKNOWN_AUTHORITY)],
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.confirmed, v.rule_id) == ("blocked", "dns", True, "dns.blockpage_address")
    assert "kuzot.lab_dns" in v.reason


def test_lab_blockpage_address_with_loopback_control_is_confirmed() -> None:
    """If the control's answers are loopback too (the lab), then a fingerprinted loopback answer still confirms."""
    lab = "127.66.66.66"
    m = measurement(
        dns_obs=[dns("dns/0", [lab])],
        tcp_obs=[tcp("tcp/0", lab)],
        tls_obs=[tls("tls/0", lab, Failure.SSL_UNKNOWN_AUTHORITY, cert=ROGUE_CERT)],
        http_obs=[http("http/0", ip=lab, status=None, failure=Failure.SSL_UNKNOWN_AUTHORITY)],
        ctrl=control(dns_obs=[dns("dns/0", ["127.12.34.5"])]),
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.confirmed, v.rule_id) == ("blocked", "dns", True, "dns.blockpage_address")


def test_vague_loopback_answer_in_loopback_lab_is_not_blocking() -> None:
    """If a vague fingerprint (127.0.0.1) is answered where the control's internet is loopback too, then it is not DNS blocking."""
    vague = load_fingerprints([fingerprint_dir()])
    vague = FingerprintSet(
        dns=(*vague.dns, replace(vague.dns[0], name="t.vague", scope="vbw", pattern="127.0.0.1")),
        http=vague.http,
    )
    m = measurement(
        dns_obs=[dns("dns/0", ["127.0.0.1"])],
        tcp_obs=[tcp("tcp/0", "127.0.0.1", Failure.CONNECTION_REFUSED)],
        tls_obs=[],
        http_obs=[],
        ctrl=control(dns_obs=[dns("dns/0", ["127.12.34.5"])]),
    )
    assert verdict_of(m, vague).status != "blocked"


def test_resolver_lie_bypassed_by_other_resolver_is_not_blocked() -> None:
    """If one resolver lied but the page loaded consistently through another's address, then it is not blocked."""
    m = measurement(
        dns_obs=[dns("dns/0", ["127.66.66.66"]), dns("dns/1", [PUBLIC])],
        tcp_obs=[tcp("tcp/0", "127.66.66.66"), tcp("tcp/1")],
        tls_obs=[tls("tls/0", "127.66.66.66", Failure.SSL_UNKNOWN_AUTHORITY, cert=ROGUE_CERT), tls("tls/1")],
        http_obs=[http("http/0")],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert (v.status, v.rule_id) == ("inconclusive", "dns.lie_bypassed")


# --- TCP and TLS -----------------------------------------------------------------------------------


def test_connect_failure_where_control_connects_is_ip_blocking() -> None:
    """If every connect fails while the control connects to the same address, then it is TCP/IP blocking."""
    m = measurement(
        tcp_obs=[tcp("tcp/0", failure=Failure.GENERIC_TIMEOUT)], tls_obs=[], http_obs=[], ctrl=control()
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.rule_id) == ("blocked", "tcp_ip", "tcp.connect_vs_control")
    assert v.observation_ids == ["tcp/0", "control/tcp/0"]


def test_connect_failure_without_control_is_inconclusive() -> None:
    """If every connect fails and there is no control, then an outage cannot be ruled out."""
    m = measurement(tcp_obs=[tcp("tcp/0", failure=Failure.CONNECTION_REFUSED)], tls_obs=[], http_obs=[])
    v = verdict_of(m)
    assert v.status == "inconclusive"
    assert "ruled out" in v.reason


def test_connect_failure_with_dns_only_control_is_inconclusive() -> None:
    """If every connect fails and only a DNS control exists, then the verdict is inconclusive."""
    doh = ControlObservations(
        source="doh:https://dns.example/dns-query", dns=[dns("control/dns/0", [PUBLIC])]
    )
    m = measurement(
        tcp_obs=[tcp("tcp/0", failure=Failure.CONNECTION_REFUSED)], tls_obs=[], http_obs=[], ctrl=doh
    )
    assert verdict_of(m).status == "inconclusive"


def test_sni_reset_with_working_comparison_is_sni_filtering() -> None:
    """If the handshake for the site's name is reset but another name to the same address completes, then it is SNI filtering."""
    m = measurement(
        tcp_obs=[tcp("tcp/0"), tcp("tcp/1")],
        tls_obs=[
            tls("tls/0", failure=Failure.CONNECTION_RESET),
            tls(
                "tls/1",
                failure=Failure.SSL_INVALID_HOSTNAME,
                purpose="comparison",
                server_name="www.example.com",
            ),
        ],
        http_obs=[],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.rule_id) == ("blocked", "tls", "tls.sni_filtering")
    assert "SNI" in v.reason
    assert {"tls/0", "tls/1", "control/tls/0"} <= set(v.observation_ids)


def test_reset_for_any_name_is_ip_blocking() -> None:
    """If the handshake is reset for the site's name and an innocuous one alike, then it is IP-based blocking."""
    m = measurement(
        tcp_obs=[tcp("tcp/0"), tcp("tcp/1")],
        tls_obs=[
            tls("tls/0", failure=Failure.CONNECTION_RESET),
            tls(
                "tls/1", failure=Failure.CONNECTION_RESET, purpose="comparison", server_name="www.example.com"
            ),
        ],
        http_obs=[],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.rule_id) == ("blocked", "tcp_ip", "tcp.interference_any_name")


def test_tls_timeout_without_comparison_is_tls_blocking() -> None:
    """If the handshake times out while the control's completes, then it is TLS blocking."""
    m = measurement(tls_obs=[tls("tls/0", failure=Failure.GENERIC_TIMEOUT)], http_obs=[], ctrl=control())
    assert verdict_of(m).rule_id == "tls.handshake_vs_control"


def test_middlebox_certificate_is_confirmed_tls_blocking() -> None:
    """If the probe gets an untrusted certificate unlike the control's valid one, then a middlebox is confirmed."""
    m = measurement(
        tls_obs=[tls("tls/0", failure=Failure.SSL_UNKNOWN_AUTHORITY, cert=ROGUE_CERT)],
        http_obs=[http("http/0", status=None, failure=Failure.SSL_UNKNOWN_AUTHORITY)],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.confirmed, v.rule_id) == (
        "blocked",
        "tls",
        True,
        "tls.invalid_certificate_vs_control",
    )
    assert "ISP Filter" in v.reason


def test_untrusted_same_certificate_is_the_probes_trust_store() -> None:
    """If the probe distrusts the very certificate the control validated, then it is not blocking."""
    m = measurement(
        tls_obs=[tls("tls/0", failure=Failure.SSL_UNKNOWN_AUTHORITY, cert=GOOD_CERT)],
        http_obs=[http("http/0", status=None, failure=Failure.SSL_UNKNOWN_AUTHORITY)],
        ctrl=control(),
    )
    assert verdict_of(m).rule_id == "tls.untrusted_same_certificate"


# --- HTTP ---------------------------------------------------------------------------------------


def test_http_reset_where_control_loads_is_http_failure() -> None:
    """If the request is reset after TLS while the control loads the page, then it is http-failure."""
    m = measurement(http_obs=[http("http/0", status=None, failure=Failure.CONNECTION_RESET)], ctrl=control())
    v = verdict_of(m)
    assert (v.status, v.blocking, v.rule_id) == ("blocked", "http-failure", "http.failure_vs_control")


def test_http_failure_in_control_too_is_down() -> None:
    """If the request times out for the probe and the control alike, then the site is down."""
    m = measurement(
        http_obs=[http("http/0", status=None, failure=Failure.GENERIC_TIMEOUT)],
        ctrl=control(http_obs=[http("http/0", status=None, failure=Failure.GENERIC_TIMEOUT)]),
    )
    assert verdict_of(m).status == "down"


def test_status_mismatch_is_http_diff() -> None:
    """If the probe gets 403 while the control gets 200, then it is an unconfirmed http-diff block."""
    m = plain_http(http_obs=[http("http/0", url=PLAIN_URL, status=403, title="Forbidden", length=500)])
    v = verdict_of(m)
    assert (v.status, v.blocking, v.confirmed, v.rule_id) == (
        "blocked",
        "http-diff",
        False,
        "http.status_mismatch",
    )


def test_body_and_title_mismatch_is_http_diff() -> None:
    """If both the body length and the title differ from the control's, then it is an http-diff block."""
    blockpage_headers = [("Content-Type", "text/html"), ("Server", "ISP-Filter"), ("X-Filter", "1")]
    m = plain_http(
        http_obs=[http("http/0", url=PLAIN_URL, title="Restricted access", length=900, headers=blockpage_headers)]
    )
    v = verdict_of(m)
    assert (v.status, v.rule_id) == ("blocked", "http.body_and_title_mismatch")


def test_lone_body_length_difference_is_only_a_hint() -> None:
    """If only the body length differs (same status and title), then the verdict is inconclusive at most."""
    m = measurement(http_obs=[http("http/0", length=9_000)], ctrl=control())
    v = verdict_of(m)
    assert (v.status, v.rule_id) == ("inconclusive", "http.body_length_hint")


def test_probe_200_where_control_got_error_is_accessible() -> None:
    """If the probe got its 200 page while the control got 403, then the probe reached the site."""
    m = measurement(ctrl=control(http_obs=[http("http/0", status=403, title="Just a moment", length=300)]))
    assert verdict_of(m).status == "accessible"


def test_elcat_blockpage_without_control_is_confirmed() -> None:
    """If the page carries ElCat's blockpage sentence, then the block is confirmed even without a control."""
    body = b'<html><title>Blocked</title><p class="error">Access to the requested website has been blocked by judicial decision!</p></html>'
    m = measurement(
        url="http://news.kg/", tls_obs=[], http_obs=[http("http/0", url="http://news.kg/", body=body)]
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.confirmed, v.rule_id) == (
        "blocked",
        "http-diff",
        True,
        "http.blockpage_fingerprint",
    )
    assert "kuzot.kg_elcat" in v.reason


def test_homeline_redirect_is_confirmed_even_when_next_hop_fails() -> None:
    """If a hop redirects to Homeline's blockpage, then the block is confirmed whatever happened next."""
    blockpage = "http://homeline.kg/access/blockpage.html"
    m = measurement(
        url="http://news.kg/",
        tls_obs=[],
        http_obs=[
            http("http/0", url="http://news.kg/", status=302, headers=[("Location", blockpage)], length=0),
            http("http/1", url=blockpage, ip=None, status=None, failure=Failure.DNS_NXDOMAIN),
        ],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert (v.status, v.confirmed, v.rule_id) == ("blocked", True, "http.blockpage_fingerprint")
    assert "kuzot.kg_homeline" in v.reason and "http/0" in v.observation_ids


def test_lab_blockpage_marker_is_confirmed() -> None:
    """If the page carries the lab's blockpage marker, then the block is confirmed."""
    body = b"<html><head><title>Access denied</title><!-- KUZOT-LAB-BLOCKPAGE --></head></html>"
    m = measurement(http_obs=[http("http/0", body=body)], ctrl=control())
    v = verdict_of(
        m, load_fingerprints([fingerprint_dir() / "http.csv"])
    )
    assert (v.status, v.confirmed) == ("blocked", True)
    assert "kuzot.lab_blockpage" in v.reason


def test_redirect_elsewhere_then_failure_is_http_diff() -> None:
    """If the probe is redirected to a host the control never saw and then fails, then it is an unconfirmed http-diff."""
    m = measurement(
        http_obs=[
            http("http/0", status=302, headers=[("Location", "http://filter.isp.example/")], length=0),
            http(
                "http/1", url="http://filter.isp.example/", ip=None, status=None, failure=Failure.DNS_NXDOMAIN
            ),
        ],
        ctrl=control(),
    )
    v = verdict_of(m)
    assert (v.status, v.blocking, v.confirmed) == ("blocked", "http-diff", False)


def test_no_observations_is_inconclusive() -> None:
    """If a measurement recorded nothing, then the verdict is inconclusive."""
    m = measurement(dns_obs=[], tcp_obs=[], tls_obs=[], http_obs=[], ctrl=control())
    assert verdict_of(m).rule_id == "probe.no_observations"


def test_helper_failure_is_no_control() -> None:
    """If the control helper could not be asked, then a failure is inconclusive, not blocked."""
    m = measurement(
        http_obs=[http("http/0", status=None, failure=Failure.CONNECTION_RESET)],
        ctrl=ControlObservations(source="http://127.0.0.1:9/api", failure=Failure.CONNECTION_REFUSED),
    )
    v = verdict_of(m)
    assert v.status == "inconclusive"
    assert "could not be asked" in v.reason


# --- outputs and documentation ------------------------------------------------------------------------


def test_to_dict_and_frame() -> None:
    """If verdicts are exported, then the dict is JSON-ready with a Z time and the frame has the contract's columns."""
    v = verdict_of(measurement(ctrl=control()))
    data = v.to_dict()
    assert data["measured_at"].endswith("Z") and data["measured_at"].startswith("2026-11-01T12:00:00")
    assert isinstance(data["observation_ids"], list)
    frame = verdicts_frame([v, v])
    assert tuple(frame.columns) == VERDICT_COLUMNS
    assert str(frame["measured_at"].dt.tz) == "UTC"
    assert frame["observation_ids"].iloc[0] == v.observation_ids
    assert list(verdicts_frame([]).columns) == list(VERDICT_COLUMNS)


def test_every_rule_is_documented() -> None:
    """If a rule id exists, then docs/verdicts.md lists it with its outcome."""
    table = DOCS.read_text(encoding="utf-8")
    for rule in RULES.values():
        row = next((line for line in table.splitlines() if line.startswith(f"| `{rule.id}` |")), None)
        assert row is not None, rule.id
        assert f"| {rule.status} |" in row and f"| {rule.blocking or '-'} |" in row


def test_the_documented_rule_table_is_current() -> None:
    """If a rule in analysis/verdicts/rules.py changes, then docs/verdicts.md must be regenerated from it."""
    document = DOCS.read_text(encoding="utf-8")
    assert with_current_table(document) == document, "run: python -m analysis.verdicts docs/verdicts.md"
    assert RULES_VERSION in document


# --- property: reaching the site is never "blocked" ----------------------------------------------------

_failures = st.sampled_from([None, *Failure])
_addresses = st.sampled_from([PUBLIC, OTHER_PUBLIC, "10.10.34.34", "127.66.66.66", "0.0.0.0", "::1"])


@st.composite
def _reached_measurement(draw: st.DrawFn) -> Measurement:
    dns_obs = [
        dns(
            f"dns/{i}",
            draw(st.lists(_addresses, max_size=3)),
            draw(_failures),
            extra=draw(st.lists(st.lists(_addresses, max_size=2), max_size=2)),
        )
        for i in range(draw(st.integers(0, 3)))
    ]
    tcp_obs = [tcp(f"tcp/{i}", draw(_addresses), draw(_failures)) for i in range(draw(st.integers(0, 3)))]
    tls_obs = [
        tls(
            f"tls/{i}",
            draw(_addresses),
            draw(_failures),
            cert=draw(st.sampled_from([GOOD_CERT, ROGUE_CERT, None])),
            purpose=draw(st.sampled_from(["target", "comparison"])),
        )
        for i in range(draw(st.integers(0, 3)))
    ]
    length = draw(st.integers(1_000, 100_000))
    title = draw(st.sampled_from([PAGE_TITLE, None, "Home"]))
    redirects = [
        http(f"http/{i}", status=draw(st.sampled_from([301, 302])), headers=[("Location", URL)], length=0)
        for i in range(draw(st.integers(0, 2)))
    ]
    final = http(f"http/{len(redirects)}", status=200, title=title, length=length)
    control_length = draw(st.integers(int(length * 0.75), int(length / 0.75)))
    ctrl = control(
        dns_obs=[dns("dns/0", draw(st.lists(_addresses, max_size=3)), draw(_failures))],
        tcp_obs=[tcp("tcp/0", draw(_addresses), draw(_failures))],
        tls_obs=[tls("tls/0", draw(_addresses), draw(_failures))],
        http_obs=[http("http/0", status=200, title=title, length=control_length)],
    )
    return measurement(
        dns_obs=dns_obs, tcp_obs=tcp_obs, tls_obs=tls_obs, http_obs=[*redirects, final], ctrl=ctrl
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=_reached_measurement(), fps=st.sampled_from([FPS, NO_FPS]))
def test_reached_site_matching_control_is_never_blocked(m: Measurement, fps: FingerprintSet) -> None:
    """If the probe's final response is a 200 that matches the control's 200, then the status is never blocked."""
    v = judge(m, fingerprints=fps)
    # The one exception (issue 15): the page came only through an address the control
    # resolved while the probe's own resolver gave none, or only addresses that failed.
    own = {a for o in m.dns for a in o.addresses()}
    through_control = m.http[-1].ip not in own
    assert v.status != "blocked" or (through_control and v.blocking == "dns"), v.reason


@pytest.mark.parametrize("status", ["accessible", "blocked", "down", "probe_offline", "inconclusive"])
def test_every_status_has_a_rule(status: str) -> None:
    """If a status is part of the contract, then at least one rule produces it."""
    assert any(rule.status == status for rule in RULES.values())


def test_a_truncated_probe_body_is_not_a_body_mismatch():
    """If the probe's body was cut at the byte cap, then its length is no evidence of a blockpage."""
    from analysis.verdicts import compare_http
    from probe.records import HttpObservation

    probe = HttpObservation(
        "http/0",
        "https://a.kg/",
        "1.2.3.4",
        0,
        1,
        status_code=200,
        title="Other",
        body_length=1 << 20,
        body_truncated=True,
    )
    control = HttpObservation(
        "control/http/0", "https://a.kg/", "1.2.3.4", 0, 1, status_code=200, title="News", body_length=5 << 20
    )
    assert not compare_http(probe, control).body_mismatch
    small = HttpObservation("http/0", "https://a.kg/", "1.2.3.4", 0, 1, status_code=200, body_length=2000)
    capped = HttpObservation(
        "control/http/0",
        "https://a.kg/",
        "1.2.3.4",
        0,
        1,
        status_code=200,
        body_length=1 << 20,
        body_truncated=True,
    )
    assert compare_http(small, capped).body_mismatch

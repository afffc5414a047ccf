"""Synthetic measurement histories with known truth.

Why: the episode and correlation rules must be checked against blocks whose true start
and end we know, with the mess real data has (outages for everyone, volunteers whose
link is down, single timeouts and single successes).  The records produced here are
ordinary :class:`~probe.records.Measurement` objects in the archival format, judged by
the same verdict rules as real ones, so a test exercises the whole analysis chain.

Everything generated is marked as synthetic: ASNs come from the private-use range
(64512-65534), addresses are made up, and every record carries the annotation
``synthetic=true``.  Nothing here is a claim about a real network.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from probe.failures import Failure
from probe.records import (
    CertificateInfo,
    ControlObservations,
    DnsAnswer,
    DnsObservation,
    HttpObservation,
    Measurement,
    TcpObservation,
    TlsObservation,
)

#: What a synthetic measurement can look like, with the verdict it must get.
KINDS: dict[str, tuple[str, str | None]] = {
    "accessible": ("accessible", None),
    "dns": ("blocked", "dns"),
    "tcp_ip": ("blocked", "tcp_ip"),
    "tls": ("blocked", "tls"),
    "http-failure": ("blocked", "http-failure"),
    "blockpage": ("blocked", "http-diff"),
    "down": ("down", None),
    "offline": ("probe_offline", None),
}

CANARY_URL = "https://canary.example.org/"
_BLOCKPAGE = (
    b'<html><head><title>Blocked</title></head><body><p class="error">Access to the requested '
    b"website has been blocked by judicial decision!</p></body></html>"
)


def _site_address(domain: str) -> str:
    """A stable, made-up public address per domain (95.215.0.0/16 stands in for "the internet")."""
    digest = hashlib.sha256(domain.encode()).digest()
    return f"95.215.{digest[0]}.{1 + digest[1] % 250}"


def _cert(domain: str) -> CertificateInfo:
    return CertificateInfo(
        sha256=hashlib.sha256(f"cert:{domain}".encode()).hexdigest(),
        subject=f"CN={domain}",
        issuer="CN=Synthetic CA",
        sans=[domain],
        not_before="2020-01-01T00:00:00Z",
        not_after="2030-01-01T00:00:00Z",
    )


def _handshake(domain: str, obs_id: str, ip: str) -> TlsObservation:
    """A handshake that completed with a certificate valid for ``domain``."""
    return TlsObservation(
        obs_id, ip, 443, domain, 0.1, 0.2, version="TLSv1.3", certificates=[_cert(domain)], validated=True
    )


def _page(domain: str, obs_id: str, ip: str | None, *, url: str) -> HttpObservation:
    body = f"<html><head><title>{domain} news</title></head><body>{'x' * 400}</body></html>".encode()
    return HttpObservation(
        id=obs_id,
        url=url,
        ip=ip,
        started=0.3,
        finished=0.6,
        status_code=200,
        http_version="HTTP/1.1",
        headers=[("Content-Type", "text/html"), ("Server", "nginx")],
        title=f"{domain} news",
        body_length=len(body),
        body_sha256=hashlib.sha256(body).hexdigest(),
        body_sample=body,
    )


def _control(domain: str, url: str, *, down: bool = False) -> ControlObservations:
    ip = _site_address(domain)
    dns = [
        DnsObservation(
            id="control/dns/0",
            hostname=domain,
            query_type="A",
            resolver="control",
            transport="udp",
            started=0.0,
            finished=0.05,
            rcode="NOERROR",
            answers=[DnsAnswer("A", ip, 300)],
        )
    ]
    if down:
        tcp = [TcpObservation("control/tcp/0", ip, 443, 0.05, 10.05, failure=Failure.GENERIC_TIMEOUT)]
        return ControlObservations(source="https://control.example.org/", dns=dns, tcp=tcp)
    tcp = [TcpObservation("control/tcp/0", ip, 443, 0.05, 0.1)]
    tls = [_handshake(domain, "control/tls/0", ip)]
    http = [_page(domain, "control/http/0", ip, url=url)]
    return ControlObservations(source="https://control.example.org/", dns=dns, tcp=tcp, tls=tls, http=http)


def make_measurement(
    kind: str,
    *,
    url: str,
    domain: str,
    at: datetime,
    probe_asn: int,
    run_id: str | None = None,
    role: str = "target",
    probe_cc: str = "KG",
    probe_network: str | None = None,
) -> Measurement:
    """One measurement that looks like ``kind`` (a key of :data:`KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    ip = _site_address(domain)
    answer = "10.10.34.35" if kind == "dns" else ip
    dns_failure = Failure.GENERIC_TIMEOUT if kind == "offline" else None
    m = Measurement(
        id=uuid.uuid4().hex,
        url=url,
        domain=domain,
        started_at=at,
        runtime=1.0,
        run_id=run_id,
        role=role,
        probe_asn=probe_asn,
        probe_cc=probe_cc,
        probe_network=probe_network,
        software_version="synthetic",
        annotations={"synthetic": "true"},
        dns=[_isp_answer(domain, answer, dns_failure)],
    )
    if role != "canary" and kind != "offline":
        m.control = _control(domain, url, down=kind == "down")
    if kind == "offline":
        return m
    if kind in ("dns", "tcp_ip", "down"):
        m.tcp = [TcpObservation("tcp/0", answer, 443, 0.05, 10.05, failure=Failure.GENERIC_TIMEOUT)]
        return m
    m.tcp = [TcpObservation("tcp/0", ip, 443, 0.05, 0.1)]
    if kind == "tls":
        m.tls = _sni_reset(domain, ip)
        return m
    m.tls = [_handshake(domain, "tls/0", ip)]
    if kind == "http-failure":
        m.http = [HttpObservation("http/0", url, ip, 0.3, 0.4, failure=Failure.CONNECTION_RESET)]
    elif kind == "blockpage":
        m.http = [_blockpage(url, ip)]
    else:
        m.http = [_page(domain, "http/0", ip, url=url)]
    return m


def _isp_answer(domain: str, answer: str, failure: Failure | None) -> DnsObservation:
    return DnsObservation(
        id="dns/0",
        hostname=domain,
        query_type="A",
        resolver="isp-resolver",
        transport="udp",
        started=0.0,
        finished=0.05,
        failure=failure,
        rcode=None if failure else "NOERROR",
        answers=[] if failure else [DnsAnswer("A", answer, 300)],
    )


def _sni_reset(domain: str, ip: str) -> list[TlsObservation]:
    """The target's handshake reset, the comparison name's completed."""
    return [
        TlsObservation("tls/0", ip, 443, domain, 0.1, 0.15, failure=Failure.CONNECTION_RESET),
        TlsObservation(
            "tls/1",
            ip,
            443,
            "example.org",
            0.2,
            0.3,
            version="TLSv1.3",
            validated=False,
            certificates=[_cert(domain)],
            purpose="comparison",
        ),
    ]


def _blockpage(url: str, ip: str) -> HttpObservation:
    return HttpObservation(
        "http/0",
        url,
        ip,
        0.3,
        0.4,
        status_code=200,
        http_version="HTTP/1.1",
        headers=[("Content-Type", "text/html")],
        title="Blocked",
        body_length=len(_BLOCKPAGE),
        body_sha256=hashlib.sha256(_BLOCKPAGE).hexdigest(),
        body_sample=_BLOCKPAGE,
    )


# --- histories -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockTruth:
    """One block as it really happened (in a synthetic world)."""

    domain: str
    probe_asn: int
    start: datetime
    end: datetime | None  # None: still blocked when the history ends
    method: str = "dns"  # a key of KINDS that means blocked


@dataclass
class HistorySpec:
    start: datetime
    end: datetime
    asns: dict[int, str]  # ASN -> a label for the network
    domains: Sequence[str]
    blocks: Sequence[BlockTruth] = ()
    every: timedelta = timedelta(hours=6)
    #: Chance that a target measurement is flipped to the opposite verdict (a lone
    #: timeout in an accessible period, a lone success inside a block).
    noise: float = 0.02
    #: Chance that a (domain, run) is down for everyone.
    outage: float = 0.01
    #: Days on which a network's probe is offline all day.
    offline_days: dict[int, Sequence[date]] = field(default_factory=dict)
    seed: int = 7


def _blocked_by(spec: HistorySpec, domain: str, asn: int, at: datetime) -> BlockTruth | None:
    for b in spec.blocks:
        if b.domain == domain and b.probe_asn == asn and b.start <= at and (b.end is None or at < b.end):
            return b
    return None


def _near_edge(spec: HistorySpec, domain: str, asn: int, at: datetime) -> bool:
    """Noise is kept three runs away from a true edge: a lone error next to the real
    start of a block is indistinguishable from an earlier start, for any rule."""
    margin = spec.every * 3
    for b in spec.blocks:
        if b.domain != domain or b.probe_asn != asn:
            continue
        for edge in (b.start, b.end):
            if edge is not None and abs(at - edge) <= margin:
                return True
    return False


def generate_history(spec: HistorySpec) -> Iterator[Measurement]:
    """Measurements in time order: per network, one run every ``spec.every`` with a
    canary and every domain.  No two noisy measurements of one (domain, network) are
    adjacent, so noise is always isolated."""
    rng = random.Random(spec.seed)
    last_noisy: dict[tuple[str, int], bool] = {}
    at = spec.start
    while at < spec.end:
        for asn, label in spec.asns.items():
            run_id = uuid.UUID(int=rng.getrandbits(128)).hex
            when = at + timedelta(seconds=rng.randint(0, 600))
            offline = when.date() in set(spec.offline_days.get(asn, ()))
            yield make_measurement(
                "offline" if offline else "accessible",
                url=CANARY_URL,
                domain="canary.example.org",
                at=when,
                probe_asn=asn,
                run_id=run_id,
                role="canary",
                probe_network=label,
            )
            for i, domain in enumerate(spec.domains):
                t = when + timedelta(seconds=i + 1)
                truth = _blocked_by(spec, domain, asn, t)
                kind = truth.method if truth is not None else "accessible"
                key = (domain, asn)
                noisy = False
                if offline:
                    kind = "offline"
                elif rng.random() < spec.outage and truth is None:
                    kind = "down"
                elif (
                    not last_noisy.get(key)
                    and not _near_edge(spec, domain, asn, t)
                    and rng.random() < spec.noise
                ):
                    kind = "accessible" if truth is not None else "tcp_ip"
                    noisy = True
                last_noisy[key] = noisy
                yield make_measurement(
                    kind,
                    url=f"https://{domain}/",
                    domain=domain,
                    at=t,
                    probe_asn=asn,
                    run_id=run_id,
                    probe_network=label,
                )
        at += spec.every


def _utc(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


#: Synthetic networks for examples; private-use AS numbers, not real ISPs.
EXAMPLE_NETWORKS = {64601: "ISP A (synthetic)", 64602: "ISP B (synthetic)", 64603: "ISP C (synthetic)"}


def example_spec(*, every: timedelta = timedelta(hours=6), seed: int = 7) -> HistorySpec:
    """The Azattyk story replayed on three synthetic networks: the order of 2022-10-26
    for two months; ISP A enforces it by DNS from the next day until the order's end,
    ISP B never does, ISP C blocks by TLS and keeps blocking twelve days past the end.
    24.kg is blocked for a few days by ISP A after the withdrawn order of 2022-08-25,
    and a mirror is blocked without any order."""
    return HistorySpec(
        start=_utc("2022-08-01"),
        end=_utc("2023-02-15"),
        asns=dict(EXAMPLE_NETWORKS),
        domains=["azattyk.org", "24.kg", "kloop.kg", "azattyk.gitlab.io"],
        blocks=[
            BlockTruth(
                "azattyk.org", 64601, _utc("2022-10-27") + timedelta(hours=9), _utc("2022-12-26"), "dns"
            ),
            BlockTruth(
                "azattyk.org", 64603, _utc("2022-10-28") + timedelta(hours=15), _utc("2023-01-07"), "tls"
            ),
            BlockTruth(
                "24.kg", 64601, _utc("2022-08-26") + timedelta(hours=10), _utc("2022-09-03"), "blockpage"
            ),
            BlockTruth("azattyk.gitlab.io", 64603, _utc("2023-01-20"), None, "tcp_ip"),
        ],
        every=every,
        offline_days={64602: [date(2022, 11, 5), date(2022, 11, 6)], 64603: [date(2022, 12, 1)]},
        seed=seed,
    )


def example_history(*, every: timedelta = timedelta(hours=6), seed: int = 7) -> list[Measurement]:
    return list(generate_history(example_spec(every=every, seed=seed)))


#: An orders file for the example history (the real ``analysis/data/orders.csv`` has no
#: withdrawal date for 24.kg; this one names one so the example can show the status).
EXAMPLE_ORDERS_CSV = """\
order_id,issued_on,authority,legal_basis,domains,duration_days,withdrawn_on,lifted_on,source_url,notes
ex-24kg,2022-08-25,Ministry,2021 law,24.kg,60,2022-08-29,,https://example.org/o/24kg,synthetic
ex-azattyk,2022-10-26,Ministry,2021 law,azattyk.org rus.azattyk.org,60,,,https://example.org/o/azattyk,synthetic
ex-kloop,2022-12-01,Ministry,2021 law,kloop.kg,60,,,https://example.org/o/kloop,never enforced
"""

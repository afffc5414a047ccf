"""OONI data in and out: the converter, the reader, ``kuzot import-ooni`` and ``kuzot export``.

Real OONI measurements are used when ``../shared/data/ooni-samples`` exists next to the
repository (a fresh clone has none, and those tests are skipped); every other test uses
OONI-shaped lines written here.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import io
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from probe.failures import Failure
from probe.formats.ooni import (
    SCRUBBED_PROBE_IP,
    OoniFormatError,
    failure_from_ooni,
    measurement_from_ooni,
    measurement_to_ooni,
    read_ooni,
)
from probe.records import (
    ControlObservations,
    DnsAnswer,
    DnsObservation,
    DnsResponse,
    HttpObservation,
    Measurement,
    TcpObservation,
    TlsObservation,
)
from probe.steps.tls import certificate_info
from probe.store import Store
from tests.conftest import REPO, kuzot

SAMPLES = REPO.parent / "shared" / "data" / "ooni-samples"
needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(),
    reason=f"{SAMPLES} is absent (a fresh clone has no ../shared); generated OONI lines cover the format",
)

# Public addresses of the right shape (the bogon rule needs the control's to be public).
SITE_V4 = "104.21.32.7"
SITE_V4_B = "172.67.140.9"


# --- OONI-shaped lines ---------------------------------------------------------------------


def ooni_line(
    url: str = "https://kloop.kg/",
    *,
    report_id: str = "20221027T060100Z_webconnectivity_KG_8449_n1_AbCdEfGhIjKlMnOp",
    start: str = "2022-10-27 06:01:02",
    probe_answers: list[str] | None = None,
    dns_failure: str | None = None,
    tcp_failure: str | None = None,
    http_failure: str | None = None,
    body: Any = "<html><head><title>Kloop news</title></head><body>" + "x" * 4000 + "</body></html>",
    control_body_length: int = 4060,
    control_title: str = "Kloop news",
) -> dict[str, Any]:
    """One Web Connectivity measurement as probe-engine 0.4 writes it (KG, AS8449)."""
    host = url.split("/")[2]
    answers = [SITE_V4] if probe_answers is None else probe_answers
    reached = dns_failure is None and tcp_failure is None and http_failure is None
    return {
        "annotations": {"engine_name": "ooniprobe-engine", "platform": "android"},
        "data_format_version": "0.2.0",
        "input": url,
        "measurement_start_time": start,
        "probe_asn": "AS8449",
        "probe_cc": "KG",
        "probe_ip": "127.0.0.1",
        "probe_network_name": "Kyrgyztelecom",
        "report_id": report_id,
        "software_name": "ooniprobe-android",
        "software_version": "3.7.0",
        "test_helpers": {"backend": {"address": "https://0.th.ooni.org", "type": "https"}},
        "test_name": "web_connectivity",
        "test_runtime": 2.5,
        "test_start_time": start,
        "test_version": "0.4.1",
        "test_keys": {
            "queries": [
                {
                    "answers": [{"answer_type": "A", "ipv4": a, "ttl": None} for a in answers] or None,
                    "engine": "system",
                    "failure": dns_failure,
                    "hostname": host,
                    "query_type": "A",
                    "resolver_address": "",
                    "t0": 0.01,
                    "t": 0.05,
                }
            ],
            "tcp_connect": [
                {"ip": a, "port": 443, "status": {"failure": tcp_failure, "success": tcp_failure is None}}
                for a in answers
            ],
            "requests": [
                {
                    "failure": http_failure or tcp_failure or dns_failure,
                    "request": {"url": url, "method": "GET", "headers": {}, "body": ""},
                    "response": {
                        "body": body if reached else None,
                        "code": 200 if reached else 0,
                        "headers_list": [["Content-Type", "text/html; charset=utf-8"], ["Server", "nginx"]]
                        if reached
                        else None,
                        "headers": {"Content-Type": "text/html; charset=utf-8", "Server": "nginx"}
                        if reached
                        else None,
                    },
                    "t0": 0.2,
                    "t": 0.9,
                }
            ],
            "control": {
                "dns": {"addrs": [SITE_V4, SITE_V4_B], "failure": None},
                "tcp_connect": {f"{SITE_V4}:443": {"status": True, "failure": None}},
                "http_request": {
                    "body_length": control_body_length,
                    "failure": None,
                    "title": control_title,
                    "headers": {"Content-Type": "text/html; charset=utf-8", "Server": "nginx"},
                    "status_code": 200,
                },
            },
            "control_failure": None,
            "blocking": False if reached else "dns",
            "accessible": reached,
        },
    }


def dns_blocked_line(**kw: Any) -> dict[str, Any]:
    """Kyrgyztelecom's resolver answering a private address; connecting to it times out."""
    return ooni_line(
        "https://blocked.example.org/",
        report_id="20221027T060200Z_webconnectivity_KG_8449_n1_BlockedBlocked01",
        probe_answers=["10.10.34.36"],
        tcp_failure="generic_timeout_error",
        **kw,
    )


def nxdomain_line() -> dict[str, Any]:
    return ooni_line(
        "http://nx.example.org/",
        report_id="20221027T060300Z_webconnectivity_KG_8449_n1_NxdomainNxdomain",
        probe_answers=[],
        dns_failure="dns_nxdomain_error",
    )


def jsonl(*items: Any) -> str:
    return "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items)


def read_all(data: bytes) -> list[Any]:
    return list(read_ooni(io.BytesIO(data)))


def der_certificate(name: str = "kloop.kg") -> bytes:
    pem = trustme.CA().issue_cert(name).cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def stored(db: str) -> dict[str, Measurement]:
    store = Store.open(db)
    try:
        return {m.id: m for m in store.iter_measurements()}
    finally:
        store.close()


def verdicts(db: str) -> dict[str, dict[str, Any]]:
    result = kuzot("verdicts", "--db", db, "--format", "json")
    assert result.returncode == 0, result.stderr
    return {v["url"]: v for v in json.loads(result.stdout)}


# --- OONI -> ours --------------------------------------------------------------------------


def test_accessible_line_maps_every_layer() -> None:
    """If an OONI line is converted, then its network, time, DNS, TCP, HTTP and control land in our fields."""
    m = measurement_from_ooni(ooni_line())
    assert (m.url, m.domain, m.probe_asn, m.probe_cc, m.probe_network) == (
        "https://kloop.kg/",
        "kloop.kg",
        8449,
        "KG",
        "Kyrgyztelecom",
    )
    assert m.started_at == datetime(2022, 10, 27, 6, 1, 2, tzinfo=UTC)
    assert (m.software_name, m.software_version, m.runtime, m.run_id) == (
        "ooniprobe-android",
        "3.7.0",
        2.5,
        None,
    )
    uuid.UUID(m.id)
    [dns] = m.dns
    assert (dns.id, dns.transport, dns.resolver, dns.query_type, dns.addresses()) == (
        "dns/0",
        "system",
        "system",
        "A",
        [SITE_V4],
    )
    assert (dns.started, dns.finished, dns.rcode) == (0.01, 0.05, None)
    [tcp] = m.tcp
    assert (tcp.ip, tcp.port, tcp.failure) == (SITE_V4, 443, None)
    [http] = m.http
    assert (http.status_code, http.title, http.failure) == (200, "Kloop news", None)
    assert http.body_length == len(http.body_sample) > 4000
    assert http.body_sha256 == hashlib.sha256(http.body_sample).hexdigest()
    assert http.header("server") == "nginx"
    control = m.control
    assert control is not None and control.failure is None and control.source == "https://0.th.ooni.org"
    assert control.dns[0].addresses() == [SITE_V4, SITE_V4_B]
    assert [(o.id, o.ip, o.port, o.failure) for o in control.tcp] == [("control/tcp/0", SITE_V4, 443, None)]
    assert (control.http[0].status_code, control.http[0].body_length, control.http[0].title) == (
        200,
        4060,
        "Kloop news",
    )
    assert m.annotations["ooni.report_id"].startswith("20221027T060100Z")
    assert (m.annotations["ooni.blocking"], m.annotations["ooni.accessible"]) == ("false", "true")


def test_ids_are_stable_and_distinct() -> None:
    """If the same OONI measurement is converted twice, then it gets one id; another input or report gets another."""
    line = ooni_line()
    assert measurement_from_ooni(line).id == measurement_from_ooni(copy.deepcopy(line)).id
    assert measurement_from_ooni(ooni_line("https://24.kg/")).id != measurement_from_ooni(line).id
    other_report = ooni_line(report_id="20221027T060100Z_webconnectivity_KG_8449_n1_Other")
    assert measurement_from_ooni(other_report).id != measurement_from_ooni(line).id
    uid_only = ooni_line()
    del uid_only["report_id"]
    uid_only["measurement_uid"] = "20221027060102.000000_KG_webconnectivity_0123456789abcdef"
    assert measurement_from_ooni(uid_only).id == measurement_from_ooni(copy.deepcopy(uid_only)).id


def test_requests_are_put_in_chain_order() -> None:
    """If OONI lists a redirect chain final-first, then our http observations run from the first request to the last."""
    line = ooni_line("http://kloop.kg/")
    final = line["test_keys"]["requests"][0]
    final["request"]["url"] = "https://kloop.kg/"
    first = {
        "failure": None,
        "request": {"url": "http://kloop.kg/"},
        "response": {"code": 301, "body": "", "headers_list": [["Location", "https://kloop.kg/"]]},
        "t0": 0.1,
        "t": 0.15,
    }
    line["test_keys"]["requests"].append(first)
    m = measurement_from_ooni(line)
    assert [(o.id, o.url, o.status_code) for o in m.http] == [
        ("http/0", "http://kloop.kg/", 301),
        ("http/1", "https://kloop.kg/", 200),
    ]
    assert m.http[0].header("location") == "https://kloop.kg/"


def test_base64_bodies_and_header_values_are_decoded() -> None:
    """If a body and a header value are OONI base64 objects, then the body keeps its bytes and the title its charset."""
    page = "<html><title>Доступ ограничен</title>блокировка</html>".encode("cp1251")
    line = ooni_line()
    response = line["test_keys"]["requests"][0]["response"]
    response["body"] = {"format": "base64", "data": base64.b64encode(page).decode()}
    response["headers_list"] = [
        ["Content-Type", "text/html; charset=windows-1251"],
        ["X-Note", {"format": "base64", "data": base64.b64encode(b"caf\xe9").decode()}],
    ]
    [http] = measurement_from_ooni(line).http
    assert http.body_sample == page and http.body_length == len(page)
    assert http.title == "Доступ ограничен"
    assert http.header("x-note") == "café"


def test_odd_shapes_are_read_leniently() -> None:
    """If bodies are null or badly padded base64 and headers a map of lists, then the line still imports."""
    line = ooni_line()
    response = line["test_keys"]["requests"][0]["response"]
    response["body"] = {"format": "base64", "data": "aGk"}  # "hi" without its padding
    del response["headers_list"]
    response["headers"] = {"Set-Cookie": ["a=1", "b=2"], "Server": "nginx"}
    [http] = measurement_from_ooni(line).http
    assert http.body_sample == b"hi"
    assert [v for k, v in http.headers if k == "Set-Cookie"] == ["a=1", "b=2"]

    null_body = ooni_line()
    null_body["test_keys"]["requests"][0]["response"] = {"body": None, "code": 200, "headers": None}
    null_body["test_keys"]["tcp_connect"] = None
    null_body["test_keys"]["control"]["http_request"] = {"body_length": -1, "status_code": -1, "failure": "x"}
    m = measurement_from_ooni(null_body)
    assert (m.http[0].body_sample, m.http[0].body_length, m.http[0].headers, m.tcp) == (b"", 0, [], [])
    assert m.control is not None
    assert (m.control.http[0].status_code, m.control.http[0].body_length) == (None, 0)


def test_tls_handshakes_keep_fingerprinted_certificates() -> None:
    """If OONI recorded a handshake's peer certificates, then each is summarised with the SHA-256 of its DER."""
    der = der_certificate()
    line = ooni_line()
    line["test_keys"]["tls_handshakes"] = [
        {
            "address": f"{SITE_V4}:443",
            "server_name": "kloop.kg",
            "failure": None,
            "tls_version": "TLSv1.3",
            "cipher_suite": "TLS_AES_128_GCM_SHA256",
            "negotiated_protocol": "h2",
            "no_tls_verify": False,
            "peer_certificates": [{"format": "base64", "data": base64.b64encode(der).decode()}],
            "t0": 0.1,
            "t": 0.2,
        },
        {"address": "[2001:db8::1]:443", "server_name": "kloop.kg", "failure": "ssl_unknown_authority"},
    ]
    first, second = measurement_from_ooni(line).tls
    assert (first.ip, first.port, first.version, first.cipher, first.alpn, first.validated) == (
        SITE_V4,
        443,
        "TLSv1.3",
        "TLS_AES_128_GCM_SHA256",
        "h2",
        True,
    )
    [cert] = first.certificates
    assert cert.sha256 == hashlib.sha256(der).hexdigest() and "kloop.kg" in cert.sans
    assert (second.ip, second.failure, second.validated) == (
        "2001:db8::1",
        Failure.SSL_UNKNOWN_AUTHORITY,
        False,
    )


def test_udp_and_doh_queries_keep_resolver_rcode_and_late_replies() -> None:
    """If OONI asked a UDP resolver and saw a late second reply, then resolver, rcode and the extra reply are kept."""
    line = ooni_line()
    udp = {
        "answers": [{"answer_type": "A", "ipv4": "10.1.1.1", "ttl": 60}],
        "engine": "udp",
        "failure": None,
        "hostname": "kloop.kg",
        "query_type": "A",
        "resolver_address": "8.8.8.8:53",
        "rcode": 0,
        "t0": 0.0,
        "t": 0.01,
    }
    doh = {**udp, "engine": "doh", "resolver_address": "https://dns.google/dns-query", "rcode": 3}
    doh["failure"], doh["answers"] = "dns_nxdomain_error", None
    late = {**udp, "answers": [{"answer_type": "A", "ipv4": SITE_V4, "ttl": 300}], "t": 0.04}
    line["test_keys"]["queries"] += [udp, doh]
    line["test_keys"]["x_dns_duplicate_responses"] = [late]
    m = measurement_from_ooni(line)
    _, first, second = m.dns
    assert (first.transport, first.resolver, first.rcode, first.answers) == (
        "udp",
        "8.8.8.8:53",
        "NOERROR",
        [DnsAnswer("A", "10.1.1.1", 60)],
    )
    assert first.extra_responses == [DnsResponse(0.04, "NOERROR", [DnsAnswer("A", SITE_V4, 300)])]
    assert (second.transport, second.resolver, second.rcode, second.failure) == (
        "doh",
        "https://dns.google/dns-query",
        "NXDOMAIN",
        Failure.DNS_NXDOMAIN,
    )


@pytest.mark.parametrize(
    ("ooni", "ours"),
    [
        ("connection_reset", Failure.CONNECTION_RESET),
        ("dns_servfail_error", Failure.DNS_SERVER_FAILURE),
        ("dns_name_error", Failure.DNS_NXDOMAIN),
        ("connection_refused_error", Failure.CONNECTION_REFUSED),
        (
            "ssl_error: error:14007086:SSL routines:CONNECT_CR_CERT:certificate verify failed",
            Failure.SSL_INVALID_CERTIFICATE,
        ),
        (
            "ssl_error: error:1408F10B:SSL routines:ssl3_get_record:wrong version number",
            Failure.SSL_FAILED_HANDSHAKE,
        ),
        ("connect_error", Failure.UNKNOWN),
        ("unknown_failure 'ascii' codec can't decode byte 0xd9", Failure.UNKNOWN),
        (None, None),
    ],
)
def test_failure_strings(ooni: str | None, ours: Failure | None) -> None:
    """If OONI wrote a current or legacy failure string, then it maps to the nearest of ours."""
    assert failure_from_ooni(ooni) == ours


def test_legacy_failures_are_kept_next_to_their_reading() -> None:
    """If a line has failure strings that are not ours, then the originals are kept in an annotation."""
    line = ooni_line(http_failure="connect_error")
    m = measurement_from_ooni(line)
    assert m.http[0].failure == Failure.UNKNOWN
    assert m.annotations["ooni.original_failures"] == "connect_error"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update(test_name="dnscheck"), "not 'web_connectivity'"),
        (lambda d: d.pop("input"), "no input URL"),
        (lambda d: d.update(input="ftp://kloop.kg/"), "not an http(s) URL"),
        (lambda d: d.pop("measurement_start_time"), "no measurement_start_time"),
        (lambda d: d.update(measurement_start_time="yesterday"), "not a time"),
        (lambda d: d.pop("probe_asn"), "no probe_asn"),
        (lambda d: d.update(probe_asn="Kyrgyztelecom"), "not an AS number"),
        (lambda d: d.update(test_keys=None), "test_keys is missing or null"),
        (lambda d: d.pop("report_id"), "no stable id"),
    ],
)
def test_lines_without_required_fields_are_refused(change: Any, reason: str) -> None:
    """If a line lacks what a verdict needs, then converting it raises OoniFormatError saying what."""
    line = ooni_line()
    change(line)
    with pytest.raises(OoniFormatError, match=re.escape(reason)):
        measurement_from_ooni(line)


# --- the reader ------------------------------------------------------------------------------


def test_reader_reports_bad_lines_by_number() -> None:
    """If a JSONL input mixes good and bad lines, then each bad one is reported with its line number."""
    data = jsonl(
        ooni_line(),
        "{not json",
        {**ooni_line(), "test_name": "dnscheck"},
        "",
        "[1, 2]",
        dns_blocked_line(),
    ).encode()
    results = read_all(data)
    assert [(r.line, r.measurement is not None) for r in results] == [
        (1, True),
        (2, False),
        (3, False),
        (5, False),
        (6, True),
    ]
    assert "not JSON" in str(results[1].error) and "dnscheck" in str(results[2].error)


def test_reader_takes_gzip_documents_and_lists() -> None:
    """If the input is gzipped, pretty-printed or a JSON list, then every measurement in it is read."""
    lines = jsonl(ooni_line(), dns_blocked_line()).encode()
    assert [r.measurement is not None for r in read_all(gzip.compress(lines))] == [True, True]
    pretty = json.dumps(ooni_line(), indent=2).encode()
    [one] = read_all(pretty)
    assert one.measurement is not None and one.measurement.domain == "kloop.kg"
    listed = json.dumps([ooni_line(), dns_blocked_line()], indent=1).encode()
    assert [r.measurement is not None for r in read_all(gzip.compress(listed))] == [True, True]


def test_reader_survives_a_lone_surrogate() -> None:
    """If OONI's JSON escapes a lone surrogate in a header, then the line imports with it replaced."""
    line = ooni_line()
    line["test_keys"]["requests"][0]["response"]["headers_list"].append(["X-Odd", "a\ud800b"])
    [result] = read_all(json.dumps(line).encode())
    assert result.measurement is not None
    assert result.measurement.http[0].header("x-odd") == "a?b"
    result.measurement.canonical_json()


# --- ours -> OONI -> ours ------------------------------------------------------------------------


def rich_measurement() -> Measurement:
    """Our own measurement with every kind of observation the OONI format must carry."""
    leaf = certificate_info(der_certificate())
    page = "<html><title>Кloop</title></html>".encode("cp1251")
    return Measurement(
        id=str(uuid.uuid4()),
        url="http://kloop.kg/",
        domain="kloop.kg",
        started_at=datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC),
        runtime=3.25,
        run_id=str(uuid.uuid4()),
        category_code="NEWS",
        probe_asn=8449,
        probe_cc="KG",
        probe_network="Kyrgyztelecom",
        software_version="0.1.0",
        annotations={"note": "round trip"},
        dns=[
            DnsObservation(
                "dns/0", "kloop.kg", "ANY", "system", "system", 0.001, 0.02, answers=[DnsAnswer("A", SITE_V4)]
            ),
            DnsObservation(
                "dns/1",
                "kloop.kg",
                "A",
                "10.0.0.53:53",
                "udp",
                0.001,
                0.03,
                rcode="NOERROR",
                answers=[DnsAnswer("A", "10.10.34.36", 300)],
                extra_responses=[DnsResponse(0.05, "NOERROR", [DnsAnswer("A", SITE_V4, 3600)])],
            ),
            DnsObservation(
                "dns/2",
                "kloop.kg",
                "AAAA",
                "10.0.0.53:53",
                "udp",
                0.001,
                0.03,
                Failure.DNS_NO_ANSWER,
                "NOERROR",
            ),
            DnsObservation(
                "dns/3",
                "kloop.kg",
                "A",
                "1.1.1.1:53",
                "udp",
                0.0,
                2.0,
                Failure.DNS_SERVER_FAILURE,
                "SERVFAIL",
            ),
        ],
        tcp=[
            TcpObservation("tcp/0", SITE_V4, 80, 0.03, 0.05),
            TcpObservation("tcp/1", "10.10.34.36", 80, 0.03, 5.03, Failure.GENERIC_TIMEOUT),
            TcpObservation("tcp/2", "2001:db8::7", 443, 0.03, 0.04, Failure.NETWORK_UNREACHABLE),
        ],
        tls=[
            TlsObservation(
                "tls/0",
                SITE_V4,
                443,
                "kloop.kg",
                0.05,
                0.1,
                version="TLSv1.3",
                cipher="TLS_AES_256_GCM_SHA384",
                alpn="http/1.1",
                certificates=[leaf],
                validated=True,
            ),
            TlsObservation(
                "tls/1",
                SITE_V4,
                443,
                "kloop.kg",
                0.05,
                0.2,
                Failure.SSL_UNKNOWN_AUTHORITY,
                certificates=[leaf],
                validated=False,
            ),
            TlsObservation(
                "tls/2", SITE_V4, 443, "example.org", 0.2, 0.3, purpose="comparison", validated=True
            ),
        ],
        http=[
            HttpObservation(
                "http/0",
                "http://kloop.kg/",
                SITE_V4,
                0.1,
                0.2,
                status_code=302,
                http_version="HTTP/1.1",
                headers=[
                    ("Location", "https://kloop.kg/"),
                    ("X-Raw", "caf\xe9"),
                    ("Set-Cookie", "a=1"),
                    ("Set-Cookie", "b=2"),
                ],
                body_length=0,
                body_sha256=hashlib.sha256(b"").hexdigest(),
            ),
            HttpObservation(
                "http/1",
                "https://kloop.kg/",
                SITE_V4,
                0.2,
                0.6,
                status_code=200,
                http_version="HTTP/1.1",
                headers=[("Content-Type", "text/html; charset=windows-1251")],
                title="Кloop",
                body_length=200_000,
                body_sha256="ab" * 32,
                body_sample=page,
                body_truncated=False,
            ),
            HttpObservation("http/2", "https://cdn.kloop.kg/x", None, 0.6, 0.7, Failure.DNS_NXDOMAIN),
        ],
        control=ControlObservations(
            source="https://helper.example.net",
            dns=[
                DnsObservation(
                    "control/dns/0",
                    "kloop.kg",
                    "ANY",
                    "system",
                    "system",
                    0,
                    0,
                    answers=[DnsAnswer("A", SITE_V4), DnsAnswer("A", SITE_V4_B)],
                )
            ],
            tcp=[TcpObservation("control/tcp/0", SITE_V4, 443, 0, 0)],
            tls=[
                TlsObservation(
                    "control/tls/0", SITE_V4, 443, "kloop.kg", 0, 0, certificates=[leaf], validated=True
                )
            ],
            http=[
                HttpObservation(
                    "control/http/0",
                    "http://kloop.kg/",
                    None,
                    0,
                    0,
                    status_code=200,
                    headers=[("Server", "nginx")],
                    title="Kloop",
                    body_length=210_000,
                )
            ],
        ),
    )


def assert_equivalent(before: Measurement, after: Measurement) -> None:
    """Everything OONI's format can carry came back; the control as OONI's helper reports it."""
    assert after.id == before.id
    for name in (
        "url",
        "domain",
        "runtime",
        "category_code",
        "probe_asn",
        "probe_cc",
        "probe_network",
        "software_name",
        "software_version",
        "annotations",
        "dns",
        "tcp",
        "tls",
        "http",
    ):
        assert getattr(after, name) == getattr(before, name), name
    assert after.started_at == before.started_at.replace(microsecond=0)
    ours, theirs = before.control, after.control
    assert (ours is None) == (theirs is None)
    if ours is None or theirs is None:
        return
    assert (theirs.source, theirs.failure) == (ours.source, ours.failure)
    assert {a for o in theirs.dns for a in o.addresses()} == {a for o in ours.dns for a in o.addresses()}
    assert [(o.ip, o.port, o.failure) for o in theirs.tcp] == [(o.ip, o.port, o.failure) for o in ours.tcp]
    assert [(o.ip, o.server_name, o.failure, o.validated, o.certificates) for o in theirs.tls] == [
        (o.ip, o.server_name, o.failure, o.validated, o.certificates)
        for o in ours.tls
        if o.purpose == "target"
    ]
    if ours.http:
        got, want = theirs.http[-1], ours.http[-1]
        assert (got.status_code, got.failure, got.title, got.body_length, got.headers) == (
            want.status_code,
            want.failure,
            want.title,
            want.body_length,
            want.headers,
        )


def test_export_shape_and_no_probe_ip() -> None:
    """If our measurement is exported, then it is an OONI web_connectivity record with a scrubbed probe_ip."""
    m = rich_measurement()
    out = measurement_to_ooni(
        m, summary={"blocking": "dns", "accessible": False}, verdict={"status": "blocked"}
    )
    assert (out["data_format_version"], out["test_name"], out["probe_asn"], out["probe_cc"]) == (
        "0.2.0",
        "web_connectivity",
        "AS8449",
        "KG",
    )
    assert (out["probe_ip"], out["measurement_start_time"], out["input"]) == (
        SCRUBBED_PROBE_IP,
        "2026-03-01 12:00:05",
        "http://kloop.kg/",
    )
    assert out["software_name"] == "kuzot" and out["report_id"].startswith(
        "20260301T120005Z_webconnectivity_KG_8449_n1_"
    )
    tk = out["test_keys"]
    assert (tk["blocking"], tk["accessible"]) == ("dns", False)
    assert [r["request"]["url"] for r in tk["requests"]] == [
        "https://cdn.kloop.kg/x",
        "https://kloop.kg/",
        "http://kloop.kg/",
    ]
    assert (
        tk["queries"][0]["engine"] == "getaddrinfo" and tk["queries"][1]["resolver_address"] == "10.0.0.53:53"
    )
    assert tk["queries"][3]["failure"] == "dns_servfail_error"
    assert tk["control"]["tcp_connect"] == {f"{SITE_V4}:443": {"status": True, "failure": None}}
    assert tk["x_kuzot"]["verdict"] == {"status": "blocked"}
    assert "10.0.0" not in json.dumps({k: v for k, v in out.items() if k != "test_keys"})


def test_round_trip_gives_equivalent_observations() -> None:
    """If our measurement goes out in OONI's format and comes back, then its observations are equivalent."""
    before = rich_measurement()
    line = json.dumps(measurement_to_ooni(before))
    [result] = read_all(line.encode())
    assert result.measurement is not None
    assert_equivalent(before, result.measurement)


def test_round_trip_of_an_imported_ooni_measurement() -> None:
    """If an imported OONI measurement is exported and imported again, then nothing is lost on the way."""
    first = measurement_from_ooni(dns_blocked_line())
    again = measurement_from_ooni(json.loads(json.dumps(measurement_to_ooni(first))))
    assert_equivalent(first, again)
    assert again.annotations["ooni.report_id"] == first.annotations["ooni.report_id"]


# --- real OONI measurements ----------------------------------------------------------------------


def sample(name: str) -> Path:
    matches = sorted(SAMPLES.glob(f"*/{name}"))
    assert matches, name
    return matches[0]


@needs_samples
def test_every_sample_imports_or_says_why() -> None:
    """If each real OONI sample is read, then it converts, or (no test_keys) is skipped with a reason."""
    files = sorted(SAMPLES.glob("*/*.json"))
    assert len(files) >= 10
    for path in files:
        [result] = read_all(path.read_bytes())
        if path.name == "test_keys_none.json":
            assert "test_keys" in str(result.error)
        else:
            assert result.measurement is not None, (path.name, result.error)
            result.measurement.canonical_json()


@needs_samples
def test_samples_map_their_details() -> None:
    """If real samples of several OONI generations are read, then their odd details land where they belong."""
    [r] = read_all(sample("bug_352.json").read_bytes())
    m = r.measurement
    assert m is not None and (m.probe_asn, m.probe_cc) == (197207, "IR")
    assert [(a.rrtype, a.value) for a in m.dns[0].answers] == [
        ("CNAME", "fa.wikipedia.org"),
        ("A", "10.10.34.36"),
    ]
    assert m.tcp[0].failure == Failure.GENERIC_TIMEOUT

    [r] = read_all(sample("web_connectivity_b64_hdr.json").read_bytes())
    assert r.measurement is not None
    location = r.measurement.http[0].header("location")
    assert location is not None and location.startswith("http://192.168.22.1/UserCheck/PortalMain")

    [r] = read_all(sample("firefoxcom.measurement.json").read_bytes())
    m = r.measurement
    assert m is not None
    assert m.http[0].url == "http://firefox.com/" and m.http[-1].status_code == 200
    assert m.http[-1].http_version == "HTTP/2" and m.http[-1].title and "Firefox" in m.http[-1].title
    assert {o.transport for o in m.dns} == {"system", "udp", "doh"}
    assert all(o.certificates and o.validated for o in m.tls)

    [r] = read_all(sample("web_connectivity_null.json").read_bytes())
    assert r.measurement is not None and r.measurement.control is not None
    assert r.measurement.control.failure == Failure.CONNECTION_REFUSED


@needs_samples
def test_cli_imports_samples_with_sensible_verdicts(tmp_path: Path) -> None:
    """If the real samples are imported, then OONI's DNS block is a DNS block for us and a clean fetch accessible."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    files = [str(p) for p in sorted(SAMPLES.glob("*/*.json"))]
    result = kuzot("import-ooni", "--db", db, *files)
    assert result.returncode == 0, result.stderr
    assert f"{len(files) - 1} imported, 0 already present, 1 skipped" in result.stdout
    assert "test_keys_none.json:1: test_keys is missing or null" in result.stderr
    found = verdicts(db)
    assert (found["https://www.facebook.com/"]["status"], found["https://www.facebook.com/"]["blocking"]) == (
        "blocked",
        "dns",
    )
    assert found["http://firefox.com/"]["status"] == "accessible"
    again = kuzot("import-ooni", "--db", db, *files)
    assert f"0 imported, {len(files) - 1} already present" in again.stdout


# --- the commands --------------------------------------------------------------------------------


def test_cli_import_skips_bad_lines_and_judges(tmp_path: Path) -> None:
    """If a file mixes blocked, accessible and bad lines, then the good ones are judged and the bad ones listed."""
    path = tmp_path / "kg.jsonl"
    path.write_text(
        jsonl(
            dns_blocked_line(), "garbage", ooni_line(), {**ooni_line(), "test_name": "tor"}, nxdomain_line()
        )
    )
    db = f"sqlite:///{tmp_path / 'k.db'}"
    result = kuzot("import-ooni", "--db", db, str(path))
    assert result.returncode == 0, result.stderr
    assert "3 imported, 0 already present, 2 skipped" in result.stdout
    assert f"{path}:2: not JSON" in result.stderr and f"{path}:4: test_name is 'tor'" in result.stderr
    found = verdicts(db)
    blocked = found["https://blocked.example.org/"]
    assert (blocked["status"], blocked["blocking"], blocked["probe_asn"]) == ("blocked", "dns", 8449)
    assert (found["http://nx.example.org/"]["status"], found["http://nx.example.org/"]["blocking"]) == (
        "blocked",
        "dns",
    )
    assert found["https://kloop.kg/"]["status"] == "accessible"
    assert {m.software_name for m in stored(db).values()} == {"ooniprobe-android"}

    again = kuzot("import-ooni", "--db", db, str(path))
    assert "0 imported, 3 already present, 2 skipped" in again.stdout
    assert len(stored(db)) == 3


def test_cli_import_stores_source_ooni(tmp_path: Path) -> None:
    """If a measurement is imported, then its row says it came from OONI."""
    from sqlalchemy import create_engine, text

    path = tmp_path / "one.json"
    path.write_text(json.dumps(ooni_line(), indent=2))
    db = f"sqlite:///{tmp_path / 'k.db'}"
    assert kuzot("import-ooni", "--db", db, str(path)).returncode == 0
    engine = create_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT source, probe_asn FROM measurements")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("ooni", 8449)]


def test_cli_strict_writes_nothing(tmp_path: Path) -> None:
    """If --strict meets one bad line, then the import fails with status 2 and stores nothing."""
    path = tmp_path / "kg.jsonl"
    path.write_text(jsonl(ooni_line(), "{broken"))
    db_file = tmp_path / "k.db"
    result = kuzot("import-ooni", "--strict", "--db", f"sqlite:///{db_file}", str(path))
    assert result.returncode == 2
    assert f"{path}:2: not JSON" in result.stderr and "nothing was written" in result.stderr
    assert not db_file.exists() or not stored(f"sqlite:///{db_file}")

    path.write_text(jsonl(ooni_line()))
    ok = kuzot("import-ooni", "--strict", "--db", f"sqlite:///{db_file}", str(path))
    assert ok.returncode == 0 and "1 imported" in ok.stdout


def test_cli_reads_gzip_and_stdin(tmp_path: Path) -> None:
    """If measurements come gzipped or on standard input, then they are imported; a cut gzip keeps what was whole."""
    gz = tmp_path / "kg.jsonl.gz"
    gz.write_bytes(gzip.compress(jsonl(ooni_line(), dns_blocked_line()).encode()))
    db = f"sqlite:///{tmp_path / 'k.db'}"
    result = kuzot("import-ooni", "--db", db, str(gz))
    assert result.returncode == 0 and "2 imported" in result.stdout, result.stderr
    piped = kuzot("import-ooni", "--db", db, "-", stdin=jsonl(nxdomain_line(), "nope"))
    assert piped.returncode == 0 and "1 imported, 0 already present, 1 skipped" in piped.stdout
    assert "<stdin>:2: not JSON" in piped.stderr
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(jsonl(ooni_line("https://24.kg/"), nxdomain_line()).encode())[:-30])
    damaged = kuzot("import-ooni", "--db", db, str(cut))
    assert damaged.returncode == 0 and "1 imported, 0 already present, 1 skipped" in damaged.stdout
    assert f"{cut}: unreadable after line 1" in damaged.stderr


def test_cli_missing_file_and_only_garbage(tmp_path: Path) -> None:
    """If a file is missing, then status 2; if nothing in it is importable, then status 1."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    missing = kuzot("import-ooni", "--db", db, str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    junk = tmp_path / "junk.jsonl"
    junk.write_text("nope\n[]\n")
    result = kuzot("import-ooni", "--db", db, str(junk))
    assert result.returncode == 1 and "0 imported, 0 already present, 2 skipped" in result.stdout


def test_cli_export_then_import_round_trip(tmp_path: Path) -> None:
    """If our measurements are exported in OONI's format and imported elsewhere, then observations and verdicts agree."""
    source_db = f"sqlite:///{tmp_path / 'a.db'}"
    ours = rich_measurement()
    store = Store.open(source_db)
    store.save_measurement(ours)
    store.close()
    lines = tmp_path / "lines.jsonl"
    lines.write_text(jsonl(dns_blocked_line(), ooni_line()))
    assert kuzot("import-ooni", "--db", source_db, str(lines)).returncode == 0

    out = tmp_path / "export.jsonl"
    result = kuzot("export", "--format", "ooni", "--db", source_db, str(out))
    assert result.returncode == 0, result.stderr
    assert "3 OONI measurements written" in result.stdout
    exported = {d["input"]: d for d in map(json.loads, out.read_text().splitlines())}
    assert {d["probe_ip"] for d in exported.values()} == {SCRUBBED_PROBE_IP}
    blocked = exported["https://blocked.example.org/"]["test_keys"]
    assert (blocked["blocking"], blocked["accessible"], blocked["dns_consistency"]) == (
        "dns",
        False,
        "inconsistent",
    )
    assert blocked["x_kuzot"]["verdict"]["rule_id"] == "dns.bogon_answer"
    accessible = exported["https://kloop.kg/"]["test_keys"]
    assert (accessible["blocking"], accessible["accessible"], accessible["status_code_match"]) == (
        False,
        True,
        True,
    )

    target_db = f"sqlite:///{tmp_path / 'b.db'}"
    back = kuzot("import-ooni", "--db", target_db, str(out))
    assert back.returncode == 0 and "3 imported" in back.stdout, back.stderr
    before, after = stored(source_db), stored(target_db)
    assert set(after) == set(before)
    for mid, m in before.items():
        assert_equivalent(m, after[mid])
    strip = ("measured_at",)
    assert {u: {k: v for k, v in d.items() if k not in strip} for u, d in verdicts(target_db).items()} == {
        u: {k: v for k, v in d.items() if k not in strip} for u, d in verdicts(source_db).items()
    }
    # The same file into the database it came from: every measurement is already there.
    same = kuzot("import-ooni", "--db", source_db, str(out))
    assert "0 imported, 3 already present" in same.stdout


def test_cli_export_filters_and_formats(tmp_path: Path) -> None:
    """If export is asked for one domain, a time window, gzip or our own records, then it writes just that."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    lines = tmp_path / "lines.jsonl"
    later = ooni_line("https://24.kg/", report_id="20240101T000000Z_x", start="2024-01-01 00:00:00")
    lines.write_text(jsonl(dns_blocked_line(), ooni_line(), later))
    assert kuzot("import-ooni", "--db", db, str(lines)).returncode == 0

    one = tmp_path / "one.jsonl.gz"
    assert kuzot("export", "--db", db, "--domain", "kloop.kg", str(one)).returncode == 0
    assert [json.loads(x)["input"] for x in gzip.decompress(one.read_bytes()).decode().splitlines()] == [
        "https://kloop.kg/"
    ]
    window = kuzot("export", "--db", db, "--from", "2023-01-01", "--to", "2025-01-01", "-")
    assert window.returncode == 0 and [json.loads(x)["input"] for x in window.stdout.splitlines()] == [
        "https://24.kg/"
    ]
    records = tmp_path / "records.jsonl"
    assert kuzot("export", "--format", "jsonl", "--db", db, str(records)).returncode == 0
    read_back = {
        m.id: m for m in (Measurement.from_dict(json.loads(x)) for x in records.read_text().splitlines())
    }
    assert read_back == stored(db)
    assert not list(tmp_path.glob(".*.partial"))

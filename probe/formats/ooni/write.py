"""Ours -> OONI: our measurement as one OONI Web Connectivity measurement.

Kuzot-only facts travel in ``x_kuzot`` extension keys, which OONI's tools ignore and
:mod:`~probe.formats.ooni.read` reads back.  The probe's IP address is never written.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import dns.exception
import dns.rcode

from probe.failures import Failure
from probe.formats.ooni.failure_map import failure_to_ooni
from probe.formats.ooni.spec import (
    DATA_FORMAT_VERSION,
    EXPORT_TEST_VERSION,
    OONI_TIME_FORMAT,
    SCRUBBED_PROBE_IP,
    TEST_NAME,
    UNKNOWN_RESOLVER_IP,
    X_KUZOT,
)
from probe.formats.ooni.values import join_endpoint
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


def _ooni_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(OONI_TIME_FORMAT)


def _binary(data: bytes) -> dict[str, str]:
    return {"format": "base64", "data": base64.b64encode(data).decode("ascii")}


def _ooni_body(data: bytes) -> str | dict[str, str]:
    """Text when the bytes are UTF-8 (OONI's rule), base64 otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _binary(data)


def _ooni_header_value(value: str) -> str | dict[str, str]:
    """Our header values are the raw bytes read as latin-1; any that are not ASCII go
    out as those bytes in base64, so an import gives back exactly the same text."""
    if value.isascii():
        return value
    try:
        return _binary(value.encode("latin-1"))
    except UnicodeEncodeError:
        return value


def _answer_to_ooni(answer: DnsAnswer) -> dict[str, Any]:
    key = {"A": "ipv4", "AAAA": "ipv6"}.get(answer.rrtype, "hostname")
    return {"answer_type": answer.rrtype, key: answer.value, "ttl": answer.ttl}


def _rcode_number(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(dns.rcode.from_text(text))
    except (ValueError, dns.exception.DNSException):
        return None


def _query_to_ooni(obs: DnsObservation, *, rcode: str | None, answers: list[DnsAnswer], t: float) -> dict:
    system = obs.transport == "system"
    entry: dict[str, Any] = {
        "answers": [_answer_to_ooni(a) for a in answers] or None,
        "engine": "getaddrinfo" if system else obs.transport,
        "failure": failure_to_ooni(obs.failure),
        "hostname": obs.hostname,
        "query_type": obs.query_type,
        "resolver_hostname": None,
        "resolver_port": None,
        "resolver_address": "" if system else obs.resolver,
        "t0": obs.started,
        "t": t,
    }
    number = _rcode_number(rcode)
    if number is not None:
        entry["rcode"] = number
    return entry


#: The failure a late DNS reply's response code means, for OONI's ``failure`` key.
_RCODE_FAILURES: dict[str, Failure | None] = {
    "NOERROR": None,
    "NXDOMAIN": Failure.DNS_NXDOMAIN,
    "SERVFAIL": Failure.DNS_SERVER_FAILURE,
    "REFUSED": Failure.DNS_REFUSED,
}


def _duplicate_to_ooni(obs: DnsObservation, reply: DnsResponse) -> dict[str, Any]:
    entry = _query_to_ooni(obs, rcode=reply.rcode, answers=reply.answers, t=reply.received)
    entry["failure"] = failure_to_ooni(_RCODE_FAILURES.get(reply.rcode, Failure.DNS_SERVER_MISBEHAVING))
    return entry


def _tcp_to_ooni(obs: TcpObservation) -> dict[str, Any]:
    return {
        "ip": obs.ip,
        "port": obs.port,
        "status": {"failure": failure_to_ooni(obs.failure), "success": obs.failure is None},
        "t0": obs.started,
        "t": obs.finished,
    }


def _peer_certificates(certificates: list[CertificateInfo]) -> list[dict[str, str]]:
    return [{"format": "base64", "data": c.der_b64} for c in certificates if c.der_b64]


def _tls_to_ooni(obs: TlsObservation) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "network": "tcp",
        "address": join_endpoint(obs.ip, obs.port),
        "cipher_suite": obs.cipher or "",
        "failure": failure_to_ooni(obs.failure),
        "negotiated_protocol": obs.alpn or "",
        "no_tls_verify": False,
        "peer_certificates": _peer_certificates(obs.certificates),
        "server_name": obs.server_name,
        "t0": obs.started,
        "t": obs.finished,
        "tls_version": obs.version or "",
    }
    if obs.purpose != "target":
        entry[X_KUZOT] = {"purpose": obs.purpose}
    return entry


def _default_port(url: str) -> int:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return port or (443 if parts.scheme == "https" else 80)


def _headers_map(headers: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in headers:
        out.setdefault(name, _ooni_header_value(value))  # the first of a repeated name, as OONI
    return out


def _http_to_ooni(obs: HttpObservation) -> dict[str, Any]:
    https = urlsplit(obs.url).scheme == "https"
    alpn = {"HTTP/2": "h2", "HTTP/1.1": "http/1.1"}.get(obs.http_version or "", "") if https else ""
    response: dict[str, Any] = {
        "body": _ooni_body(obs.body_sample),
        "body_is_truncated": obs.body_truncated or len(obs.body_sample) < obs.body_length,
        "code": obs.status_code or 0,
        "headers_list": [[name, _ooni_header_value(value)] for name, value in obs.headers],
        "headers": _headers_map(obs.headers),
    }
    if obs.status_code is not None:
        response[X_KUZOT] = {
            "body_length": obs.body_length,
            "body_sha256": obs.body_sha256,
            "body_truncated": obs.body_truncated,
            "http_version": obs.http_version,
        }
    return {
        "network": "tcp",
        "address": join_endpoint(obs.ip, _default_port(obs.url)) if obs.ip else "",
        "alpn": alpn,
        "failure": failure_to_ooni(obs.failure),
        "request": {
            "body": "",
            "body_is_truncated": False,
            "headers_list": [],
            "headers": {},
            "method": "GET",
            "tor": {"exit_ip": None, "exit_name": None, "is_tor": False},
            "x_transport": "tcp",
            "url": obs.url,
        },
        "response": response,
        "t0": obs.started,
        "t": obs.finished,
    }


def _same_host(name: str, domain: str) -> bool:
    return name.strip().rstrip(".").lower() == domain


def _control_to_ooni(control: ControlObservations, domain: str) -> dict[str, Any]:
    """Our control in the shape of OONI's test-helper answer: one DNS result (the union
    of the control's answers for the site), endpoints by ``ip:port``, and the final
    response of the control's chain."""
    out: dict[str, Any] = {}
    lookups = [o for o in control.dns if _same_host(o.hostname, domain)] or control.dns
    if lookups:
        # CNAME targets too, as OONI's older helpers listed them: a name that resolves
        # only to an alias is still an answer, not a failure.
        addrs = list(
            dict.fromkeys(a.value for o in lookups for a in o.answers if a.rrtype in ("A", "AAAA", "CNAME"))
        )
        failures = [o.failure for o in lookups if o.failure is not None]
        out["dns"] = {
            "failure": None if addrs else failure_to_ooni(failures[0] if failures else None),
            "addrs": addrs,
        }
    if control.tcp:
        out["tcp_connect"] = {
            join_endpoint(o.ip, o.port): {"status": o.failure is None, "failure": failure_to_ooni(o.failure)}
            for o in control.tcp
        }
    handshakes = [o for o in control.tls if o.purpose == "target"]
    if handshakes:
        out["tls_handshake"] = {
            join_endpoint(o.ip, o.port): {
                "server_name": o.server_name,
                "status": o.failure is None,
                "failure": failure_to_ooni(o.failure),
                "peer_certificates": _peer_certificates(o.certificates),
            }
            for o in handshakes
        }
    if control.http:
        final = control.http[-1]
        answered = final.status_code is not None
        out["http_request"] = {
            "body_length": final.body_length if answered else -1,
            "failure": failure_to_ooni(final.failure),
            "title": final.title or "",
            "headers": _headers_map(final.headers),
            "status_code": final.status_code if answered else -1,
        }
    return out


def _report_id(m: Measurement) -> str:
    """OONI's shape (``<time>_webconnectivity_<CC>_<ASN>_n1_<random>``), one per run."""
    suffix = hashlib.sha256((m.run_id or m.id).encode()).hexdigest()[:16]
    cc = m.probe_cc or "ZZ"
    return (
        f"{m.started_at.astimezone(UTC):%Y%m%dT%H%M%SZ}_webconnectivity_{cc}_{m.probe_asn or 0}_n1_{suffix}"
    )


def _experiment_failures(m: Measurement) -> tuple[str | None, str | None]:
    """OONI's ``dns_experiment_failure`` (the system lookup's, when it gave no address)
    and ``http_experiment_failure`` (the final request's)."""
    system = [o for o in m.dns if o.transport == "system" and _same_host(o.hostname, m.domain)]
    dns_failure = None
    if system and not any(o.addresses() for o in system):
        dns_failure = next((failure_to_ooni(o.failure) for o in system if o.failure is not None), None)
    http_failure = failure_to_ooni(m.http[-1].failure) if m.http else None
    return dns_failure, http_failure


def _test_keys(
    m: Measurement, summary: Mapping[str, Any] | None, verdict: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Web Connectivity's ``test_keys``: the observations, the summary keys (``null``
    without ``summary``) and our own facts under ``x_kuzot``."""
    dns_failure, http_failure = _experiment_failures(m)
    control = m.control
    duplicates = [_duplicate_to_ooni(o, r) for o in m.dns for r in o.extra_responses]
    test_keys: dict[str, Any] = {
        "agent": "redirect",
        "client_resolver": None,
        "retries": None,
        "socksproxy": None,
        "queries": [_query_to_ooni(o, rcode=o.rcode, answers=o.answers, t=o.finished) for o in m.dns],
        "tcp_connect": [_tcp_to_ooni(o) for o in m.tcp],
        "tls_handshakes": [_tls_to_ooni(o) for o in m.tls],
        "requests": [_http_to_ooni(o) for o in reversed(m.http)],
        "control": _control_to_ooni(control, m.domain) if control is not None else {},
        "control_failure": failure_to_ooni(control.failure) if control is not None else None,
        "dns_experiment_failure": dns_failure,
        "http_experiment_failure": http_failure,
        "dns_consistency": None,
        "body_length_match": None,
        "body_proportion": None,
        "headers_match": None,
        "status_code_match": None,
        "title_match": None,
        "blocking": None,
        "accessible": None,
    }
    if duplicates:
        test_keys["x_dns_duplicate_responses"] = duplicates
    test_keys.update(summary or {})
    ext: dict[str, Any] = {"measurement_id": m.id}
    if m.category_code:
        ext["category_code"] = m.category_code
    if m.annotations:
        ext["annotations"] = dict(m.annotations)
    if control is not None:
        ext["control_source"] = control.source
    if verdict:
        ext["verdict"] = dict(verdict)
    test_keys[X_KUZOT] = ext
    return test_keys


def measurement_to_ooni(
    m: Measurement,
    *,
    summary: Mapping[str, Any] | None = None,
    verdict: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Our measurement as one OONI Web Connectivity measurement (a JSON-ready dict).

    ``summary`` holds OONI's summary test keys (``blocking``, ``accessible`` and the
    comparisons), which are judgements and so come from the caller; without it they
    are ``null``, OONI's "not determined".  ``verdict`` is our own verdict, kept in
    ``test_keys.x_kuzot``.
    """
    start = _ooni_time(m.started_at)
    control = m.control
    test_keys = _test_keys(m, summary, verdict)
    helper = control.source if control is not None else ""
    out: dict[str, Any] = {
        "annotations": {"engine_name": m.software_name, "engine_version": m.software_version},
        "data_format_version": DATA_FORMAT_VERSION,
        "input": m.url,
        "measurement_start_time": start,
        "probe_asn": f"AS{m.probe_asn or 0}",
        "probe_cc": m.probe_cc or "ZZ",
        "probe_ip": SCRUBBED_PROBE_IP,
        "probe_network_name": m.probe_network or "",
        "report_id": m.annotations.get("ooni.report_id") or _report_id(m),
        "resolver_asn": "AS0",
        "resolver_ip": UNKNOWN_RESOLVER_IP,
        "resolver_network_name": "",
        "software_name": m.software_name,
        "software_version": m.software_version,
        "test_helpers": (
            {"backend": {"address": helper, "type": "https"}}
            if helper and not helper.startswith("doh:")
            else {}
        ),
        "test_keys": test_keys,
        "test_name": TEST_NAME,
        "test_runtime": m.runtime,
        "test_start_time": start,
        "test_version": EXPORT_TEST_VERSION,
    }
    if m.annotations.get("ooni.measurement_uid"):
        out["measurement_uid"] = m.annotations["ooni.measurement_uid"]
    return out


def dumps_line(data: Mapping[str, Any]) -> str:
    """One JSON Lines line (no trailing newline), UTF-8 text as OONI writes it."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

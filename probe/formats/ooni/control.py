"""OONI's test-helper answer (``control``, ``control_failure``) as our control observations.

Why apart from the probe's observations: the helper reports less than a probe records
(one lookup, endpoints by ``ip:port``, the final response only), so its mapping has
its own ids (``control/dns/0``, ``control/tcp/N``, ``control/tls/N``, ``control/http/0``)
and defaults.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from probe.failures import Failure
from probe.formats.ooni.failure_map import failure_from_ooni, tls_validated
from probe.formats.ooni.spec import X_KUZOT
from probe.formats.ooni.values import (
    address_rrtype,
    as_dict,
    as_int,
    as_list,
    as_str,
    certificates_of,
    headers_of,
    split_endpoint,
)
from probe.records import (
    ControlObservations,
    DnsAnswer,
    DnsObservation,
    HttpObservation,
    TcpObservation,
    TlsObservation,
)


def _control_endpoints(
    part: Any, originals: set[str]
) -> Iterator[tuple[tuple[str, int], dict[str, Any], Failure | None]]:
    """The helper's per-endpoint results ("ip:port" -> {status, failure}).  A false status
    without a failure string still failed: OONI's older helpers wrote only the flag."""
    for key, value in as_dict(part).items():
        endpoint = split_endpoint(key)
        if endpoint is None:
            continue
        status = as_dict(value)
        failure = failure_from_ooni(status.get("failure"), originals)
        if failure is None and status.get("status") is False:
            failure = Failure.UNKNOWN
        yield endpoint, status, failure


def control_from_ooni(
    data: Mapping[str, Any], tk: Mapping[str, Any], domain: str, url: str, originals: set[str]
) -> ControlObservations | None:
    """OONI's test-helper answer as our control observations (one of each at most for
    DNS and HTTP: the helper reports one lookup and the final response only)."""
    control = as_dict(tk.get("control"))
    failure = failure_from_ooni(tk.get("control_failure"), originals)
    if not control and failure is None:
        return None
    backend = as_dict(as_dict(data.get("test_helpers")).get("backend"))
    source = as_str(as_dict(tk.get(X_KUZOT)).get("control_source")) or as_str(backend.get("address"))
    result = ControlObservations(source=source or "ooni-test-helper", failure=failure)
    result.dns.extend(_control_dns(control, domain, originals))
    for endpoint, _status, tcp_failure in _control_endpoints(control.get("tcp_connect"), originals):
        result.tcp.append(
            TcpObservation(f"control/tcp/{len(result.tcp)}", endpoint[0], endpoint[1], 0.0, 0.0, tcp_failure)
        )
    result.tls.extend(_control_tls(control, domain, originals))
    result.http.extend(_control_http(control, url, originals))
    return result


def _control_dns(control: Mapping[str, Any], domain: str, originals: set[str]) -> list[DnsObservation]:
    """The helper's one lookup (``control.dns``), if it made one."""
    dns_part = as_dict(control.get("dns"))
    addrs = [str(a) for a in as_list(dns_part.get("addrs")) if a]
    dns_failure = failure_from_ooni(dns_part.get("failure"), originals)
    if addrs or dns_failure is not None:
        # Old helpers list CNAME targets among the addresses.
        answers = [DnsAnswer(address_rrtype(a) or "CNAME", a) for a in addrs]
        return [
            DnsObservation(
                id="control/dns/0",
                hostname=domain,
                query_type="ANY",
                resolver="system",
                transport="system",
                started=0.0,
                finished=0.0,
                failure=dns_failure,
                answers=answers,
            )
        ]
    return []


def _control_tls(control: Mapping[str, Any], domain: str, originals: set[str]) -> list[TlsObservation]:
    """The helper's handshakes (``control.tls_handshake``), by endpoint."""
    handshakes: list[TlsObservation] = []
    for endpoint, status, tls_failure in _control_endpoints(control.get("tls_handshake"), originals):
        handshakes.append(
            TlsObservation(
                id=f"control/tls/{len(handshakes)}",
                ip=endpoint[0],
                port=endpoint[1],
                server_name=str(status.get("server_name") or domain),
                started=0.0,
                finished=0.0,
                failure=tls_failure,
                certificates=certificates_of(status.get("peer_certificates")),
                validated=tls_validated(tls_failure, False),
            )
        )
    return handshakes


def _control_http(control: Mapping[str, Any], url: str, originals: set[str]) -> list[HttpObservation]:
    """The helper's final response (``control.http_request``), if it reports one."""
    page = control.get("http_request")
    if isinstance(page, dict):
        code = as_int(page.get("status_code"))
        status_code = code if code is not None and code > 0 else None
        length = as_int(page.get("body_length"))
        return [
            HttpObservation(
                id="control/http/0",
                url=url,
                ip=None,
                started=0.0,
                finished=0.0,
                failure=failure_from_ooni(page.get("failure"), originals),
                status_code=status_code,
                headers=headers_of(page),
                title=as_str(page.get("title")),
                body_length=length if length is not None and length > 0 else 0,
            )
        ]
    return []

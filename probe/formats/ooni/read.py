"""OONI -> ours: one parsed Web Connectivity measurement as our archival record.

Mapping: ``queries`` -> ``dns`` (with ``x_dns_duplicate_responses`` as the matching
query's ``extra_responses``), ``tcp_connect`` -> ``tcp``, ``tls_handshakes`` -> ``tls``,
``requests`` (last-first in OONI) -> ``http`` in order, ``control`` +
``control_failure`` -> :class:`~probe.records.ControlObservations`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from probe.failures import Failure
from probe.formats.ooni.control import control_from_ooni
from probe.formats.ooni.failure_map import failure_from_ooni, tls_validated
from probe.formats.ooni.spec import OONI_ID_NAMESPACE, OONI_TIME_FORMAT, TEST_NAME, X_KUZOT, OoniFormatError
from probe.formats.ooni.values import (
    as_dict,
    as_float,
    as_int,
    as_list,
    as_str,
    body_bytes,
    certificates_of,
    charset_of,
    headers_of,
    query_rcode,
    split_endpoint,
)
from probe.records import (
    DnsAnswer,
    DnsObservation,
    DnsResponse,
    HttpObservation,
    Measurement,
    TcpObservation,
    TlsObservation,
    parse_time,
)
from probe.steps.http import BODY_SAMPLE_BYTES, extract_title

#: Engines that are the operating system's resolver (OONI df-002-dnst).
_SYSTEM_ENGINES = frozenset({"system", "getaddrinfo", "golang_net_resolver", "go", "unknown", ""})


def _answers(items: Any) -> list[DnsAnswer]:
    answers: list[DnsAnswer] = []
    for item in as_list(items):
        if not isinstance(item, dict):
            continue
        rrtype = str(item.get("answer_type") or "").upper()
        if rrtype == "A":
            value = item.get("ipv4")
        elif rrtype == "AAAA":
            value = item.get("ipv6")
        else:
            value = item.get("hostname") or item.get("ipv4") or item.get("ipv6")
        if not value or not rrtype:
            continue
        answers.append(DnsAnswer(rrtype, str(value), as_int(item.get("ttl"))))
    return answers


def _query_transport(query: Mapping[str, Any]) -> tuple[str, str]:
    """(transport, resolver) of one OONI query."""
    engine = str(query.get("engine") or "system").lower()
    if engine in _SYSTEM_ENGINES:
        return "system", "system"
    address = as_str(query.get("resolver_address"))
    if address is None and query.get("resolver_hostname"):
        port = query.get("resolver_port")
        address = f"{query['resolver_hostname']}:{port}" if port else str(query["resolver_hostname"])
    return engine, address or "unknown"


def _dns(tk: Mapping[str, Any], domain: str, originals: set[str]) -> list[DnsObservation]:
    observations: list[DnsObservation] = []
    for query in as_list(tk.get("queries")):
        if not isinstance(query, dict):
            continue
        transport, resolver = _query_transport(query)
        failure = failure_from_ooni(query.get("failure"), originals)
        started = as_float(query.get("t0"), as_float(query.get("t")))
        observations.append(
            DnsObservation(
                id=f"dns/{len(observations)}",
                hostname=str(query.get("hostname") or domain),
                query_type=str(query.get("query_type") or "A").upper(),
                resolver=resolver,
                transport=transport,
                started=started,
                finished=as_float(query.get("t"), started),
                failure=failure,
                rcode=query_rcode(query, transport, failure),
                answers=_answers(query.get("answers")),
            )
        )
    # Late replies to one query (an injector and then the real resolver) -> extra_responses.
    for extra in as_list(tk.get("x_dns_duplicate_responses")):
        if not isinstance(extra, dict):
            continue
        transport, resolver = _query_transport(extra)
        key = (str(extra.get("hostname") or domain), str(extra.get("query_type") or "A").upper(), resolver)
        for obs in observations:
            if (obs.hostname, obs.query_type, obs.resolver) == key:
                failure = failure_from_ooni(extra.get("failure"), originals)
                obs.extra_responses.append(
                    DnsResponse(
                        received=as_float(extra.get("t"), obs.finished),
                        rcode=query_rcode(extra, "udp", failure) or "NOERROR",
                        answers=_answers(extra.get("answers")),
                    )
                )
                break
    return observations


def _tcp(tk: Mapping[str, Any], originals: set[str]) -> list[TcpObservation]:
    observations: list[TcpObservation] = []
    for entry in as_list(tk.get("tcp_connect")):
        if not isinstance(entry, dict) or not entry.get("ip"):
            continue
        port = as_int(entry.get("port"))
        if port is None:
            continue
        status = as_dict(entry.get("status"))
        failure = failure_from_ooni(status.get("failure"), originals)
        if failure is None and status.get("success") is False:
            failure = Failure.UNKNOWN  # failed, without saying how
        started = as_float(entry.get("t0"), as_float(entry.get("t")))
        observations.append(
            TcpObservation(
                id=f"tcp/{len(observations)}",
                ip=str(entry["ip"]),
                port=port,
                started=started,
                finished=as_float(entry.get("t"), started),
                failure=failure,
            )
        )
    return observations


def _tls(tk: Mapping[str, Any], domain: str, originals: set[str]) -> list[TlsObservation]:
    observations: list[TlsObservation] = []
    for entry in as_list(tk.get("tls_handshakes")):
        if not isinstance(entry, dict):
            continue
        endpoint = split_endpoint(entry.get("address"))
        if endpoint is None:
            continue
        failure = failure_from_ooni(entry.get("failure"), originals)
        started = as_float(entry.get("t0"), as_float(entry.get("t")))
        ext = as_dict(entry.get(X_KUZOT))
        observations.append(
            TlsObservation(
                id=f"tls/{len(observations)}",
                ip=endpoint[0],
                port=endpoint[1],
                server_name=str(entry.get("server_name") or domain),
                started=started,
                finished=as_float(entry.get("t"), started),
                failure=failure,
                version=as_str(entry.get("tls_version")),
                cipher=as_str(entry.get("cipher_suite")),
                alpn=as_str(entry.get("negotiated_protocol")),
                certificates=certificates_of(entry.get("peer_certificates")),
                validated=tls_validated(failure, bool(entry.get("no_tls_verify"))),
                purpose=str(ext.get("purpose") or "target"),
            )
        )
    return observations


_ALPN_VERSIONS = {"h2": "HTTP/2", "http/1.1": "HTTP/1.1", "h3": "HTTP/3"}


def _http_version(
    entry: Mapping[str, Any], response: Mapping[str, Any], ext: Mapping[str, Any]
) -> str | None:
    if ext.get("http_version"):
        return str(ext["http_version"])
    alpn = str(entry.get("alpn") or "").lower()
    if alpn in _ALPN_VERSIONS:
        return _ALPN_VERSIONS[alpn]
    line = response.get("response_line")
    if isinstance(line, str) and line.startswith("HTTP/"):
        return line.split()[0]
    return None


def _http(tk: Mapping[str, Any], url: str, originals: set[str]) -> list[HttpObservation]:
    entries = [e for e in as_list(tk.get("requests")) if isinstance(e, dict)]
    observations: list[HttpObservation] = []
    for entry in reversed(entries):  # OONI: the final response first
        request = as_dict(entry.get("request"))
        response = as_dict(entry.get("response"))
        ext = as_dict(response.get(X_KUZOT))
        code = as_int(response.get("code"))
        status = code if code is not None and code > 0 else None
        endpoint = split_endpoint(entry.get("address"))
        started = as_float(entry.get("t0"), as_float(entry.get("t")))
        obs = HttpObservation(
            id=f"http/{len(observations)}",
            url=str(request.get("url") or url),
            ip=endpoint[0] if endpoint else None,
            started=started,
            finished=as_float(entry.get("t"), started),
            failure=failure_from_ooni(entry.get("failure"), originals),
            status_code=status,
            http_version=_http_version(entry, response, ext),
            headers=headers_of(response),
        )
        if status is not None:  # as our HTTP step: body facts only once a response began
            body = body_bytes(response.get("body"))
            length = as_int(ext.get("body_length"))
            obs.body_length = length if length is not None and length >= len(body) else len(body)
            obs.body_sha256 = as_str(ext.get("body_sha256")) or hashlib.sha256(body).hexdigest()
            obs.body_sample = body[:BODY_SAMPLE_BYTES]
            truncated = ext.get("body_truncated", response.get("body_is_truncated"))
            obs.body_truncated = bool(truncated)
            obs.title = extract_title(obs.body_sample, charset_of(obs.headers))
        observations.append(obs)
    return observations


def _start_time(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise OoniFormatError("no measurement_start_time")
    if len(value) == 19 and value[4] == "-" and value[10] == " " and value[13] == ":":
        try:  # OONI's own format, read without strptime (a tenth of an import's time)
            return datetime(
                int(value[0:4]), int(value[5:7]), int(value[8:10]),
                int(value[11:13]), int(value[14:16]), int(value[17:19]), tzinfo=UTC,
            )  # fmt: skip
        except ValueError:
            pass
    try:
        return datetime.strptime(value, OONI_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return parse_time(value)
    except ValueError:
        raise OoniFormatError(f"measurement_start_time {value!r} is not a time") from None


def _asn(value: Any) -> int | None:
    """``"AS12345"`` -> 12345; ``"AS0"`` (OONI's "unknown") -> None."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().upper().removeprefix("AS").isdigit():
        number = int(value.strip().upper().removeprefix("AS"))
    else:
        raise OoniFormatError(f"probe_asn {value!r} is not an AS number")
    return number or None


def _valid_uuid(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError):
        return None


def measurement_id(data: Mapping[str, Any]) -> str:
    """A stable id for one OONI measurement, so a second import stores nothing new.

    Our own exports carry the original id; an OONI measurement is named by its
    ``report_id``, ``input`` and start time, which every copy of it holds (API
    downloads, raw S3 cans, files from OONI Explorer), and only then by the
    ``measurement_uid`` that OONI's pipeline adds later.
    """
    own = _valid_uuid(as_dict(as_dict(data.get("test_keys")).get(X_KUZOT)).get("measurement_id"))
    if own is not None:
        return own
    report_id = as_str(data.get("report_id"))
    if report_id is not None:
        key = f"report:{report_id}\n{data.get('input')}\n{data.get('measurement_start_time')}"
        return str(uuid.uuid5(OONI_ID_NAMESPACE, key))
    uid = as_str(data.get("measurement_uid"))
    if uid is not None:
        return str(uuid.uuid5(OONI_ID_NAMESPACE, f"uid:{uid}"))
    raise OoniFormatError("neither report_id nor measurement_uid: no stable id")


def _json_text(value: Any) -> str:
    """An OONI summary key for an annotation: ``"dns"``, ``"false"``, ``"null"``."""
    return value if isinstance(value, str) else json.dumps(value)


def _required_fields(data: Any) -> tuple[str, str, datetime, int | None, dict[str, Any]]:
    """The input URL, its host, the start time, the AS number and the test keys, or the
    :class:`OoniFormatError` saying which one is missing (checked in this order)."""
    if not isinstance(data, dict):
        raise OoniFormatError(f"a JSON {type(data).__name__}, not a measurement object")
    test_name = data.get("test_name")
    if test_name != TEST_NAME:
        raise OoniFormatError(f"test_name is {test_name!r}, not {TEST_NAME!r}")
    url = data.get("input")
    if not isinstance(url, str) or not url:
        raise OoniFormatError("no input URL")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:  # "http://[::1": an unclosed IPv6 literal
        raise OoniFormatError(f"input {url[:200]!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise OoniFormatError(f"input {url[:200]!r} is not an http(s) URL")
    started_at = _start_time(data.get("measurement_start_time"))
    if "probe_asn" not in data:
        raise OoniFormatError("no probe_asn")
    probe_asn = _asn(data.get("probe_asn"))
    tk = data.get("test_keys")
    if not isinstance(tk, dict):
        raise OoniFormatError("test_keys is missing or null: the measurement did not run")
    return url, hostname, started_at, probe_asn, tk


def _annotations(
    data: Mapping[str, Any], tk: Mapping[str, Any], ext: Mapping[str, Any], url: str, originals: set[str]
) -> dict[str, str]:
    """Our annotations back from ``x_kuzot``; for OONI's own measurement, what names it in
    OONI's data and what OONI concluded; and the failure strings OONI really wrote."""
    annotations = as_dict(ext.get("annotations"))
    out = {str(k): str(v) for k, v in annotations.items() if v is not None}
    if not ext:  # OONI's own measurement: keep what names it in OONI's data and what OONI concluded
        for key in ("report_id", "measurement_uid", "test_version"):
            if as_str(data.get(key)):
                out[f"ooni.{key}"] = str(data[key])
        if "ooni.measurement_uid" not in out:
            # Without OONI's uid, Explorer finds a measurement by report id and input.
            out["ooni.input"] = url
        for key in ("blocking", "accessible"):
            if key in tk:
                out[f"ooni.{key}"] = _json_text(tk[key])
    if originals:
        out["ooni.original_failures"] = ",".join(sorted(originals))
    return out


def measurement_from_ooni(data: Any, *, check_encoding: bool = True) -> Measurement:
    """One OONI Web Connectivity measurement (a parsed JSON object) as our record.

    Raises :class:`OoniFormatError` for anything that is not one: another test, or a
    measurement without the fields a verdict needs (input URL, start time, probe
    network, test keys, a stable id).  ``check_encoding=False`` skips making the
    canonical JSON to find strings UTF-8 cannot hold; a caller that makes it anyway
    (the bulk importer) catches ``UnicodeEncodeError`` and calls :func:`scrubbed`.
    """
    url, hostname, started_at, probe_asn, tk = _required_fields(data)
    mid = measurement_id(data)
    domain = hostname.lower()
    ext = as_dict(tk.get(X_KUZOT))
    originals: set[str] = set()
    cc = as_str(data.get("probe_cc"))
    m = Measurement(
        id=mid,
        url=url,
        domain=domain,
        started_at=started_at,
        runtime=as_float(data.get("test_runtime")),
        category_code=as_str(ext.get("category_code")),
        probe_asn=probe_asn,
        probe_cc=cc.upper() if cc and cc.upper() != "ZZ" else None,
        probe_network=as_str(data.get("probe_network_name")),
        software_name=str(data.get("software_name") or "unknown"),
        software_version=str(data.get("software_version") or ""),
        dns=_dns(tk, domain, originals),
        tcp=_tcp(tk, originals),
        tls=_tls(tk, domain, originals),
        http=_http(tk, url, originals),
        control=control_from_ooni(data, tk, domain, url, originals),
    )
    m.annotations = _annotations(data, tk, ext, url, originals)
    if not check_encoding:
        return m
    try:
        m.canonical_json()
    except UnicodeEncodeError:
        # A lone surrogate escaped in OONI's JSON ("\\ud800") cannot be stored as UTF-8.
        return scrubbed(data)
    return m


def scrubbed(data: Any) -> Measurement:
    """The measurement with every string made encodable as UTF-8 first."""
    return measurement_from_ooni(_scrub(data))


def _scrub(value: Any) -> Any:
    """``value`` with every string made encodable as UTF-8 (bad code points replaced)."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value

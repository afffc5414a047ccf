"""OONI's Web Connectivity measurements, to and from our archival records.

Why: analysts already hold years of OONI measurements from Kyrgyzstan.  Imported as
:class:`~probe.records.Measurement` objects they are judged by the same rules as ours
(:mod:`analysis.verdicts`), so a ten-year series can be told in one vocabulary; and
exported in OONI's format, our measurements can be read by OONI's tools and by people
who know OONI's data.

Reading is lenient because OONI's format grew over a decade: ooniprobe-legacy and
Measurement Kit (``test_version`` 0.0.x-0.3.x), probe-engine (0.4.x) and the
"LTE" implementation (0.5.x) all write Web Connectivity a little differently.  Bodies
and header values are strings or ``{"format": "base64", "data": ...}`` (sometimes with
broken padding); headers come as ``headers_list`` pairs or a ``headers`` map; almost any
key may be missing or ``null``.  What cannot be read makes the whole line an
:class:`OoniFormatError` whose message says why, never an exception from deep inside.

Mapping (OONI -> ours; the export is the inverse):

- ``test_keys.queries`` -> ``dns`` (``getaddrinfo``/``system``/``go`` engines are our
  ``system`` transport; ``udp``, ``tcp``, ``dot``, ``doh`` keep their names, with
  ``resolver_address`` as the resolver); ``x_dns_duplicate_responses`` -> the
  matching query's ``extra_responses``.
- ``tcp_connect`` -> ``tcp``; ``tls_handshakes`` -> ``tls`` (peer certificates are
  base64 DER, summarised and fingerprinted as our TLS step does).
- ``requests`` -> ``http``.  OONI lists requests last-first; ours are in order.
- ``control`` + ``control_failure`` -> :class:`ControlObservations` (``control/dns/0``,
  ``control/tcp/N``, ``control/tls/N``, ``control/http/0``).
- Failure strings: OONI's current strings are ours; legacy ones are mapped
  (:func:`failure_from_ooni`) and the originals kept in the annotation
  ``ooni.original_failures``.

Kuzot-only facts (our measurement id, the exact body length and hash, a DNS-only
control, the verdict) travel in ``x_kuzot`` extension keys, as OONI itself adds
``x_*`` keys; OONI's tools ignore them and our importer reads them back, so an export
imported again gives equivalent observations.  What the format cannot carry at all:
several control resolvers (OONI's test helper has one answer), the control's redirect
chain (it reports the final response only), sub-second start times, and the
observation ids of a chain that was not numbered in order.

The probe's IP address is never written: ``probe_ip`` is ``127.0.0.1``, OONI's own
value for a scrubbed address.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import ipaddress
import json
import re
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import dns.exception
import dns.message
import dns.rcode

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; stay readable without it
    _orjson = None

from probe.errors import InputError
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
    parse_time,
)
from probe.steps.http import BODY_SAMPLE_BYTES, extract_title
from probe.steps.tls import certificate_info

#: OONI's base data format version, which every Web Connectivity measurement carries.
DATA_FORMAT_VERSION = "0.2.0"
TEST_NAME = "web_connectivity"
#: The version we claim on export.  Below 0.5 OONI's tools treat every observation as
#: part of the "classic" algorithm, which ours are (one fetch, no depth tags); 0.5
#: would make them look for ``depth=N``/``fetch_body`` tags we do not write.
EXPORT_TEST_VERSION = "0.4.3"
#: OONI's value for a scrubbed probe address; the only probe_ip we ever write.
SCRUBBED_PROBE_IP = "127.0.0.1"
#: OONI's value for a resolver address it does not know.
UNKNOWN_RESOLVER_IP = "127.0.0.2"
#: ``measurement_start_time`` and ``test_start_time``: UTC, to the second.
OONI_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Names imported measurement ids (uuid5), so that importing a file twice stores each
#: measurement once.  Never change it: every imported id depends on it.
OONI_ID_NAMESPACE = uuid.UUID("15766698-5d67-4bca-849c-e9137525bc9b")
#: The extension key (in ``test_keys`` and inside some entries) for Kuzot-only facts.
X_KUZOT = "x_kuzot"


class OoniFormatError(InputError, ValueError):
    """One line that is not an importable Web Connectivity measurement; says why."""


# --- failures ----------------------------------------------------------------------------

#: Strings OONI wrote that are not ours, mapped to the nearest failure we have.  Legacy
#: (ooniprobe-legacy, Measurement Kit) names come from OONI's df-007-errors spec.
_FAILURE_ALIASES: dict[str, Failure] = {
    "dns_servfail_error": Failure.DNS_SERVER_FAILURE,
    "dns_name_failure": Failure.DNS_SERVER_FAILURE,
    "dns_name_error": Failure.DNS_NXDOMAIN,
    "android_dns_cache_no_data": Failure.DNS_NXDOMAIN,  # how Android's getaddrinfo says NXDOMAIN
    "dns_lookup_error": Failure.DNS_SERVER_MISBEHAVING,  # legacy: any resolver error, NXDOMAIN or not
    "dns_bogon_error": Failure.DNS_BOGUS_RESPONSE,
    "dns_reply_with_wrong_query_id": Failure.DNS_BOGUS_RESPONSE,
    "dns_lookup_timeout_error": Failure.GENERIC_TIMEOUT,
    "connection_refused_error": Failure.CONNECTION_REFUSED,
    "connection_lost_error": Failure.CONNECTION_RESET,
    "network_reset": Failure.CONNECTION_RESET,
    "connection_done": Failure.EOF,
    "response_never_received": Failure.EOF,
    "deferred_timeout_error": Failure.GENERIC_TIMEOUT,
    "tcp_timed_out_error": Failure.GENERIC_TIMEOUT,
    "task_timed_out": Failure.GENERIC_TIMEOUT,
    "timed_out": Failure.GENERIC_TIMEOUT,
    "ssl_unknown_autority": Failure.SSL_UNKNOWN_AUTHORITY,  # sic, as in OONI's spec
    "http_invalid_redirect_url": Failure.HTTP_INVALID_REDIRECT,
}

#: Our failures whose OONI name differs (the export side of the aliases above).
_FAILURE_EXPORT_NAMES: dict[Failure, str] = {Failure.DNS_SERVER_FAILURE: "dns_servfail_error"}
#: OONI's names for exactly our failures: reading them loses nothing worth keeping.
_SAME_MEANING: dict[str, Failure] = {name: failure for failure, name in _FAILURE_EXPORT_NAMES.items()}

_CERTIFICATE_FAILURES = frozenset(
    {Failure.SSL_UNKNOWN_AUTHORITY, Failure.SSL_INVALID_HOSTNAME, Failure.SSL_INVALID_CERTIFICATE}
)


def failure_from_ooni(value: Any, originals: set[str] | None = None) -> Failure | None:
    """Our failure for one OONI ``failure`` value; ``None`` for success.

    A string that is not exactly ours is added to ``originals`` (when given), so the
    importer can keep what OONI really wrote next to our reading of it.
    """
    if value is None or value == "":
        return None
    text = str(value)
    try:
        return Failure(text)
    except ValueError:
        pass
    if text in _SAME_MEANING:
        return _SAME_MEANING[text]
    if originals is not None:
        originals.add(text)
    if text in _FAILURE_ALIASES:
        return _FAILURE_ALIASES[text]
    if text.startswith("ssl_error"):
        # Measurement Kit wrote OpenSSL's message after the prefix.
        return (
            Failure.SSL_INVALID_CERTIFICATE
            if "certificate verify failed" in text
            else Failure.SSL_FAILED_HANDSHAKE
        )
    return Failure.UNKNOWN


def failure_to_ooni(failure: Failure | None) -> str | None:
    if failure is None:
        return None
    return _FAILURE_EXPORT_NAMES.get(failure, failure.value)


# --- small readers -----------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _float(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text or None


def _b64decode(data: str) -> bytes:
    """Base64 as OONI wrote it, padding or not; undecodable text is kept as its bytes."""
    cleaned = "".join(data.split())
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        return data.encode("utf-8", errors="replace")


def _is_binary(value: Any) -> bool:
    return isinstance(value, dict) and value.get("format") == "base64" and isinstance(value.get("data"), str)


def _bytes(value: Any) -> bytes:
    """A body: OONI's text (the UTF-8 of the bytes), base64 for other bytes, or null."""
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogatepass")
    if _is_binary(value):
        return _b64decode(value["data"])
    return json.dumps(value).encode()


def _header_value(value: Any) -> str:
    """A header value; raw bytes become latin-1 text, as our HTTP step keeps them."""
    if isinstance(value, str):
        return value
    if _is_binary(value):
        return _b64decode(value["data"]).decode("latin-1")
    return "" if value is None else str(value)


def _headers(response: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Headers in order: ``headers_list`` when present (it keeps repeated names), else
    the ``headers`` map (values may be lists), else ``headers`` written as pairs."""
    source = response.get("headers_list")
    if not isinstance(source, list):
        source = response.get("headers")
    pairs: list[tuple[str, str]] = []
    if isinstance(source, dict):
        for name, value in source.items():
            for one in value if isinstance(value, list) else [value]:
                pairs.append((str(name), _header_value(one)))
    elif isinstance(source, list):
        for item in source:
            if isinstance(item, list | tuple) and len(item) == 2:
                pairs.append((_header_value(item[0]), _header_value(item[1])))
    return pairs


def _split_endpoint(text: Any) -> tuple[str, int] | None:
    """``"1.2.3.4:443"`` or ``"[2001:db8::1]:443"`` -> (ip, port); None when unreadable."""
    if not isinstance(text, str) or not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        return None
    return host, int(port)


def join_endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _address_rrtype(value: str) -> str | None:
    try:
        return "A" if ipaddress.ip_address(value).version == 4 else "AAAA"
    except ValueError:
        return None


_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)


def _charset(headers: Iterable[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name.lower() == "content-type":
            match = _CHARSET.search(value)
            if match:
                return match.group(1)
    return None


def _certificates(value: Any) -> list[CertificateInfo]:
    out: list[CertificateInfo] = []
    for item in _list(value):
        if _is_binary(item):
            der = _b64decode(item["data"])
            if der:
                out.append(certificate_info(der))
    return out


def _rcode_text(code: Any) -> str | None:
    number = _int(code)
    if number is None:
        return None
    try:
        return dns.rcode.to_text(dns.rcode.Rcode.make(number))
    except (ValueError, dns.exception.DNSException):
        return None


_FAILURE_RCODES: dict[Failure | None, str] = {
    None: "NOERROR",
    Failure.DNS_NO_ANSWER: "NOERROR",
    Failure.DNS_NXDOMAIN: "NXDOMAIN",
    Failure.DNS_SERVER_FAILURE: "SERVFAIL",
    Failure.DNS_REFUSED: "REFUSED",
}


def _query_rcode(query: Mapping[str, Any], transport: str, failure: Failure | None) -> str | None:
    """The reply's response code: OONI's ``rcode``, else the ``raw_response``'s, else
    what the failure implies.  getaddrinfo shows no rcode, as in our own records."""
    from_field = _rcode_text(query.get("rcode"))
    if from_field is not None:
        return from_field
    raw = query.get("raw_response")
    if isinstance(raw, str) and raw:
        try:
            return dns.rcode.to_text(dns.message.from_wire(_b64decode(raw)).rcode())
        except (dns.exception.DNSException, ValueError, IndexError):
            pass
    if transport == "system":
        return None
    return _FAILURE_RCODES.get(failure)


# --- OONI -> ours ---------------------------------------------------------------------------

#: Engines that are the operating system's resolver (OONI df-002-dnst).
_SYSTEM_ENGINES = frozenset({"system", "getaddrinfo", "golang_net_resolver", "go", "unknown", ""})


def _answers(items: Any) -> list[DnsAnswer]:
    answers: list[DnsAnswer] = []
    for item in _list(items):
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
        answers.append(DnsAnswer(rrtype, str(value), _int(item.get("ttl"))))
    return answers


def _query_transport(query: Mapping[str, Any]) -> tuple[str, str]:
    """(transport, resolver) of one OONI query."""
    engine = str(query.get("engine") or "system").lower()
    if engine in _SYSTEM_ENGINES:
        return "system", "system"
    address = _str(query.get("resolver_address"))
    if address is None and query.get("resolver_hostname"):
        port = query.get("resolver_port")
        address = f"{query['resolver_hostname']}:{port}" if port else str(query["resolver_hostname"])
    return engine, address or "unknown"


def _dns(tk: Mapping[str, Any], domain: str, originals: set[str]) -> list[DnsObservation]:
    observations: list[DnsObservation] = []
    for query in _list(tk.get("queries")):
        if not isinstance(query, dict):
            continue
        transport, resolver = _query_transport(query)
        failure = failure_from_ooni(query.get("failure"), originals)
        started = _float(query.get("t0"), _float(query.get("t")))
        observations.append(
            DnsObservation(
                id=f"dns/{len(observations)}",
                hostname=str(query.get("hostname") or domain),
                query_type=str(query.get("query_type") or "A").upper(),
                resolver=resolver,
                transport=transport,
                started=started,
                finished=_float(query.get("t"), started),
                failure=failure,
                rcode=_query_rcode(query, transport, failure),
                answers=_answers(query.get("answers")),
            )
        )
    # Late replies to one query (an injector and then the real resolver) -> extra_responses.
    for extra in _list(tk.get("x_dns_duplicate_responses")):
        if not isinstance(extra, dict):
            continue
        transport, resolver = _query_transport(extra)
        key = (str(extra.get("hostname") or domain), str(extra.get("query_type") or "A").upper(), resolver)
        for obs in observations:
            if (obs.hostname, obs.query_type, obs.resolver) == key:
                failure = failure_from_ooni(extra.get("failure"), originals)
                obs.extra_responses.append(
                    DnsResponse(
                        received=_float(extra.get("t"), obs.finished),
                        rcode=_query_rcode(extra, "udp", failure) or "NOERROR",
                        answers=_answers(extra.get("answers")),
                    )
                )
                break
    return observations


def _tcp(tk: Mapping[str, Any], originals: set[str]) -> list[TcpObservation]:
    observations: list[TcpObservation] = []
    for entry in _list(tk.get("tcp_connect")):
        if not isinstance(entry, dict) or not entry.get("ip"):
            continue
        port = _int(entry.get("port"))
        if port is None:
            continue
        status = _dict(entry.get("status"))
        failure = failure_from_ooni(status.get("failure"), originals)
        if failure is None and status.get("success") is False:
            failure = Failure.UNKNOWN  # failed, without saying how
        started = _float(entry.get("t0"), _float(entry.get("t")))
        observations.append(
            TcpObservation(
                id=f"tcp/{len(observations)}",
                ip=str(entry["ip"]),
                port=port,
                started=started,
                finished=_float(entry.get("t"), started),
                failure=failure,
            )
        )
    return observations


def _validated(failure: Failure | None, no_tls_verify: bool) -> bool | None:
    """Whether the chain validated: as our TLS step records it (``None`` when the
    handshake failed before a certificate could be judged)."""
    if failure is None:
        return None if no_tls_verify else True
    return False if failure in _CERTIFICATE_FAILURES else None


def _tls(tk: Mapping[str, Any], domain: str, originals: set[str]) -> list[TlsObservation]:
    observations: list[TlsObservation] = []
    for entry in _list(tk.get("tls_handshakes")):
        if not isinstance(entry, dict):
            continue
        endpoint = _split_endpoint(entry.get("address"))
        if endpoint is None:
            continue
        failure = failure_from_ooni(entry.get("failure"), originals)
        started = _float(entry.get("t0"), _float(entry.get("t")))
        ext = _dict(entry.get(X_KUZOT))
        observations.append(
            TlsObservation(
                id=f"tls/{len(observations)}",
                ip=endpoint[0],
                port=endpoint[1],
                server_name=str(entry.get("server_name") or domain),
                started=started,
                finished=_float(entry.get("t"), started),
                failure=failure,
                version=_str(entry.get("tls_version")),
                cipher=_str(entry.get("cipher_suite")),
                alpn=_str(entry.get("negotiated_protocol")),
                certificates=_certificates(entry.get("peer_certificates")),
                validated=_validated(failure, bool(entry.get("no_tls_verify"))),
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
    entries = [e for e in _list(tk.get("requests")) if isinstance(e, dict)]
    observations: list[HttpObservation] = []
    for entry in reversed(entries):  # OONI: the final response first
        request = _dict(entry.get("request"))
        response = _dict(entry.get("response"))
        ext = _dict(response.get(X_KUZOT))
        code = _int(response.get("code"))
        status = code if code is not None and code > 0 else None
        endpoint = _split_endpoint(entry.get("address"))
        started = _float(entry.get("t0"), _float(entry.get("t")))
        obs = HttpObservation(
            id=f"http/{len(observations)}",
            url=str(request.get("url") or url),
            ip=endpoint[0] if endpoint else None,
            started=started,
            finished=_float(entry.get("t"), started),
            failure=failure_from_ooni(entry.get("failure"), originals),
            status_code=status,
            http_version=_http_version(entry, response, ext),
            headers=_headers(response),
        )
        if status is not None:  # as our HTTP step: body facts only once a response began
            body = _bytes(response.get("body"))
            length = _int(ext.get("body_length"))
            obs.body_length = length if length is not None and length >= len(body) else len(body)
            obs.body_sha256 = _str(ext.get("body_sha256")) or hashlib.sha256(body).hexdigest()
            obs.body_sample = body[:BODY_SAMPLE_BYTES]
            truncated = ext.get("body_truncated", response.get("body_is_truncated"))
            obs.body_truncated = bool(truncated)
            obs.title = extract_title(obs.body_sample, _charset(obs.headers))
        observations.append(obs)
    return observations


def _control_endpoints(
    part: Any, originals: set[str]
) -> Iterator[tuple[tuple[str, int], dict[str, Any], Failure | None]]:
    """The helper's per-endpoint results ("ip:port" -> {status, failure}).  A false status
    without a failure string still failed: OONI's older helpers wrote only the flag."""
    for key, value in _dict(part).items():
        endpoint = _split_endpoint(key)
        if endpoint is None:
            continue
        status = _dict(value)
        failure = failure_from_ooni(status.get("failure"), originals)
        if failure is None and status.get("status") is False:
            failure = Failure.UNKNOWN
        yield endpoint, status, failure


def _control(
    data: Mapping[str, Any], tk: Mapping[str, Any], domain: str, url: str, originals: set[str]
) -> ControlObservations | None:
    """OONI's test-helper answer as our control observations (one of each at most for
    DNS and HTTP: the helper reports one lookup and the final response only)."""
    control = _dict(tk.get("control"))
    failure = failure_from_ooni(tk.get("control_failure"), originals)
    if not control and failure is None:
        return None
    backend = _dict(_dict(data.get("test_helpers")).get("backend"))
    source = _str(_dict(tk.get(X_KUZOT)).get("control_source")) or _str(backend.get("address"))
    result = ControlObservations(source=source or "ooni-test-helper", failure=failure)

    dns_part = _dict(control.get("dns"))
    addrs = [str(a) for a in _list(dns_part.get("addrs")) if a]
    dns_failure = failure_from_ooni(dns_part.get("failure"), originals)
    if addrs or dns_failure is not None:
        # Old helpers list CNAME targets among the addresses.
        answers = [DnsAnswer(_address_rrtype(a) or "CNAME", a) for a in addrs]
        result.dns.append(
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
        )
    for endpoint, _status, tcp_failure in _control_endpoints(control.get("tcp_connect"), originals):
        result.tcp.append(
            TcpObservation(f"control/tcp/{len(result.tcp)}", endpoint[0], endpoint[1], 0.0, 0.0, tcp_failure)
        )
    for endpoint, status, tls_failure in _control_endpoints(control.get("tls_handshake"), originals):
        result.tls.append(
            TlsObservation(
                id=f"control/tls/{len(result.tls)}",
                ip=endpoint[0],
                port=endpoint[1],
                server_name=str(status.get("server_name") or domain),
                started=0.0,
                finished=0.0,
                failure=tls_failure,
                certificates=_certificates(status.get("peer_certificates")),
                validated=_validated(tls_failure, False),
            )
        )
    page = control.get("http_request")
    if isinstance(page, dict):
        code = _int(page.get("status_code"))
        status_code = code if code is not None and code > 0 else None
        length = _int(page.get("body_length"))
        result.http.append(
            HttpObservation(
                id="control/http/0",
                url=url,
                ip=None,
                started=0.0,
                finished=0.0,
                failure=failure_from_ooni(page.get("failure"), originals),
                status_code=status_code,
                headers=_headers(page),
                title=_str(page.get("title")),
                body_length=length if length is not None and length > 0 else 0,
            )
        )
    return result


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
    own = _valid_uuid(_dict(_dict(data.get("test_keys")).get(X_KUZOT)).get("measurement_id"))
    if own is not None:
        return own
    report_id = _str(data.get("report_id"))
    if report_id is not None:
        key = f"report:{report_id}\n{data.get('input')}\n{data.get('measurement_start_time')}"
        return str(uuid.uuid5(OONI_ID_NAMESPACE, key))
    uid = _str(data.get("measurement_uid"))
    if uid is not None:
        return str(uuid.uuid5(OONI_ID_NAMESPACE, f"uid:{uid}"))
    raise OoniFormatError("neither report_id nor measurement_uid: no stable id")


def _json_text(value: Any) -> str:
    """An OONI summary key for an annotation: ``"dns"``, ``"false"``, ``"null"``."""
    return value if isinstance(value, str) else json.dumps(value)


def measurement_from_ooni(data: Any, *, check_encoding: bool = True) -> Measurement:
    """One OONI Web Connectivity measurement (a parsed JSON object) as our record.

    Raises :class:`OoniFormatError` for anything that is not one: another test, or a
    measurement without the fields a verdict needs (input URL, start time, probe
    network, test keys, a stable id).  ``check_encoding=False`` skips making the
    canonical JSON to find strings UTF-8 cannot hold; a caller that makes it anyway
    (the bulk importer) catches ``UnicodeEncodeError`` and calls :func:`scrubbed`.
    """
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
    mid = measurement_id(data)
    domain = hostname.lower()
    ext = _dict(tk.get(X_KUZOT))
    originals: set[str] = set()
    cc = _str(data.get("probe_cc"))
    m = Measurement(
        id=mid,
        url=url,
        domain=domain,
        started_at=started_at,
        runtime=_float(data.get("test_runtime")),
        category_code=_str(ext.get("category_code")),
        probe_asn=probe_asn,
        probe_cc=cc.upper() if cc and cc.upper() != "ZZ" else None,
        probe_network=_str(data.get("probe_network_name")),
        software_name=str(data.get("software_name") or "unknown"),
        software_version=str(data.get("software_version") or ""),
        dns=_dns(tk, domain, originals),
        tcp=_tcp(tk, originals),
        tls=_tls(tk, domain, originals),
        http=_http(tk, url, originals),
        control=_control(data, tk, domain, url, originals),
    )
    annotations = _dict(ext.get("annotations"))
    m.annotations = {str(k): str(v) for k, v in annotations.items() if v is not None}
    if not ext:  # OONI's own measurement: keep what names it in OONI's data and what OONI concluded
        for key in ("report_id", "measurement_uid", "test_version"):
            if _str(data.get(key)):
                m.annotations[f"ooni.{key}"] = str(data[key])
        if "ooni.measurement_uid" not in m.annotations:
            # Without OONI's uid, Explorer finds a measurement by report id and input.
            m.annotations["ooni.input"] = url
        for key in ("blocking", "accessible"):
            if key in tk:
                m.annotations[f"ooni.{key}"] = _json_text(tk[key])
    if originals:
        m.annotations["ooni.original_failures"] = ",".join(sorted(originals))
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


# --- reading files -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadResult:
    """One line of an input: its number and a measurement, or why it was skipped."""

    line: int
    measurement: Measurement | None = None
    error: OoniFormatError | None = None


#: What converting a hostile line can raise besides OoniFormatError.
_HOSTILE = (RecursionError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


def _convert(line: int, data: Any) -> ReadResult:
    try:
        return ReadResult(line, measurement=measurement_from_ooni(data))
    except OoniFormatError as exc:
        return ReadResult(line, error=exc)
    except _HOSTILE as exc:
        # A hostile or damaged line (nesting deeper than we can walk, a number no field
        # can hold): skipped with its reason, like any other bad line, never the end
        # of the import.
        reason = f"cannot be read ({exc.__class__.__name__}: {str(exc)[:200]})"
        return ReadResult(line, error=OoniFormatError(reason))


def loads(raw: bytes) -> Any:
    """Parse one line: orjson when installed (several times faster), else the standard
    library.  Both refuse what a measurement never holds (integers beyond 64 bits with
    orjson, beyond 4300 digits with json); the caller reports it as a bad line."""
    if _orjson is not None:
        try:
            return _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass  # orjson refuses lone surrogates, which the standard parser reads
    return json.loads(raw)


def parse_line(line: int, raw: bytes) -> ReadResult | None:
    """One line of JSON Lines as a measurement, or why it is skipped; None when blank."""
    return _parse_line(line, raw)


def _parse_line(line: int, raw: bytes) -> ReadResult | None:
    text = raw.strip()
    if not text:
        return None
    try:
        data = loads(text)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        # JSONDecodeError is a ValueError; so are over-long integers and (in orjson)
        # nesting too deep; the standard parser raises RecursionError for the latter.
        reason = str(exc)[:200]
        return ReadResult(line, error=OoniFormatError(f"not JSON ({exc.__class__.__name__}: {reason})"))
    return _convert(line, data)


def _is_json(raw: bytes) -> bool:
    try:
        loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return False
    return True


def read_ooni(stream: BinaryIO) -> Iterator[ReadResult]:
    """Every measurement in ``stream``: JSON Lines (one measurement a line, as OONI
    publishes them), or one JSON document (a measurement, or a list of them, as OONI
    Explorer downloads and test fixtures are).  Gzip is recognised by its magic bytes,
    whatever the name.  JSON Lines are read a line at a time, so large files stream."""
    buffered = stream if hasattr(stream, "peek") else io.BufferedReader(stream)  # type: ignore[arg-type]
    source: Any = buffered
    if buffered.peek(2)[:2] == b"\x1f\x8b":  # type: ignore[attr-defined]
        source = gzip.GzipFile(fileobj=buffered)
    number = 1
    raw = source.readline()
    while raw and not raw.strip():
        number += 1
        raw = source.readline()
    if raw and not _is_json(raw):
        # Not a line of JSON: a pretty-printed document, read whole; if it is not one
        # either, every line is reported on its own.
        whole = raw + source.read()
        try:
            document = json.loads(whole)
        except (ValueError, RecursionError, UnicodeDecodeError):
            for offset, line in enumerate(whole.splitlines()):
                result = _parse_line(number + offset, line)
                if result is not None:
                    yield result
            return
        for index, item in enumerate(document if isinstance(document, list) else [document], start=1):
            yield _convert(index, item)
        return
    while raw:
        result = _parse_line(number, raw)
        if result is not None:
            yield result
        raw = source.readline()
        number += 1


def read_ooni_path(path: str | Path) -> Iterator[ReadResult]:
    """:func:`read_ooni` over a file, or standard input for ``"-"``."""
    if str(path) == "-":
        yield from read_ooni(sys.stdin.buffer)
        return
    with open(path, "rb") as handle:
        yield from read_ooni(handle)


# --- ours -> OONI ------------------------------------------------------------------------


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

"""Lenient readers of OONI's values: any key may be missing, ``null`` or of another type.

Why apart from the mapping: OONI's format grew over a decade (bodies as text or
base64 with broken padding, headers as pairs or maps, numbers as strings), and every
field reader in :mod:`~probe.formats.ooni.read` needs the same tolerance.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import dns.exception
import dns.message
import dns.rcode

from probe.failures import Failure
from probe.records import CertificateInfo
from probe.steps.tls import certificate_info


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_float(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def as_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text or None


def b64decode_lenient(data: str) -> bytes:
    """Base64 as OONI wrote it, padding or not; undecodable text is kept as its bytes."""
    cleaned = "".join(data.split())
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        return data.encode("utf-8", errors="replace")


def is_binary(value: Any) -> bool:
    return isinstance(value, dict) and value.get("format") == "base64" and isinstance(value.get("data"), str)


def body_bytes(value: Any) -> bytes:
    """A body: OONI's text (the UTF-8 of the bytes), base64 for other bytes, or null."""
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogatepass")
    if is_binary(value):
        return b64decode_lenient(value["data"])
    return json.dumps(value).encode()


def header_value(value: Any) -> str:
    """A header value; raw bytes become latin-1 text, as our HTTP step keeps them."""
    if isinstance(value, str):
        return value
    if is_binary(value):
        return b64decode_lenient(value["data"]).decode("latin-1")
    return "" if value is None else str(value)


def headers_of(response: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Headers in order: ``headers_list`` when present (it keeps repeated names), else
    the ``headers`` map (values may be lists), else ``headers`` written as pairs."""
    source = response.get("headers_list")
    if not isinstance(source, list):
        source = response.get("headers")
    pairs: list[tuple[str, str]] = []
    if isinstance(source, dict):
        for name, value in source.items():
            for one in value if isinstance(value, list) else [value]:
                pairs.append((str(name), header_value(one)))
    elif isinstance(source, list):
        for item in source:
            if isinstance(item, list | tuple) and len(item) == 2:
                pairs.append((header_value(item[0]), header_value(item[1])))
    return pairs


def split_endpoint(text: Any) -> tuple[str, int] | None:
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


def address_rrtype(value: str) -> str | None:
    try:
        return "A" if ipaddress.ip_address(value).version == 4 else "AAAA"
    except ValueError:
        return None


_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)


def charset_of(headers: Iterable[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name.lower() == "content-type":
            match = _CHARSET.search(value)
            if match:
                return match.group(1)
    return None


def certificates_of(value: Any) -> list[CertificateInfo]:
    out: list[CertificateInfo] = []
    for item in as_list(value):
        if is_binary(item):
            der = b64decode_lenient(item["data"])
            if der:
                out.append(certificate_info(der))
    return out


def _rcode_text(code: Any) -> str | None:
    number = as_int(code)
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


def query_rcode(query: Mapping[str, Any], transport: str, failure: Failure | None) -> str | None:
    """The reply's response code: OONI's ``rcode``, else the ``raw_response``'s, else
    what the failure implies.  getaddrinfo shows no rcode, as in our own records."""
    from_field = _rcode_text(query.get("rcode"))
    if from_field is not None:
        return from_field
    raw = query.get("raw_response")
    if isinstance(raw, str) and raw:
        try:
            return dns.rcode.to_text(dns.message.from_wire(b64decode_lenient(raw)).rcode())
        except (dns.exception.DNSException, ValueError, IndexError):
            pass
    if transport == "system":
        return None
    return _FAILURE_RCODES.get(failure)

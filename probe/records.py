"""The archival format: what a measurement records, independent of how it was measured.

Why separate: OONI keeps its data format (``internal/model``) apart from its engine, so
that measurements taken years ago can be re-judged with better rules.  We do the same.
Nothing here opens a socket; :mod:`analysis` imports only this module and
:mod:`probe.failures` from the probe.

Conventions
- Every observation has an ``id`` unique within its measurement (``"dns/0"``,
  ``"tls/2"``, ``"control/http/0"``); with the measurement id it names one observation
  for ever, so a verdict can cite the observations it used.
- Times inside a measurement are seconds since the measurement started (``started``,
  ``finished``), as OONI's ``t0``/``t``; the measurement's own start is an aware UTC
  datetime.
- Failures are strings of :class:`probe.failures.Failure`, ``None`` on success.
- The probe's own IP address is never recorded anywhere in a measurement.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from typing import Any, Self

from probe.failures import Failure, failure_or_none

#: Bumped when a field changes meaning; readers accept every older version.
FORMAT_VERSION = 1


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the microsecond: sortable and unambiguous."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(slots=True)
class DnsAnswer:
    rrtype: str
    value: str
    ttl: int | None = None


@dataclass(slots=True)
class DnsResponse:
    """One reply to a UDP query.  Replies after the first are kept: an on-path injector
    answers faster than the real resolver, so two differing replies are evidence."""

    received: float
    rcode: str
    answers: list[DnsAnswer] = field(default_factory=list)


@dataclass(slots=True)
class DnsObservation:
    id: str
    hostname: str
    query_type: str
    resolver: str
    transport: str  # "system" (getaddrinfo), "udp", "doh"
    started: float
    finished: float
    failure: Failure | None = None
    rcode: str | None = None
    answers: list[DnsAnswer] = field(default_factory=list)
    extra_responses: list[DnsResponse] = field(default_factory=list)
    #: Replies after the first that a limit kept out of ``extra_responses`` (a flood),
    #: and answer records kept out of ``answers`` and the extra responses: a record
    #: stays bounded, and says so.
    extra_responses_dropped: int = 0
    answers_dropped: int = 0

    def addresses(self) -> list[str]:
        return [a.value for a in self.answers if a.rrtype in ("A", "AAAA")]


@dataclass(slots=True)
class TcpObservation:
    id: str
    ip: str
    port: int
    started: float
    finished: float
    failure: Failure | None = None


@dataclass(slots=True)
class CertificateInfo:
    sha256: str
    subject: str
    issuer: str
    sans: list[str]
    not_before: str
    not_after: str
    der_b64: str = ""


@dataclass(slots=True)
class TlsObservation:
    id: str
    ip: str
    port: int
    server_name: str
    started: float
    finished: float
    failure: Failure | None = None
    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    certificates: list[CertificateInfo] = field(default_factory=list)
    #: Whether the chain validates for ``server_name`` against the trust store;
    #: ``None`` when the handshake failed before a certificate was seen.
    validated: bool | None = None
    #: "target" for the URL's own host; "comparison" for a handshake with an
    #: innocuous SNI to the same address, which separates SNI filtering from IP blocking.
    purpose: str = "target"


@dataclass(slots=True)
class HttpObservation:
    """One HTTP request and its response; a redirect chain is several, in order."""

    id: str
    url: str
    ip: str | None
    started: float
    finished: float
    failure: Failure | None = None
    status_code: int | None = None
    http_version: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    title: str | None = None
    body_length: int = 0
    body_sha256: str | None = None
    body_sample: bytes = b""
    body_truncated: bool = False
    #: Response headers past the step's limit, not stored (``headers`` keeps the first).
    headers_dropped: int = 0
    #: The ``Content-Encoding`` the body was *not* decoded from (stacked or unknown
    #: codings): the body fields then hold the bytes as they came.  ``None`` when the
    #: body was decoded or had no coding.
    undecoded_encoding: str | None = None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


@dataclass(slots=True)
class ControlObservations:
    """What the control vantage saw for the same URL (or why it could not say)."""

    source: str  # helper URL, or "doh:<url>" when only a DNS control was available
    failure: Failure | None = None
    dns: list[DnsObservation] = field(default_factory=list)
    tcp: list[TcpObservation] = field(default_factory=list)
    tls: list[TlsObservation] = field(default_factory=list)
    http: list[HttpObservation] = field(default_factory=list)
    #: Why the helper refused, in its own words (its ``error`` field), when it did.
    reason: str | None = None


@dataclass(slots=True)
class Measurement:
    id: str
    url: str
    domain: str
    started_at: datetime
    runtime: float = 0.0
    run_id: str | None = None
    role: str = "target"  # "target" or "canary"
    category_code: str | None = None
    probe_asn: int | None = None
    probe_cc: str | None = None
    probe_network: str | None = None
    software_name: str = "kuzot"
    software_version: str = ""
    format_version: int = FORMAT_VERSION
    dns: list[DnsObservation] = field(default_factory=list)
    tcp: list[TcpObservation] = field(default_factory=list)
    tls: list[TlsObservation] = field(default_factory=list)
    http: list[HttpObservation] = field(default_factory=list)
    control: ControlObservations | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = _plain(self)
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        built: Self = _build(cls, data)
        return built

    @classmethod
    def from_json(cls, data: str | bytes) -> Self:
        """A stored record's JSON read straight into the dataclasses.

        Why: reading records back is what judging a large database costs; msgspec
        decodes into these dataclasses in one C pass (about ten times faster than
        ``json.loads`` + :meth:`from_dict`), skipping unknown fields as
        :meth:`from_dict` does.  A record msgspec's typed decoding refuses (a failure
        string from a newer probe, a value of an unexpected type) takes the tolerant
        path, so both give the same object."""
        import msgspec

        decoder = _DECODERS.get(cls)
        if decoder is None:
            decoder = _DECODERS[cls] = msgspec.json.Decoder(cls)
        try:
            value: Self = decoder.decode(data)
        except msgspec.DecodeError:
            return cls.from_dict(json.loads(data))
        started = value.started_at
        if started.tzinfo is not UTC:
            value.started_at = parse_time(started.isoformat())
        return value

    def canonical_json(self) -> bytes:
        """The exact bytes that are hashed and signed: sorted keys, no spaces, UTF-8."""
        return canonical_json(self.to_dict())

    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json()).hexdigest()


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- serialisation -----------------------------------------------------------------
# A small, explicit mapping instead of a library: the format must stay readable in
# ten years, and every type in it is one of the dataclasses above.


_SCALARS = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    # Scalars first and field names cached: serialising is on the hot path of storing,
    # hashing and uploading every measurement.
    kind = type(value)
    if kind in _SCALARS:
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None and is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, Failure):
        return value.value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_NESTED: dict[str, type] = {
    "answers": DnsAnswer,
    "extra_responses": DnsResponse,
    "dns": DnsObservation,
    "tcp": TcpObservation,
    "tls": TlsObservation,
    "http": HttpObservation,
    "certificates": CertificateInfo,
}


_DECODERS: dict[type, Any] = {}
_KNOWN: dict[type, frozenset[str]] = {}


def _build(cls: type, data: dict[str, Any]) -> Any:
    known = _KNOWN.get(cls)
    if known is None:
        known = _KNOWN[cls] = frozenset(f.name for f in fields(cls))
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            continue  # a newer writer's field: ignore rather than fail
        if key == "failure":
            value = failure_or_none(value)
        elif key == "started_at":
            value = parse_time(value)
        elif key == "body_sample":
            value = base64.b64decode(value) if value else b""
        elif key == "headers":
            value = [(str(k), str(v)) for k, v in value]
        elif key == "control":
            value = None if value is None else _build(ControlObservations, value)
        elif key in _NESTED and isinstance(value, list):
            value = [_build(_NESTED[key], item) for item in value]
        kwargs[key] = value
    return cls(**kwargs)


def observation_index(measurement: Measurement) -> dict[str, Any]:
    """Every observation of a measurement (control included) by its id."""
    index: dict[str, Any] = {}
    for group in (measurement.dns, measurement.tcp, measurement.tls, measurement.http):
        for obs in group:
            index[obs.id] = obs
    if measurement.control is not None:
        c = measurement.control
        for group in (c.dns, c.tcp, c.tls, c.http):
            for obs in group:
                index[obs.id] = obs
    return index


@dataclass(slots=True)
class Run:
    """One invocation of ``kuzot run``: where it measured from, never who.

    The vantage is the network (ASN, country, resolver addresses), which is what a
    verdict needs; the probe's own IP address is deliberately absent from the format.
    """

    id: str
    started_at: datetime
    software_name: str = "kuzot"
    software_version: str = ""
    finished_at: datetime | None = None
    status: str = "running"  # running, finished, interrupted, failed
    probe_asn: int | None = None
    probe_cc: str | None = None
    probe_network: str | None = None
    resolvers: list[str] = field(default_factory=list)
    targets_total: int = 0
    options: dict[str, Any] = field(default_factory=dict)

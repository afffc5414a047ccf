"""The rows that store one measurement, built apart from any transaction.

Why apart: the canonical record, its hash, its signature and the index rows are most
of the cost of storing, and are built where it suits (worker processes for imports and
the collector, the writer's thread for a run); the values are plain and picklable, so
the bulk writer (:mod:`probe.store.bulk`) only moves rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from probe.failures import Failure
from probe.records import DnsObservation, HttpObservation, Measurement, TlsObservation
from probe.store.canonical import canonical_record
from probe.store.models import (
    DnsObservationRow,
    HttpObservationRow,
    TcpObservationRow,
    TlsObservationRow,
)
from probe.store.record_codec import encode_record


def _observation_values(m: Measurement) -> list[tuple[Any, dict[str, Any]]]:
    """The observation index rows of a measurement, as (table class, column values)."""
    rows: list[tuple[Any, dict[str, Any]]] = []
    groups = [(m.dns, m.tcp, m.tls, m.http, False)]
    if m.control is not None:
        c = m.control
        groups.append((c.dns, c.tcp, c.tls, c.http, True))
    for dns, tcp, tls, http, is_control in groups:
        common = {"measurement_id": m.id, "is_control": is_control}
        rows += [(DnsObservationRow, {**common, **_dns_values(d)}) for d in dns]
        rows += [(TcpObservationRow, {**common, **_timed(t), "ip": t.ip, "port": t.port}) for t in tcp]
        rows += [(TlsObservationRow, {**common, **_tls_values(s)}) for s in tls]
        rows += [(HttpObservationRow, {**common, **_http_values(h)}) for h in http]
    return rows


def _timed(o: Any) -> dict[str, Any]:
    """The columns every observation has."""
    return {"obs_id": o.id, "failure": o.failure, "started": o.started, "finished": o.finished}


def _dns_values(d: DnsObservation) -> dict[str, Any]:
    return {
        **_timed(d),
        "hostname": d.hostname,
        "query_type": d.query_type,
        "resolver": d.resolver,
        "transport": d.transport,
        "rcode": d.rcode,
        "addresses": d.addresses(),
        "extra_responses": len(d.extra_responses),
    }


def _tls_values(s: TlsObservation) -> dict[str, Any]:
    return {
        **_timed(s),
        "ip": s.ip,
        "port": s.port,
        "server_name": s.server_name,
        "purpose": s.purpose,
        "version": s.version,
        "cipher": s.cipher,
        "validated": s.validated,
        "leaf_sha256": s.certificates[0].sha256 if s.certificates else None,
    }


def _http_values(h: HttpObservation) -> dict[str, Any]:
    return {
        **_timed(h),
        "url": h.url,
        "ip": h.ip,
        "status_code": h.status_code,
        "title": h.title,
        "location": h.header("location"),
        "body_length": h.body_length,
        "body_sha256": h.body_sha256,
        "body_truncated": h.body_truncated,
    }


@dataclass(frozen=True)
class BatchItem:
    """One measurement arriving from elsewhere (an upload), ready to store.

    ``record`` is the canonical JSON exactly as it was hashed and signed, stored
    verbatim so the signature keeps verifying; ``measurement`` is the same record
    parsed, which feeds the observation index.  ``probe_asn`` may differ from the
    record's when the collector derived it (``asn_source``).
    """

    measurement: Measurement
    record: str
    content_hash: str
    signature: dict[str, str] | None = None
    probe_asn: int | None = None
    probe_id: str | None = None
    asn_source: str | None = None
    bytes_used: int = 0


@dataclass(frozen=True, slots=True)
class PreparedItem:
    """One measurement turned into the rows that store it: the one row shape for a
    run's own measurements, OONI imports and uploaded batches.

    Why rows are built apart from their transaction: the canonical record, its hash,
    its signature and the index rows are most of the cost of storing, and can be made
    where it suits (worker processes for imports and the collector, one batch in the
    writer's thread for a run); the values are plain and picklable, so the writer only
    moves rows.
    """

    id: str
    content_hash: str
    #: ``measurements`` columns except source, stored_at and uploaded_at.
    row: dict[str, Any]
    #: Observation index rows by table name.
    observations: dict[str, list[dict[str, Any]]]
    key_id: str | None = None
    probe_id: str | None = None
    asn_source: str | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The collector's workers send every item back to the event loop's process,
        # whose one core unpickles them all: a plain tuple of fields takes half the
        # time of the dataclass default (which looks up the fields for every item).
        return (PreparedItem, tuple(getattr(self, name) for name in _PREPARED_FIELDS))


#: PreparedItem's fields in order, looked up once (its pickled form follows them).
_PREPARED_FIELDS = tuple(f.name for f in fields(PreparedItem))


_KNOWN_FAILURES = frozenset(f.value for f in Failure)


def _index_text(value: Any) -> Any:
    """PostgreSQL refuses U+0000 in text; SQLite keeps it.  The index holds U+FFFD in its
    place on both, so the backends agree; the record itself keeps the NUL (escaped)."""
    if type(value) is str and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def prepare_item(
    m: Any,
    *,
    record: str | None = None,
    content_hash: str | None = None,
    signature: dict[str, str] | None = None,
    sign_hash: Callable[[str], dict[str, str]] | None = None,
    bytes_used: int = 0,
    probe_asn: int | None = None,
    probe_id: str | None = None,
    asn_source: str | None = None,
) -> PreparedItem:
    """The rows of one measurement (a :class:`Measurement` or anything with its
    attributes, such as the collector's generated upload types).

    ``record``: its canonical JSON when the caller already has it (an upload is stored
    as it was signed); otherwise made here, once, and ``content_hash`` with it.
    ``sign_hash``: signs that hash (a run's own measurements), unless ``signature`` is
    given."""
    if record is None:
        record = canonical_record(m)
    if content_hash is None:
        content_hash = hashlib.sha256(record.encode()).hexdigest()
    if signature is None and sign_hash is not None:
        signature = sign_hash(content_hash)
    envelope = signature or {}
    row = {
        "id": m.id,
        "run_id": m.run_id,
        "url": m.url,
        "domain": m.domain,
        "role": m.role,
        "category_code": m.category_code,
        "probe_asn": probe_asn if probe_asn is not None else m.probe_asn,
        "probe_cc": m.probe_cc,
        "started_at": m.started_at,
        "runtime": m.runtime,
        "content_hash": content_hash,
        "signature": envelope.get("signature"),
        "key_id": envelope.get("key_id"),
        "public_key": envelope.get("public_key"),
        "bytes_used": bytes_used,
    }
    # Canonical JSON writes U+0000 as an escape, so a record without the escape holds
    # no NUL anywhere, and the (rare) clean-up can be skipped.
    sanitise = "\\u0000" in record
    if sanitise:
        row = {key: _index_text(value) for key, value in row.items()}
    row["record"] = encode_record(record)  # here, in the worker, not in the writer
    return PreparedItem(
        id=m.id,
        content_hash=content_hash,
        row=row,
        observations=_observations(m, sanitise),
        key_id=envelope.get("key_id"),
        probe_id=probe_id,
        asn_source=asn_source,
    )


def _observations(m: Measurement, sanitise: bool) -> dict[str, list[dict[str, Any]]]:
    """The observation index rows by table name."""
    observations: dict[str, list[dict[str, Any]]] = {}
    for cls, values in _observation_values(m):
        failure = values.get("failure")
        if failure is not None and failure not in _KNOWN_FAILURES:
            values["failure"] = Failure.UNKNOWN.value  # as Measurement.from_dict reads it back
        if sanitise:
            values = {key: _index_text(value) for key, value in values.items()}
        observations.setdefault(cls.__tablename__, []).append(values)
    return observations

"""SQLAlchemy models: the archival record plus an index of its observations.

Why both: the measurement's canonical JSON (``record``) is the source of truth. It is
what gets hashed and signed, and re-judging reads it back unchanged.  The observation
tables are an index over it, so analysts can ask SQL questions ("every TLS reset on
AS12345 in October") without parsing JSON.  The same models serve SQLite on a
volunteer's machine and PostgreSQL on the collector; only the URL changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from probe.store.record_codec import StoredRecord


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    software_name: Mapped[str] = mapped_column(String(40))
    software_version: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))
    probe_asn: Mapped[int | None] = mapped_column(Integer)
    probe_cc: Mapped[str | None] = mapped_column(String(2))
    probe_network: Mapped[str | None] = mapped_column(String(200))
    resolvers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    targets_total: Mapped[int] = mapped_column(Integer, default=0)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MeasurementRow(Base):
    __tablename__ = "measurements"
    __table_args__ = (
        Index("ix_measurements_domain_asn_time", "domain", "probe_asn", "started_at"),
        Index("ix_measurements_run", "run_id"),
        Index("ix_measurements_unsent", "uploaded_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(String(36))
    url: Mapped[str] = mapped_column(Text)
    domain: Mapped[str] = mapped_column(String(253))
    role: Mapped[str] = mapped_column(String(16), default="target")
    category_code: Mapped[str | None] = mapped_column(String(16))
    probe_asn: Mapped[int | None] = mapped_column(Integer)
    probe_cc: Mapped[str | None] = mapped_column(String(2))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    runtime: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(20), default="kuzot")
    content_hash: Mapped[str] = mapped_column(String(64))
    #: Compressed at rest; reads give the canonical text (:mod:`probe.store.record_codec`).
    record: Mapped[str] = mapped_column(StoredRecord)
    signature: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(32))
    public_key: Mapped[str | None] = mapped_column(String(64))
    bytes_used: Mapped[int] = mapped_column(Integer, default=0)
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    uploaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class _ObservationColumns:
    """Columns every observation index row has."""

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    obs_id: Mapped[str] = mapped_column(String(40))
    is_control: Mapped[bool] = mapped_column(Boolean, default=False)
    failure: Mapped[str | None] = mapped_column(String(64))
    started: Mapped[float] = mapped_column(Float)
    finished: Mapped[float] = mapped_column(Float)


class DnsObservationRow(_ObservationColumns, Base):
    __tablename__ = "dns_observations"
    measurement_id: Mapped[str] = mapped_column(ForeignKey("measurements.id", ondelete="CASCADE"), index=True)
    hostname: Mapped[str] = mapped_column(String(253))
    query_type: Mapped[str] = mapped_column(String(8))
    resolver: Mapped[str] = mapped_column(String(300))
    transport: Mapped[str] = mapped_column(String(10))
    rcode: Mapped[str | None] = mapped_column(String(16))
    addresses: Mapped[list[Any]] = mapped_column(JSON, default=list)
    extra_responses: Mapped[int] = mapped_column(Integer, default=0)


class TcpObservationRow(_ObservationColumns, Base):
    __tablename__ = "tcp_observations"
    measurement_id: Mapped[str] = mapped_column(ForeignKey("measurements.id", ondelete="CASCADE"), index=True)
    ip: Mapped[str] = mapped_column(String(45))
    port: Mapped[int] = mapped_column(Integer)


class TlsObservationRow(_ObservationColumns, Base):
    __tablename__ = "tls_observations"
    measurement_id: Mapped[str] = mapped_column(ForeignKey("measurements.id", ondelete="CASCADE"), index=True)
    ip: Mapped[str] = mapped_column(String(45))
    port: Mapped[int] = mapped_column(Integer)
    server_name: Mapped[str] = mapped_column(String(253))
    purpose: Mapped[str] = mapped_column(String(16))
    version: Mapped[str | None] = mapped_column(String(16))
    cipher: Mapped[str | None] = mapped_column(String(80))
    validated: Mapped[bool | None] = mapped_column(Boolean)
    leaf_sha256: Mapped[str | None] = mapped_column(String(64))


class HttpObservationRow(_ObservationColumns, Base):
    __tablename__ = "http_observations"
    measurement_id: Mapped[str] = mapped_column(ForeignKey("measurements.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(45))
    status_code: Mapped[int | None] = mapped_column(Integer)
    title: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    body_length: Mapped[int] = mapped_column(Integer, default=0)
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    body_truncated: Mapped[bool] = mapped_column(Boolean, default=False)


class ProbeRow(Base):
    """A registered probe, as the collector knows it: an opaque id and a token's hash.

    Why nothing else: the collector must not be able to say who a volunteer is.  No
    name, e-mail or address is asked for, and the token itself is never stored, only
    its SHA-256, so a copy of the database cannot be used to upload as someone else.
    """

    __tablename__ = "probes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SubmissionRow(Base):
    """Which probe delivered a measurement to the collector, and when.

    Kept beside the measurement rather than in it: the measurement row mirrors the
    signed record, while this is the collector's own bookkeeping (it lets an operator
    withdraw everything one misbehaving probe sent).  ``asn_source`` says where the
    indexed ``probe_asn`` came from: the record itself, or the operator's ASN database
    looked up from the connection (``--asn-db``); the address itself is never kept.
    """

    __tablename__ = "submissions"

    measurement_id: Mapped[str] = mapped_column(
        ForeignKey("measurements.id", ondelete="CASCADE"), primary_key=True
    )
    probe_id: Mapped[str] = mapped_column(ForeignKey("probes.id", ondelete="CASCADE"), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    asn_source: Mapped[str | None] = mapped_column(String(16))


class ProbeKeyRow(Base):
    """Which registered probes may deliver records signed by a key, on the collector.

    Why: a signature proves that one installation made a record, and the submission
    row says which probe delivered it.  A key belongs to the probes that proved they
    hold it (``POST /api/v1/keys``: a signature over their own probe id, which nobody
    else can replay), or else to the first probe that uploaded with it; a record
    signed by one probe's key is never stored as another probe's.  One installation
    may hold several registrations (a lost token, two uploads racing to register).
    """

    __tablename__ = "probe_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    probe_id: Mapped[str] = mapped_column(
        ForeignKey("probes.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    bound_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OoniFileRow(Base):
    """One file of OONI's archive (or of a local folder) already imported, by version.

    ``path`` is ``s3://bucket/key`` for synced files and the absolute path for local
    ones; ``etag`` is the object's ETag (or size and mtime for local files).  A file
    whose version is here is not read again; a changed object is.
    """

    __tablename__ = "ooni_files"

    path: Mapped[str] = mapped_column(Text, primary_key=True)
    etag: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)
    measurements: Mapped[int] = mapped_column(Integer)
    stored: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VerdictCacheRow(Base):
    """A verdict computed once, valid for one ``rules_version`` and one fingerprint set.

    Why keyed by both: a verdict depends on the rules and on the fingerprints it was
    matched against; a change of either makes a new key, so old rows are simply not
    found (and new rules re-judge only the measurements that have no row for them).
    """

    __tablename__ = "verdict_cache"

    measurement_id: Mapped[str] = mapped_column(
        ForeignKey("measurements.id", ondelete="CASCADE"), primary_key=True
    )
    rules_version: Mapped[str] = mapped_column(String(40), primary_key=True)
    fingerprints: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(24))
    blocking: Mapped[str | None] = mapped_column(String(24))
    confirmed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    rule_id: Mapped[str] = mapped_column(String(64))
    observation_ids: Mapped[str] = mapped_column(Text)

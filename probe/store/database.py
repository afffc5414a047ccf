"""Open a database by URL, keep its schema current, and save/load measurements.

Why a synchronous engine: SQLAlchemy's asyncio extension does not run under trio
(field notes).  The probe therefore has exactly one writer task
(:mod:`probe.store.writer`) which hands batches of finished measurements to a worker
thread; SQLite in WAL mode commits each batch at once, so a kill loses nothing the
run has reported done.

Every way a measurement arrives (a run, an OONI import, an uploaded batch) goes
through the same two steps: :func:`prepare_item` builds its rows and
:meth:`Store.save_prepared` writes many of them at once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import JSON, Connection, Engine, create_engine, event, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from probe.bundled import bundled_path
from probe.errors import SetupError
from probe.extras import missing_extra_message
from probe.failures import Failure
from probe.records import Measurement, Run, utc_now
from probe.store.models import (
    Base,
    DnsObservationRow,
    HttpObservationRow,
    MeasurementRow,
    ProbeKeyRow,
    RunRow,
    SubmissionRow,
    TcpObservationRow,
    TlsObservationRow,
)
from probe.volunteer.paths import data_dir as data_dir  # where it was before paths.py
from probe.volunteer.paths import default_db_url

MIGRATIONS = bundled_path("store", "migrations")


class StoreError(SetupError, RuntimeError):
    """The database cannot be used (full disk, unreadable file, bad URL); says what to do."""


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names when it does not exist (``None`` for other databases,
    in-memory ones and files that are there)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # create_store_engine reports the bad URL
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return None if path.exists() else path


def create_store_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # 16 KiB pages (a no-op on an existing database): a stored record is about
            # 2 KB, and with 4 KiB pages only one fits a page, which doubles the file.
            cursor.execute("PRAGMA page_size=16384")
            # WAL: readers never block the writer, and a commit survives a kill.
            # synchronous=FULL: and a power cut too (NORMAL may lose the last commits
            # when the machine dies); one fsync per batch of the run's writer costs little next to
            # the seconds a measurement takes (README's promise, docs/hostile-input.md).
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


_REVISION_LINE = re.compile(
    r"""^(down_revision|revision)\s*(?::[^=]*)?=\s*(?:None|["']([\w-]+)["'])\s*$""", re.MULTILINE
)


def _script_head() -> str | None:
    """The one head revision of the bundled migrations, read from their files; ``None``
    when that is not plain (Alembic then decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in Path(MIGRATIONS, "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(path.read_text("utf-8")))
        if "revision" not in found or not found["revision"]:
            return None
        revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _database_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except SQLAlchemyError:
        return None  # no table yet: a new database
    return rows[0][0] if len(rows) == 1 else None


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    head = _script_head() if revision == "head" else None
    if head is not None and _database_revision(engine) == head:
        # Current already: skip Alembic, whose import and script scan cost more than
        # a short run's measuring work on a small machine.
        return
    # Imported here: Alembic costs a noticeable share of start-up and is needed only
    # when the schema is behind.
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def _observation_values(m: Measurement) -> list[tuple[type, dict[str, Any]]]:
    """The observation index rows of a measurement, as (table class, column values)."""
    rows: list[tuple[type, dict[str, Any]]] = []
    groups = [(m.dns, m.tcp, m.tls, m.http, False)]
    if m.control is not None:
        c = m.control
        groups.append((c.dns, c.tcp, c.tls, c.http, True))
    for dns, tcp, tls, http, is_control in groups:
        common = {"measurement_id": m.id, "is_control": is_control}
        for d in dns:
            rows.append(
                (
                    DnsObservationRow,
                    dict(
                        **common,
                        obs_id=d.id,
                        failure=d.failure,
                        started=d.started,
                        finished=d.finished,
                        hostname=d.hostname,
                        query_type=d.query_type,
                        resolver=d.resolver,
                        transport=d.transport,
                        rcode=d.rcode,
                        addresses=d.addresses(),
                        extra_responses=len(d.extra_responses),
                    ),
                )
            )
        for t in tcp:
            rows.append(
                (
                    TcpObservationRow,
                    dict(
                        **common,
                        obs_id=t.id,
                        failure=t.failure,
                        started=t.started,
                        finished=t.finished,
                        ip=t.ip,
                        port=t.port,
                    ),
                )
            )
        for s in tls:
            rows.append(
                (
                    TlsObservationRow,
                    dict(
                        **common,
                        obs_id=s.id,
                        failure=s.failure,
                        started=s.started,
                        finished=s.finished,
                        ip=s.ip,
                        port=s.port,
                        server_name=s.server_name,
                        purpose=s.purpose,
                        version=s.version,
                        cipher=s.cipher,
                        validated=s.validated,
                        leaf_sha256=s.certificates[0].sha256 if s.certificates else None,
                    ),
                )
            )
        for h in http:
            rows.append(
                (
                    HttpObservationRow,
                    dict(
                        **common,
                        obs_id=h.id,
                        failure=h.failure,
                        started=h.started,
                        finished=h.finished,
                        url=h.url,
                        ip=h.ip,
                        status_code=h.status_code,
                        title=h.title,
                        location=h.header("location"),
                        body_length=h.body_length,
                        body_sha256=h.body_sha256,
                        body_truncated=h.body_truncated,
                    ),
                )
            )
    return rows


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


class BatchConflict(Exception):
    """A batch the store refused as a whole: (item index, field, why) for each item."""

    def __init__(self, problems: list[tuple[int, str, str]]) -> None:
        super().__init__("; ".join(f"measurements[{i}].{f}: {m}" for i, f, m in problems[:3]))
        self.problems = problems


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
        record = m.canonical_json().decode()
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
    row["record"] = record
    observations: dict[str, list[dict[str, Any]]] = {}
    for cls, values in _observation_values(m):
        failure = values.get("failure")
        if failure is not None and failure not in _KNOWN_FAILURES:
            values["failure"] = Failure.UNKNOWN.value  # as Measurement.from_dict reads it back
        if sanitise:
            values = {key: _index_text(value) for key, value in values.items()}
        observations.setdefault(cls.__tablename__, []).append(values)
    return PreparedItem(
        id=m.id,
        content_hash=content_hash,
        row=row,
        observations=observations,
        key_id=envelope.get("key_id"),
        probe_id=probe_id,
        asn_source=asn_source,
    )


def _insert_ignoring_conflicts(connection: Connection, table: Any) -> Any:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def _copy_available(connection: Connection) -> bool:
    return connection.dialect.driver == "psycopg"


def _copy_rows(connection: Connection, table: Any, values: list[dict[str, Any]]) -> None:
    """PostgreSQL COPY of many rows: ten times cheaper per row than INSERT."""
    columns = list(values[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    names = ", ".join(f'"{c}"' for c in columns)
    dbapi = connection.connection.dbapi_connection
    with dbapi.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for value in values:
            copy.write_row(
                [json.dumps(value[c]) if c in json_columns else value[c] for c in columns]
            )


def _write_error(exc: OperationalError) -> StoreError:
    if "full" in str(exc).lower():
        return StoreError(
            "the disk holding the database is full: free some space and run again "
            "(everything measured so far is kept)"
        )
    return StoreError(f"cannot write to the database: {exc.orig}")


class Store:
    """The one entry point to a Kuzot database, SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: key id -> the probes it is bound to, for keys seen (bindings are only added).
        self._key_owners: dict[str, frozenset[str]] = {}

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True, must_exist: bool = False) -> Store:
        """Open (and by default migrate) the database at ``url``.

        ``must_exist``: for commands that only read; a SQLite file that is not there is
        an error instead of a new empty database (a typo must not look like "no data").
        """
        url = url or default_db_url()
        if must_exist:
            missing = missing_sqlite_file(url)
            if missing is not None:
                raise StoreError(
                    f"no database at {missing} ({url}): measure first with `kuzot run`, "
                    "or pass --db with an existing database"
                )
        try:
            engine = create_store_engine(url)
            if migrate:
                upgrade_schema(engine)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"cannot open database {url}: {exc}") from exc
        except ImportError as exc:
            message = missing_extra_message(exc)
            if message is None:
                raise
            raise StoreError(f"cannot open database {url}: {message}") from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- runs -------------------------------------------------------------------------

    def begin_run(self, run: Run) -> None:
        values = asdict(run)
        with Session(self.engine) as session, session.begin():
            session.add(RunRow(**values))

    def reopen_run(self, run_id: str) -> None:
        """Mark an interrupted run as running again (``kuzot run --resume``)."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(RunRow).where(RunRow.id == run_id).values(status="running", finished_at=None)
            )

    def bytes_used_since(self, since: datetime) -> int:
        from sqlalchemy import func

        with Session(self.engine) as session:
            total = session.scalar(
                select(func.coalesce(func.sum(MeasurementRow.bytes_used), 0)).where(
                    MeasurementRow.stored_at >= since
                )
            )
            return int(total or 0)

    def bytes_used_by_run(self) -> dict[str, int]:
        from sqlalchemy import func

        with Session(self.engine) as session:
            rows = session.execute(
                select(MeasurementRow.run_id, func.sum(MeasurementRow.bytes_used)).group_by(
                    MeasurementRow.run_id
                )
            )
            return {run_id: int(total or 0) for run_id, total in rows if run_id}

    def finish_run(self, run_id: str, status: str, finished_at: datetime | None = None) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(status=status, finished_at=finished_at or utc_now())
            )

    def runs(self) -> list[Run]:
        with Session(self.engine) as session:
            rows = session.scalars(select(RunRow).order_by(RunRow.started_at)).all()
            return [
                Run(
                    id=r.id,
                    started_at=_aware(r.started_at) or utc_now(),
                    software_name=r.software_name,
                    software_version=r.software_version,
                    finished_at=_aware(r.finished_at),
                    status=r.status,
                    probe_asn=r.probe_asn,
                    probe_cc=r.probe_cc,
                    probe_network=r.probe_network,
                    resolvers=list(r.resolvers or []),
                    targets_total=r.targets_total,
                    options=dict(r.options or {}),
                )
                for r in rows
            ]

    # --- measurements -----------------------------------------------------------------

    def save_measurement(
        self,
        m: Measurement,
        *,
        signature: dict[str, str] | None = None,
        source: str = "kuzot",
        bytes_used: int = 0,
    ) -> bool:
        """Store one measurement and its observation index in one transaction.

        Returns False when a measurement with this id is already stored: saving is
        idempotent, which is what makes re-imports and re-uploads safe.
        """
        item = prepare_item(m, signature=signature, bytes_used=bytes_used)
        return self.save_prepared([item], source=source, changed="keep")[0]

    def save_measurements(
        self,
        items: Iterable[Measurement],
        *,
        sign: Callable[[Measurement], dict[str, str]] | None = None,
        source: str = "kuzot",
        chunk: int = 500,
    ) -> int:
        """Store many measurements, a transaction per chunk; ids already stored are
        skipped.  For imports and generated histories, where one transaction per
        measurement would dominate the time.  Returns how many were new."""
        stored = 0
        batch: list[PreparedItem] = []
        for m in items:
            batch.append(prepare_item(m, signature=sign(m) if sign else None))
            if len(batch) >= chunk:
                stored += sum(self.save_prepared(batch, source=source, changed="keep"))
                batch.clear()
        if batch:
            stored += sum(self.save_prepared(batch, source=source, changed="keep"))
        return stored

    def save_batch(
        self, items: Sequence[BatchItem], *, source: str = "upload", attempts: int = 5
    ) -> list[bool]:
        """Store a batch in ONE transaction: all of it or none of it.

        Returns, per item, True when it was stored now and False when its id was
        already stored (earlier, or by an item before it in this batch).  Why one
        transaction: a collector answering "stored" must never have stored half a
        batch, and a probe that retries a batch after a lost answer must find every
        item again as a duplicate.  See :meth:`save_prepared` for the conflicts
        that refuse a batch.
        """
        prepared = [
            prepare_item(
                item.measurement,
                record=item.record,
                content_hash=item.content_hash,
                signature=item.signature,
                bytes_used=item.bytes_used,
                probe_asn=item.probe_asn,
                probe_id=item.probe_id,
                asn_source=item.asn_source,
            )
            for item in items
        ]
        return self.save_prepared(prepared, source=source, attempts=attempts)

    def save_prepared(
        self,
        items: Sequence[PreparedItem],
        *,
        source: str = "upload",
        attempts: int = 5,
        changed: Literal["refuse", "keep"] = "refuse",
        chunk: int | None = None,
    ) -> list[bool]:
        """The one bulk writer: store prepared rows with multi-row inserts (COPY on
        PostgreSQL).  Returns, per item, True when stored now and False when its id was
        already stored (earlier, or by an item before it in ``items``).

        ``changed`` says what an id already stored with a *different* content hash
        means.  ``"refuse"`` (uploads): :class:`BatchConflict` is raised and nothing of
        the transaction is stored, as also when a signed item's key belongs to another
        probe than the one delivering it.  ``"keep"`` (a run's own measurements,
        imports): the stored one stays and the item counts as already stored, so a
        re-import with other options never fails half-way.

        ``chunk``: ``None`` is one transaction for everything (a collector must never
        have stored half a batch); a number is a transaction per that many items
        (imports: bounded transactions, and a kill keeps every finished chunk).

        If another writer commits one of these ids between our look-up and our insert,
        the unique key refuses ours; the transaction is then rolled back and tried
        again, and that id now reads as a duplicate (or a conflict).
        """
        if chunk is None or len(items) <= chunk:
            return self._save_transaction(items, source, attempts, changed)
        results: list[bool] = []
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            try:
                results += self._save_transaction(part, source, attempts, changed)
            except BatchConflict as conflict:
                raise BatchConflict([(i + start, f, why) for i, f, why in conflict.problems]) from None
        return results

    def _save_transaction(
        self, items: Sequence[PreparedItem], source: str, attempts: int, changed: str
    ) -> list[bool]:
        if not items:
            return []
        for attempt in range(attempts):
            try:
                bound: dict[str, frozenset[str]] = {}
                with self.engine.begin() as connection:
                    results = self._write_prepared(connection, items, source, bound, changed)
                self._key_owners.update(bound)
                return results
            except IntegrityError:
                if attempt + 1 == attempts:
                    raise
            except OperationalError as exc:
                raise _write_error(exc) from exc
            except BatchConflict:
                raise
            except Exception as exc:
                # psycopg's own errors from COPY are not wrapped by SQLAlchemy.
                if getattr(exc, "sqlstate", None) == "23505" and attempt + 1 < attempts:
                    continue
                if getattr(exc, "sqlstate", None) is not None:
                    raise StoreError(f"cannot write to the database: {exc}") from exc
                raise
        raise AssertionError("unreachable")

    def _write_prepared(
        self,
        connection: Connection,
        items: Sequence[PreparedItem],
        source: str,
        bound: dict[str, frozenset[str]],
        changed: str = "refuse",
    ) -> list[bool]:
        now = utc_now()
        measurements = MeasurementRow.__table__
        ids = [item.id for item in items]
        existing: dict[str, str] = {}
        for start in range(0, len(ids), 500):  # stay under bind-parameter limits
            chunk = ids[start : start + 500]
            found = connection.execute(
                select(measurements.c.id, measurements.c.content_hash).where(measurements.c.id.in_(chunk))
            )
            existing.update((row[0], row[1]) for row in found)
        problems: list[tuple[int, str, str]] = []
        results: list[bool] = []
        fresh: list[PreparedItem] = []
        for index, item in enumerate(items):
            known = existing.get(item.id)
            if known is None:
                existing[item.id] = item.content_hash
                fresh.append(item)
                results.append(True)
            elif known == item.content_hash or changed == "keep":
                results.append(False)
            else:
                problems.append(
                    (
                        index,
                        "record.id",
                        f"measurement {item.id} is already stored with different content "
                        f"(sha256 {known[:16]}…, this one {item.content_hash[:16]}…); "
                        "a changed measurement needs a new id",
                    )
                )
        problems += self._check_keys(connection, items, fresh, now, bound)
        if problems:
            raise BatchConflict(problems)
        if not fresh:
            return results
        observations: dict[str, list[dict[str, Any]]] = {}
        for item in fresh:
            for table, rows in item.observations.items():
                observations.setdefault(table, []).extend(rows)
        extra = {"source": source, "stored_at": now}
        rows = [{**item.row, **extra, "uploaded_at": now if item.probe_id else None} for item in fresh]
        submissions = [
            {
                "measurement_id": item.id,
                "probe_id": item.probe_id,
                "received_at": now,
                "asn_source": item.asn_source,
            }
            for item in fresh
            if item.probe_id is not None
        ]
        tables = [(measurements, rows)]
        tables += [(Base.metadata.tables[name], values) for name, values in observations.items()]
        tables.append((SubmissionRow.__table__, submissions))
        copy = connection.dialect.name == "postgresql" and _copy_available(connection)
        for table, values in tables:
            if not values:
                continue
            if copy:
                _copy_rows(connection, table, values)
            else:
                connection.execute(insert(table), values)
        return results

    def _check_keys(
        self,
        connection: Connection,
        items: Sequence[PreparedItem],
        fresh: Sequence[PreparedItem],
        now: datetime,
        bound: dict[str, frozenset[str]],
    ) -> list[tuple[int, str, str]]:
        """Bind each key seen for the first time to the probe delivering it; refuse
        items whose key is bound to other probes only."""
        wanted = {item.key_id for item in fresh if item.key_id and item.probe_id}
        if not wanted:
            return []
        owners = {key: self._key_owners[key] for key in wanted if key in self._key_owners}
        unknown = wanted - owners.keys()
        keys = ProbeKeyRow.__table__
        if unknown:
            lookup = select(keys.c.key_id, keys.c.probe_id).where(keys.c.key_id.in_(sorted(unknown)))

            def read() -> dict[str, frozenset[str]]:
                found: dict[str, set[str]] = {}
                for key, probe in connection.execute(lookup):
                    found.setdefault(key, set()).add(probe)
                return {key: frozenset(probes) for key, probes in found.items()}

            owners.update(read())
            new = {item.key_id: item.probe_id for item in fresh if item.key_id in unknown - owners.keys()}
            if new:
                connection.execute(
                    _insert_ignoring_conflicts(connection, keys),
                    [{"key_id": k, "probe_id": p, "bound_at": now} for k, p in new.items()],
                )
                owners.update(read())
            bound.update({key: owners[key] for key in unknown if key in owners})
        fresh_ids = {id(item) for item in fresh}
        problems = []
        for index, item in enumerate(items):
            if id(item) not in fresh_ids or not item.key_id or not item.probe_id:
                continue
            allowed = owners.get(item.key_id)
            if allowed is not None and item.probe_id not in allowed:
                problems.append(
                    (
                        index,
                        "public_key",
                        f"signed with key {item.key_id}, which belongs to another probe: a probe uploads "
                        "only what its own key signed (the key's holder proves it with POST /api/v1/keys)",
                    )
                )
        return problems

    def bind_key(self, key_id: str, probe_id: str) -> None:
        """Let ``probe_id`` deliver records signed by ``key_id`` (it proved it holds the key)."""
        keys = ProbeKeyRow.__table__
        with self.engine.begin() as connection:
            connection.execute(
                _insert_ignoring_conflicts(connection, keys),
                [{"key_id": key_id, "probe_id": probe_id, "bound_at": utc_now()}],
            )
        self._key_owners.pop(key_id, None)

    def iter_measurements(
        self,
        *,
        domain: str | None = None,
        probe_asn: int | None = None,
        run_id: str | None = None,
        role: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        batch: int = 1000,
    ) -> Iterator[Measurement]:
        """Measurements in time order, read back from their canonical records."""
        query = select(MeasurementRow.record).order_by(MeasurementRow.started_at, MeasurementRow.id)
        if domain is not None:
            query = query.where(MeasurementRow.domain == domain)
        if probe_asn is not None:
            query = query.where(MeasurementRow.probe_asn == probe_asn)
        if run_id is not None:
            query = query.where(MeasurementRow.run_id == run_id)
        if role is not None:
            query = query.where(MeasurementRow.role == role)
        if since is not None:
            query = query.where(MeasurementRow.started_at >= since)
        if until is not None:
            query = query.where(MeasurementRow.started_at < until)
        with Session(self.engine) as session:
            for record in session.scalars(query.execution_options(yield_per=batch)):
                yield Measurement.from_dict(json.loads(record))

    def measurement_ids(self, run_id: str | None = None) -> set[str]:
        query = select(MeasurementRow.id)
        if run_id is not None:
            query = query.where(MeasurementRow.run_id == run_id)
        with Session(self.engine) as session:
            return set(session.scalars(query))

    def count_measurements(self) -> int:
        from sqlalchemy import func

        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(MeasurementRow)) or 0)

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

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from probe.extras import missing_extra_message
from probe.records import Measurement, Run, utc_now
from probe.store.bulk import BatchConflict, KeyOwners, insert_ignoring_conflicts, save_transaction
from probe.store.engine import (
    MIGRATIONS,
    StoreError,
    _script_head,
    create_store_engine,
    missing_sqlite_file,
    upgrade_schema,
)
from probe.store.models import MeasurementRow, ProbeKeyRow, RunRow
from probe.store.rows import BatchItem, PreparedItem, prepare_item
from probe.volunteer.paths import data_dir as data_dir  # where it was before paths.py
from probe.volunteer.paths import default_db_url

# The names this module always offered, now defined by concern in engine.py (opening),
# rows.py (building a measurement's rows) and bulk.py (writing them).
__all__ = [
    "MIGRATIONS",
    "BatchConflict",
    "BatchItem",
    "PreparedItem",
    "Store",
    "StoreError",
    "_script_head",
    "create_store_engine",
    "data_dir",
    "default_db_url",
    "missing_sqlite_file",
    "prepare_item",
    "upgrade_schema",
]


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Store:
    """The one entry point to a Kuzot database, SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: key id -> the probes it is bound to, for keys seen (bindings are only added).
        self._key_owners: KeyOwners = {}

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
            # A killed bulk import leaves its deferred indexes to the next open.
            from probe.store.bulk_load import rebuild_abandoned

            rebuild_abandoned(engine)
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
        """
        if chunk is None or len(items) <= chunk:
            return save_transaction(
                self.engine, self._key_owners, items, source=source, attempts=attempts, changed=changed
            )
        results: list[bool] = []
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            try:
                results += save_transaction(
                    self.engine, self._key_owners, part, source=source, attempts=attempts, changed=changed
                )
            except BatchConflict as conflict:
                raise BatchConflict([(i + start, f, why) for i, f, why in conflict.problems]) from None
        return results

    def bind_key(self, key_id: str, probe_id: str) -> None:
        """Let ``probe_id`` deliver records signed by ``key_id`` (it proved it holds the key)."""
        keys = ProbeKeyRow.__table__
        with self.engine.begin() as connection:
            connection.execute(
                insert_ignoring_conflicts(connection, keys),
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

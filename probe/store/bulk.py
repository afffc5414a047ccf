"""The one bulk writer: prepared rows in, multi-row inserts (COPY on PostgreSQL) out.

Why one writer for every source (a run, an OONI import, an uploaded batch): the
duplicate and conflict rules (an id stored once; a changed record under a known id
refused or kept; a signing key bound to the probes that proved they hold it) must be
the same wherever a measurement comes from, and one transaction per batch is what
makes storing cheap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from probe.records import utc_now
from probe.store.engine import StoreError, write_error
from probe.store.models import Base, MeasurementRow, ProbeKeyRow, SubmissionRow
from probe.store.rows import PreparedItem

#: key id -> the probes it is bound to (a store's memory of keys seen; only added to).
KeyOwners = dict[str, frozenset[str]]


class BatchConflict(Exception):
    """A batch the store refused as a whole: (item index, field, why) for each item."""

    def __init__(self, problems: list[tuple[int, str, str]]) -> None:
        super().__init__("; ".join(f"measurements[{i}].{f}: {m}" for i, f, m in problems[:3]))
        self.problems = problems


def insert_ignoring_conflicts(connection: Connection, table: Any) -> Any:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def _copy_available(connection: Connection) -> bool:
    return connection.dialect.driver == "psycopg"


def _copy_rows(connection: Connection, table: Any, values: list[dict[str, Any]]) -> None:
    """PostgreSQL COPY of many rows: ten times cheaper per row than INSERT.  (Binary
    COPY was tried and measured slower in the collector's workers: psycopg formats
    text rows in C.)"""
    columns = list(values[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    names = ", ".join(f'"{c}"' for c in columns)
    dbapi: Any = connection.connection.dbapi_connection  # psycopg's, for its COPY API
    with dbapi.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for value in values:
            copy.write_row([json.dumps(value[c]) if c in json_columns else value[c] for c in columns])


def save_transaction(
    engine: Engine,
    key_owners: KeyOwners,
    items: Sequence[PreparedItem],
    *,
    source: str,
    attempts: int,
    changed: str,
) -> list[bool]:
    """Store ``items`` in one transaction (see :meth:`probe.store.Store.save_prepared`).

    If another writer commits one of these ids between our look-up and our insert, the
    unique key refuses ours; the transaction is then rolled back and tried again, and
    that id now reads as a duplicate (or a conflict)."""
    if not items:
        return []
    for attempt in range(attempts):
        try:
            bound: KeyOwners = {}
            with engine.begin() as connection:
                results = write_prepared(connection, key_owners, items, source, bound, changed)
            key_owners.update(bound)
            return results
        except IntegrityError:
            if attempt + 1 == attempts:
                raise
        except OperationalError as exc:
            raise write_error(exc) from exc
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


def _stored_hashes(connection: Connection, ids: list[str]) -> dict[str, str]:
    measurements = MeasurementRow.__table__
    existing: dict[str, str] = {}
    if connection.dialect.name == "postgresql":
        # One array parameter instead of an IN list of one parameter per id: one short
        # statement to send, parse and plan, whatever the batch's size.
        found = connection.exec_driver_sql(
            "SELECT id, content_hash FROM measurements WHERE id = ANY(%s)", (ids,)
        )
        existing.update((row[0], row[1]) for row in found)
        return existing
    for start in range(0, len(ids), 500):  # stay under bind-parameter limits
        chunk = ids[start : start + 500]
        found = connection.execute(
            select(measurements.c.id, measurements.c.content_hash).where(measurements.c.id.in_(chunk))
        )
        existing.update((row[0], row[1]) for row in found)
    return existing


def _partition(
    items: Sequence[PreparedItem], existing: dict[str, str], changed: str
) -> tuple[list[bool], list[PreparedItem], list[tuple[int, str, str]]]:
    """(stored now? per item, the items to insert, the conflicts) against what is stored."""
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
    return results, fresh, problems


def write_prepared(
    connection: Connection,
    key_owners: KeyOwners,
    items: Sequence[PreparedItem],
    source: str,
    bound: KeyOwners,
    changed: str = "refuse",
) -> list[bool]:
    """Inside an open transaction: insert what is new of ``items``."""
    now = utc_now()
    existing = _stored_hashes(connection, [item.id for item in items])
    results, fresh, problems = _partition(items, existing, changed)
    problems += check_keys(connection, key_owners, items, fresh, now, bound)
    if problems:
        raise BatchConflict(problems)
    if fresh:
        _insert_rows(connection, fresh, source, now)
    return results


def _insert_rows(connection: Connection, fresh: list[PreparedItem], source: str, now: datetime) -> None:
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
    tables: list[tuple[Any, list[dict[str, Any]]]] = [(MeasurementRow.__table__, rows)]
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


def _read_owners(connection: Connection, unknown: set[str]) -> KeyOwners:
    keys = ProbeKeyRow.__table__
    lookup = select(keys.c.key_id, keys.c.probe_id).where(keys.c.key_id.in_(sorted(unknown)))
    found: dict[str, set[str]] = {}
    for key, probe in connection.execute(lookup):
        found.setdefault(key, set()).add(probe)
    return {key: frozenset(probes) for key, probes in found.items()}


def check_keys(
    connection: Connection,
    key_owners: KeyOwners,
    items: Sequence[PreparedItem],
    fresh: Sequence[PreparedItem],
    now: datetime,
    bound: KeyOwners,
) -> list[tuple[int, str, str]]:
    """Bind each key seen for the first time to the probe delivering it; refuse
    items whose key is bound to other probes only."""
    wanted = {item.key_id for item in fresh if item.key_id and item.probe_id}
    if not wanted:
        return []
    # A remembered binding that does not name the delivering probe is read again: the
    # probe may have proved its key (POST /api/v1/keys) through another process since.
    delivering: dict[str, set[str]] = {}
    for item in fresh:
        if item.key_id and item.probe_id:
            delivering.setdefault(item.key_id, set()).add(item.probe_id)
    owners = {
        key: key_owners[key] for key in wanted if key in key_owners and delivering[key] <= key_owners[key]
    }
    unknown = wanted - owners.keys()
    if unknown:
        owners.update(_read_owners(connection, unknown))
        new = {item.key_id: item.probe_id for item in fresh if item.key_id in unknown - owners.keys()}
        if new:
            connection.execute(
                insert_ignoring_conflicts(connection, ProbeKeyRow.__table__),
                [{"key_id": k, "probe_id": p, "bound_at": now} for k, p in new.items()],
            )
            owners.update(_read_owners(connection, unknown))
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

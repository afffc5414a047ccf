"""The read-only queries the Explorer (:mod:`probe.web`) runs.

Why a module of its own: the Explorer opens a database it must never change (a
read-only engine, built by :mod:`probe.web.source`), reads by its own bookmark (SQLite's
rowid or PostgreSQL's ``stored_at``) so a refresh reads only what is new, and joins the
verdict cache for the current rules.  The web layer decides *when* to read and what the
rows mean; this module is the only place those queries are written, so the schema stays
known in ``probe/store/``.  Every function takes the caller's engine and opens nothing
itself; none of them writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, Row, inspect, text

from probe.store.record_codec import RECORD_TYPES


def table_names(engine: Engine) -> set[str]:
    """The tables the database holds (the Explorer checks it is a Kuzot database)."""
    return set(inspect(engine).get_table_names())


def measurement(engine: Engine, measurement_id: str) -> Row[Any] | None:
    """One stored measurement's canonical record and signature envelope, or None."""
    query = text(
        "SELECT id, record, content_hash, signature, key_id, public_key, source, stored_at "
        "FROM measurements WHERE id = :id"
    ).columns(**RECORD_TYPES)
    with engine.connect() as conn:
        return conn.execute(query, {"id": measurement_id}).first()


def change_marker(engine: Engine, sqlite: bool) -> Any:
    """Something that changes when measurements arrive, cheap to read every few seconds
    on a large table: SQLite's largest rowid (the store only appends); PostgreSQL's count
    of row changes from its statistics views (else the latest ``stored_at`` and count)."""
    with engine.connect() as conn:
        if sqlite:
            return conn.execute(text("SELECT MAX(rowid) FROM measurements")).scalar()
        row = conn.execute(
            text(
                "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
                "WHERE relid = to_regclass('measurements')"
            )
        ).first()
        if row is not None and row[0] is not None:
            return int(row[0])
        return tuple(conn.execute(text("SELECT MAX(stored_at), COUNT(*) FROM measurements")).first() or ())


def recent_runs(engine: Engine, limit: int) -> list[dict[str, Any]]:
    """The latest ``limit`` runs with the bytes they used, their measurement count and
    how many of those are not uploaded yet (the volunteer page)."""
    query = text(
        "SELECT r.id, r.started_at, r.finished_at, r.status, r.probe_asn, r.targets_total, "
        "COALESCE(SUM(m.bytes_used), 0) AS bytes_used, COUNT(m.id) AS measurements, "
        "SUM(CASE WHEN m.uploaded_at IS NULL THEN 1 ELSE 0 END) AS unsent "
        "FROM runs r LEFT JOIN measurements m ON m.run_id = r.id "
        "GROUP BY r.id, r.started_at, r.finished_at, r.status, r.probe_asn, r.targets_total "
        "ORDER BY r.started_at DESC LIMIT :limit"
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query, {"limit": limit})]


def unsent_count(engine: Engine) -> int:
    """How many stored measurements are not uploaded yet."""
    with engine.connect() as conn:
        value = conn.execute(text("SELECT COUNT(*) FROM measurements WHERE uploaded_at IS NULL")).scalar()
    return int(value or 0)


# --- reading by bookmark: SQLite's rowid, PostgreSQL's stored_at ------------------------


def _column(sqlite: bool) -> str:
    return "rowid" if sqlite else "stored_at"


def top_position(engine: Engine, sqlite: bool) -> Any:
    """The largest bookmark stored (None when there are no measurements)."""
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT MAX({_column(sqlite)}) FROM measurements")).scalar()


def _range(sqlite: bool, since: Any, top: Any) -> tuple[str, dict[str, Any]]:
    """The SQL condition (on table ``measurements`` unaliased) for what a call reads:
    up to ``top`` when ``since`` is None, else after ``since`` up to ``top`` plus the
    whole runs those belong to (a late canary changes its run's targets' verdicts)."""
    column = _column(sqlite)
    if since is None:
        return f"{column} <= :top", {"top": top}
    new = f"{column} > :since AND {column} <= :top"
    return (
        f"(({new}) OR run_id IN (SELECT run_id FROM measurements WHERE {new} AND run_id IS NOT NULL))",
        {"since": since, "top": top},
    )


def _stream(engine: Engine, query: Any, params: dict[str, Any], batch: int) -> Iterator[Any]:
    with engine.connect() as conn:
        yield from conn.execution_options(yield_per=batch).execute(query, params)


def iter_records_in_range(
    engine: Engine, sqlite: bool, since: Any, top: Any, *, batch: int = 2000
) -> Iterator[Any]:
    """(record, stored_at) of every measurement in the range (see :func:`_range`), by
    run then time, streamed ``batch`` at a time."""
    where, params = _range(sqlite, since, top)
    query = text(
        f"SELECT record, stored_at FROM measurements WHERE {where} ORDER BY run_id, started_at, id"
    ).columns(**RECORD_TYPES)
    return _stream(engine, query, params, batch)


def iter_cached_in_range(
    engine: Engine, sqlite: bool, since: Any, top: Any, rules_version: str, fingerprints: str,
    *, batch: int = 2000,
) -> Iterator[Any]:
    """Cached verdicts of the targets in the range for these rules and fingerprints:
    (id, url, domain, probe_asn, started_at, status, blocking, confirmed, reason, rule_id,
    rules_version, observation_ids, category_code, stored_at, record)."""
    where, params = _range(sqlite, since, top)
    params.update(rules=rules_version, fp=fingerprints)
    query = text(
        "SELECT m.id, m.url, m.domain, m.probe_asn, m.started_at, v.status, v.blocking, v.confirmed, "
        "v.reason, v.rule_id, v.rules_version, v.observation_ids, m.category_code, m.stored_at, m.record "
        "FROM measurements m JOIN verdict_cache v ON v.measurement_id = m.id "
        "AND v.rules_version = :rules AND v.fingerprints = :fp "
        f"WHERE m.role <> 'canary' AND m.id IN (SELECT id FROM measurements WHERE {where})"
    ).columns(**RECORD_TYPES)
    return _stream(engine, query, params, batch)


def iter_uncached_in_range(
    engine: Engine, sqlite: bool, since: Any, top: Any, rules_version: str, fingerprints: str,
    *, batch: int = 2000,
) -> Iterator[Any]:
    """(record, stored_at) of the targets in the range without a cached verdict for these
    rules and fingerprints, and the canaries of their runs, by run then time."""
    where, params = _range(sqlite, since, top)
    params.update(rules=rules_version, fp=fingerprints)
    uncached = (
        "NOT EXISTS (SELECT 1 FROM verdict_cache v WHERE v.measurement_id = {a}.id "
        "AND v.rules_version = :rules AND v.fingerprints = :fp)"
    )
    missing = (
        f"WHERE {where} AND ((role <> 'canary' AND {uncached.format(a='measurements')}) OR "
        "(role = 'canary' AND run_id IN (SELECT t.run_id FROM measurements t WHERE t.role <> 'canary' "
        # The same range again (its bare names are t's here): without it this reads every
        # stored target on each refresh, minutes over a million records.
        f"AND t.run_id IS NOT NULL AND {where} AND {uncached.format(a='t')})))"
    )
    order = "ORDER BY run_id, started_at, id"
    query = text(f"SELECT record, stored_at FROM measurements {missing} {order}").columns(**RECORD_TYPES)
    return _stream(engine, query, params, batch)

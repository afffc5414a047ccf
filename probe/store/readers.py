"""Reading stored measurements by database URL, for analysis and reports (and the
verdict cache, the one table analysis writes: verdicts are derived data, kept beside
the measurements so they are judged once per rules version).

Why a module of its own, and the one piece of ``probe.store`` that ``analysis`` may
import: analysis must be able to read any Kuzot database (a volunteer's SQLite, the
collector's PostgreSQL) while the schema stays known in one package.  These readers
take a URL and open a plain engine of their own (no schema upgrade, no directory
created, no SQLite pragmas), hand back canonical records and envelope columns as
stored (the archival format itself; records decompressed by
:mod:`probe.store.record_codec`), and import nothing of the probe but the models,
so judging stays pure and runs anywhere the data is.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from probe.store.models import MeasurementRow
from probe.store.record_codec import RECORD_TYPES, decode_record

_TABLE = MeasurementRow.__table__


def iter_records(
    db_url: str,
    *,
    domain: str | None = None,
    probe_asn: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_canaries: bool = True,
    batch: int = 2000,
) -> Iterator[str]:
    """Stored canonical records (JSON text) in time order, streamed ``batch`` at a time;
    ``domain`` means the site with or without "www." (and its run's canaries, if kept)."""
    clauses = []
    params: dict[str, object] = {}
    if domain is not None:
        bare = domain.strip().lower().rstrip(".").removeprefix("www.")
        match = "domain IN (:domain, :www_domain)"
        clauses.append(f"({match} OR role = 'canary')" if include_canaries else match)
        params["domain"], params["www_domain"] = bare, f"www.{bare}"
    if probe_asn is not None:
        clauses.append("probe_asn = :asn")
        params["asn"] = probe_asn
    if since is not None:
        clauses.append("started_at >= :since")
        params["since"] = since
    if until is not None:
        clauses.append("started_at < :until")
        params["until"] = until
    if not include_canaries:
        clauses.append("role <> 'canary'")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    query = text(f"SELECT record FROM measurements {where} ORDER BY started_at, id").columns(**RECORD_TYPES)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(query, params)
            for (record,) in result:
                yield record
    finally:
        engine.dispose()


def canary_ids(db_url: str, measurement_ids: Sequence[str], *, chunk: int = 500) -> list[str]:
    """The canaries measured in the same runs as ``measurement_ids``, sorted."""
    engine = create_engine(db_url)
    found: set[str] = set()
    try:
        with engine.connect() as conn:
            for i in range(0, len(measurement_ids), chunk):
                part = measurement_ids[i : i + chunk]
                params = {f"m{j}": mid for j, mid in enumerate(part)}
                names = ", ".join(f":m{j}" for j in range(len(part)))
                query = text(
                    "SELECT id FROM measurements WHERE role = 'canary' AND run_id IN "
                    f"(SELECT run_id FROM measurements WHERE id IN ({names}) AND run_id IS NOT NULL)"
                )
                found.update(row[0] for row in conn.execute(query, params))
    finally:
        engine.dispose()
    return sorted(found)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def time_order(db_url: str, ids: Sequence[str], *, chunk: int) -> tuple[list[str], set[str]]:
    """(the ``ids`` found, sorted by (started_at, id) as the database sorts them; the ids
    not found).  Only the keys are held in memory, never the records."""
    keys: list[tuple[Any, str]] = []
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            for part in _chunks(ids, chunk):
                query = select(_TABLE.c.started_at, _TABLE.c.id).where(_TABLE.c.id.in_(part))
                keys.extend((started_at, mid) for started_at, mid in conn.execute(query))
    finally:
        engine.dispose()
    missing = set(ids) - {mid for _, mid in keys}
    keys.sort()
    return [mid for _, mid in keys], missing


def iter_envelopes(
    db_url: str, ids: Sequence[str], columns: Sequence[str], *, chunk: int
) -> Iterator[Any]:
    """Rows with ``columns`` of the ``ids``, in the order given (ids not stored are
    skipped), read ``chunk`` at a time so memory holds one chunk of records."""
    wanted = [_TABLE.c[name] for name in columns]
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            for part in _chunks(ids, chunk):
                rows = {row.id: row for row in conn.execute(select(*wanted).where(_TABLE.c.id.in_(part)))}
                for mid in part:
                    if mid in rows:
                        yield rows[mid]
    finally:
        engine.dispose()


# --- the verdict cache (analysis's derived table: judged once per rules version) ---------


def open_engine(db_url: str) -> Engine:
    """A plain engine for the verdict cache functions below; the caller disposes of it."""
    return create_engine(db_url)


def _where(
    domain: str | None,
    probe_asn: int | None,
    since: datetime | None,
    until: datetime | None,
    alias: str = "m",
) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    a = alias
    if domain is not None:
        bare = domain.strip().lower().rstrip(".").removeprefix("www.")
        clauses.append(f"({a}.domain IN (:domain, :www_domain) OR {a}.role = 'canary')")
        params["domain"], params["www_domain"] = bare, f"www.{bare}"
    if probe_asn is not None:
        clauses.append(f"{a}.probe_asn = :asn")
        params["asn"] = probe_asn
    if since is not None:
        clauses.append(f"{a}.started_at >= :since")
        params["since"] = since
    if until is not None:
        clauses.append(f"{a}.started_at < :until")
        params["until"] = until
    return (f" AND {' AND '.join(clauses)}" if clauses else ""), params


def iter_uncached(
    engine: Engine,
    rules_version: str,
    fingerprints: str,
    *,
    domain: str | None = None,
    probe_asn: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    batch: int = 5000,
    encoded: bool = False,
) -> Generator[Any, None, None]:
    """(run_id, role, record) of every target matching the filters without a cached
    verdict for these rules and fingerprints, with its run's canaries, by run then time.
    Canaries only of runs that have a target to judge: a warm cache reads nothing.

    ``encoded``: each record as stored (compressed), for :func:`record_text` to open
    where it is judged: in a worker process, the reading process neither decompresses
    it nor sends four times its size through the pool's pipe.

    Read a page of ``batch`` rows at a time, each page in its own short read (keyset on
    run, time and id): one statement held open through a whole judging kept SQLite from
    ever checkpointing its write-ahead log while the verdicts were written beside it,
    and over 10 M measurements the log grew past 40 GB, more than the database, with
    most of the reading process's time spent committing into it."""
    where, params = _where(domain, probe_asn, since, until)
    where_t, _ = _where(domain, probe_asn, since, until, alias="t")
    params.update(rules=rules_version, fp=fingerprints, limit=batch)

    def uncached(alias: str) -> str:
        return (
            f"NOT EXISTS (SELECT 1 FROM verdict_cache v WHERE v.measurement_id = {alias}.id "
            "AND v.rules_version = :rules AND v.fingerprints = :fp)"
        )

    # A canary is read with the run it belongs to while that run has a target to judge
    # (correlated, so each page's query looks at its own runs only).
    wanted = (
        f"((m.role <> 'canary' AND {uncached('m')}) OR (m.role = 'canary' AND EXISTS "
        "(SELECT 1 FROM measurements t WHERE t.run_id = m.run_id AND t.role <> 'canary' "
        f"AND {uncached('t')}{where_t}))){where}"
    )
    select = "SELECT m.run_id, m.role, m.record, m.started_at, m.id FROM measurements m"
    # Measurements of no run (no canaries to go with them), by id; then the runs, each
    # whole and in time order.
    loose = f"{select} WHERE m.run_id IS NULL AND {wanted} AND m.id > :after_id ORDER BY m.id LIMIT :limit"
    order = "ORDER BY m.run_id, m.started_at, m.id LIMIT :limit"
    # ``run_id >= :run`` alone is what an index on run_id can seek to.
    in_runs = (
        f"{select} WHERE m.run_id >= :run AND {wanted} AND (m.run_id > :run OR "
        f"(m.started_at > :at OR (m.started_at = :at AND m.id > :after_id))) {order}"
    )
    first_in_runs = f"{select} WHERE m.run_id IS NOT NULL AND {wanted} {order}"

    def pages(
        sql: str, first_sql: str, after: dict[str, Any], keys: Callable[[Any], dict[str, Any]]
    ) -> Generator[Any, None, None]:
        statement = first_sql
        while True:
            query = text(statement) if encoded else text(statement).columns(**RECORD_TYPES)
            with engine.connect() as conn:  # the read ends with the page
                rows = conn.execute(query, {**params, **after}).fetchall()
            for run_id, role, record, _at, _id in rows:
                yield run_id, role, _picklable(record) if encoded else record
            if len(rows) < batch:
                return
            statement, after = sql, keys(rows[-1])

    yield from pages(loose, loose, {"after_id": ""}, lambda row: {"after_id": row[4]})
    yield from pages(in_runs, first_in_runs, {}, lambda r: {"run": r[0], "at": r[3], "after_id": r[4]})


def _picklable(stored: Any) -> bytes | str:
    """A driver's memoryview (PostgreSQL's bytea) cannot be sent to a worker: bytes."""
    return stored if isinstance(stored, bytes | str) else bytes(stored)


def record_text(stored: bytes | str) -> str:
    """The canonical record text of a record read with ``encoded=True``."""
    return decode_record(stored)


_VERDICT_COLUMNS = (
    "measurement_id", "rules_version", "fingerprints", "status", "blocking", "confirmed", "reason",
    "rule_id", "observation_ids",
)  # fmt: skip


def insert_verdict_rows(engine: Engine, rows: Sequence[tuple[Any, ...]]) -> bool:
    """Cache verdict rows, each a tuple in the cache's column order (``_VERDICT_COLUMNS``);
    False when the database cannot take them (read-only, or without the table).

    Why tuples through the driver's own ``executemany``: a million verdicts are written
    per cold judging, and SQLAlchemy's per-row binding of dicts cost more than SQLite's
    insert.  On SQLite the writing connection syncs at commit only as WAL's ``NORMAL``
    (the cache is derived data: a verdict lost in a power cut is judged again), and
    checkpoints every 64 MB of log instead of every 4 MB: a chunk's verdicts land on
    pages all over the cache's index, so SQLite's default checkpointed (and synced) the
    same interior pages after nearly every chunk."""
    if not rows:
        return True
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    insert = (
        f"INSERT INTO verdict_cache ({', '.join(_VERDICT_COLUMNS)}) "
        f"VALUES ({', '.join([mark] * len(_VERDICT_COLUMNS))}) ON CONFLICT DO NOTHING"
    )
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA synchronous = NORMAL")
                conn.exec_driver_sql("PRAGMA wal_autocheckpoint = 16384")
            for start in range(0, len(rows), 5000):
                conn.exec_driver_sql(insert, list(rows[start : start + 5000]))
    except (OperationalError, ProgrammingError):
        return False
    return True


def iter_cached(
    engine: Engine,
    rules_version: str,
    fingerprints: str,
    *,
    domain: str | None = None,
    probe_asn: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    batch: int = 5000,
) -> Generator[Any, None, None]:
    """Cached verdicts of the targets matching the filters, in time order: (id, url,
    domain, probe_asn, started_at, status, blocking, confirmed, reason, rule_id,
    rules_version, observation_ids)."""
    where, params = _where(domain, probe_asn, since, until)
    params.update(rules=rules_version, fp=fingerprints)
    query = text(
        "SELECT m.id, m.url, m.domain, m.probe_asn, m.started_at, v.status, v.blocking, v.confirmed, "
        "v.reason, v.rule_id, v.rules_version, v.observation_ids "
        "FROM measurements m JOIN verdict_cache v ON v.measurement_id = m.id "
        "AND v.rules_version = :rules AND v.fingerprints = :fp "
        f"WHERE m.role <> 'canary'{where} ORDER BY m.started_at, m.id"
    )
    with engine.connect() as conn:
        # a batch at a time (fetchmany), not the row-by-row fetch: a million rows per read
        for part in conn.execution_options(yield_per=batch).execute(query, params).partitions(batch):
            yield from part


def delete_verdicts(db_url: str, *, except_rules_version: str | None) -> int:
    """Delete cached verdicts (all, or all but those of ``except_rules_version``)."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            if except_rules_version is not None:
                result = conn.execute(
                    text("DELETE FROM verdict_cache WHERE rules_version <> :r"), {"r": except_rules_version}
                )
            else:
                result = conn.execute(text("DELETE FROM verdict_cache"))
            return int(result.rowcount or 0)
    finally:
        engine.dispose()

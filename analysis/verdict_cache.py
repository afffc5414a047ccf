"""Verdicts judged once per rules version, read back instead of judged again.

Why: judging means reading every stored record back (JSON parsing dominates) and
applying the rules; over a million imported OONI measurements that is minutes each
time ``kuzot episodes`` runs.  A verdict depends only on the measurement (immutable
once stored, by id), the rules (:data:`analysis.verdicts.RULES_VERSION`) and the
fingerprints matched against (a digest of them), so it is kept in the ``verdict_cache``
table under those three keys.  New rules or fingerprints find no row and judge again,
and only the measurements that lack a row for them; old rows are left for the old
version (``prune`` removes them).

Canaries: a run's canaries decide ``probe_offline`` for its targets, so targets of a
run judged here are judged with their run's canaries (as :func:`judge_all` does).  A
run that gains canaries after its targets were judged (a resumed run) should be
re-judged with ``prune``.

Pure SQL over the table the probe's migrations create (the analysis layer does not
import the probe's store), so it works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from analysis.fingerprints import FingerprintSet
from analysis.verdicts import RULES_VERSION, Verdict, judge_all, verdicts_frame
from probe.records import Measurement


def fingerprints_digest(fingerprints: FingerprintSet) -> str:
    """A short, stable name for a fingerprint set (its patterns in order)."""
    digest = hashlib.sha256()
    for fp in (*fingerprints.dns, *fingerprints.http):
        digest.update(repr(fp).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def _where(
    domain: str | None, probe_asn: int | None, since: datetime | None, until: datetime | None
) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if domain is not None:
        bare = domain.strip().lower().rstrip(".").removeprefix("www.")
        clauses.append("(m.domain IN (:domain, :www_domain) OR m.role = 'canary')")
        params["domain"], params["www_domain"] = bare, f"www.{bare}"
    if probe_asn is not None:
        clauses.append("m.probe_asn = :asn")
        params["asn"] = probe_asn
    if since is not None:
        clauses.append("m.started_at >= :since")
        params["since"] = since
    if until is not None:
        clauses.append("m.started_at < :until")
        params["until"] = until
    return (f" AND {' AND '.join(clauses)}" if clauses else ""), params


def _store(engine: Engine, verdicts: Iterable[Verdict], digest: str) -> None:
    rows = [
        {
            "measurement_id": v.measurement_id,
            "rules_version": v.rules_version,
            "fingerprints": digest,
            "status": v.status,
            "blocking": v.blocking,
            "confirmed": bool(v.confirmed),
            "reason": v.reason,
            "rule_id": v.rule_id,
            "observation_ids": json.dumps(list(v.observation_ids)),
        }
        for v in verdicts
    ]
    if not rows:
        return
    insert = text(
        "INSERT INTO verdict_cache (measurement_id, rules_version, fingerprints, status, blocking, "
        "confirmed, reason, rule_id, observation_ids) VALUES (:measurement_id, :rules_version, "
        ":fingerprints, :status, :blocking, :confirmed, :reason, :rule_id, :observation_ids) "
        "ON CONFLICT DO NOTHING"
    )
    try:
        with engine.begin() as conn:
            for start in range(0, len(rows), 5000):
                conn.execute(insert, rows[start : start + 5000])
    except (OperationalError, ProgrammingError):
        pass  # a read-only database (or one without the table): judged, just not cached


def cached_verdicts(
    db_url: str,
    *,
    fingerprints: FingerprintSet,
    domain: str | None = None,
    probe_asn: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    batch: int = 5000,
    workers: int | None = None,
) -> pd.DataFrame:
    """The verdicts frame (:func:`analysis.verdicts.verdicts_frame`) of every target
    measurement matching the filters: cached rows as they are, the rest judged now
    (with their runs' canaries) and cached for next time."""
    digest = fingerprints_digest(fingerprints)
    where, params = _where(domain, probe_asn, since, until)
    params.update(rules=RULES_VERSION, fp=digest)
    engine = create_engine(db_url)
    try:
        cached_query = text(
            "SELECT m.id AS measurement_id, m.url, m.domain, m.probe_asn, m.started_at AS measured_at, "
            "v.status, v.blocking, v.confirmed, v.reason, v.rule_id, v.rules_version, v.observation_ids "
            "FROM measurements m JOIN verdict_cache v ON v.measurement_id = m.id "
            "AND v.rules_version = :rules AND v.fingerprints = :fp "
            f"WHERE m.role <> 'canary'{where} ORDER BY m.started_at, m.id"
        )
        missing_query = text(
            "SELECT m.run_id, m.role, m.record FROM measurements m WHERE (m.role = 'canary' OR NOT EXISTS "
            "(SELECT 1 FROM verdict_cache v WHERE v.measurement_id = m.id AND v.rules_version = :rules AND "
            f"v.fingerprints = :fp)){where} ORDER BY m.run_id, m.started_at, m.id"
        )
        with engine.connect() as conn:
            cached = [
                Verdict(
                    measurement_id=row[0],
                    url=row[1],
                    domain=row[2],
                    probe_asn=row[3],
                    measured_at=_utc(row[4]),
                    status=row[5],
                    blocking=row[6],
                    confirmed=bool(row[7]),
                    reason=row[8],
                    rule_id=row[9],
                    rules_version=row[10],
                    observation_ids=_loads(row[11]),
                )
                for row in conn.execute(cached_query, params)
            ]
            rows = conn.execution_options(yield_per=batch).execute(missing_query, params)
            fresh = _judge_missing(engine, rows, fingerprints, digest, workers=workers)
    finally:
        engine.dispose()
    if not cached:
        fresh.sort(key=_order)
        return verdicts_frame(fresh)
    if fresh:
        cached.extend(fresh)
        cached.sort(key=_order)
    return verdicts_frame(cached)


def _order(v: Verdict) -> tuple[datetime, str]:
    return (v.measured_at, v.measurement_id)


try:
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads

#: Records per unit of judging work; a run's measurements never straddle two.
JUDGE_CHUNK = 2000
#: Below this many records to judge, worker processes cost more than they save.
PARALLEL_ABOVE = 20_000

_WORKER_FINGERPRINTS: FingerprintSet | None = None


def _init_worker(fingerprints: FingerprintSet) -> None:
    global _WORKER_FINGERPRINTS
    _WORKER_FINGERPRINTS = fingerprints


def _judge_chunk(records: list[str], fingerprints: FingerprintSet | None = None) -> list[Verdict]:
    """Parse and judge one chunk (a whole run's measurements, canaries included)."""
    fps = fingerprints or _WORKER_FINGERPRINTS
    assert fps is not None
    measurements = [Measurement.from_json(r) for r in records]
    pending = {m.run_id for m in measurements if m.role != "canary"}
    # A run judged earlier is read again only for its canaries: skip it.
    todo = [m for m in measurements if m.role != "canary" or m.run_id in pending]
    return judge_all(todo, fingerprints=fps)


def _chunks(rows: Iterable[Any]) -> Iterable[list[str]]:
    chunk: list[str] = []
    last_run: object = object()
    for run_id, _role, record in rows:
        if len(chunk) >= JUDGE_CHUNK and (run_id is None or run_id != last_run):
            yield chunk
            chunk = []
        chunk.append(record)
        last_run = run_id
    if chunk:
        yield chunk


def _judge_missing(
    engine: Engine, rows: Iterable[Any], fingerprints: FingerprintSet, digest: str, *, workers: int | None
) -> list[Verdict]:
    """Judge every record not cached (in worker processes when there are many), caching
    the verdicts a window at a time so memory stays bounded by the window."""
    import itertools
    import multiprocessing
    import os

    fresh: list[Verdict] = []
    chunks = iter(_chunks(rows))
    first = list(itertools.islice(chunks, PARALLEL_ABOVE // JUDGE_CHUNK))
    count = workers if workers is not None else (os.cpu_count() or 1)
    if len(first) < PARALLEL_ABOVE // JUDGE_CHUNK or count <= 1:
        for chunk in itertools.chain(first, chunks):
            verdicts = _judge_chunk(chunk, fingerprints)
            _store(engine, verdicts, digest)
            fresh.extend(verdicts)
        return fresh
    context = multiprocessing.get_context("forkserver")
    with context.Pool(count, initializer=_init_worker, initargs=(fingerprints,)) as pool:
        window = first
        while window:
            for verdicts in pool.imap(_judge_chunk, window):
                fresh.extend(verdicts)
                _store(engine, verdicts, digest)
            window = list(itertools.islice(chunks, count * 4))
    return fresh


def _utc(value: Any) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back text, PostgreSQL datetimes)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def prune(db_url: str, *, keep_current: bool = True) -> int:
    """Delete cached verdicts of other rules versions (all, with ``keep_current=False``)."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            if keep_current:
                result = conn.execute(
                    text("DELETE FROM verdict_cache WHERE rules_version <> :r"), {"r": RULES_VERSION}
                )
            else:
                result = conn.execute(text("DELETE FROM verdict_cache"))
            return int(result.rowcount or 0)
    finally:
        engine.dispose()


__all__ = ["cached_verdicts", "fingerprints_digest", "prune"]

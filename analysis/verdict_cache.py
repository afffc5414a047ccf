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

The SQL over the tables lives in :mod:`probe.store.readers` (the one piece of the
probe's store the analysis layer imports), plain enough to work on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from orjson import loads as _loads
from sqlalchemy import Engine

import probe.store.readers as readers
from analysis.fingerprints import FingerprintSet
from analysis.verdicts import RULES_VERSION, VERDICT_COLUMNS, Verdict, judge_all, verdicts_frame
from analysis.verdicts.verdict import CATEGORY_COLUMNS, compact_verdicts, id_dtype
from probe.records import Measurement


def fingerprints_digest(fingerprints: FingerprintSet) -> str:
    """A short, stable name for a fingerprint set (its patterns in order)."""
    digest = hashlib.sha256()
    for fp in (*fingerprints.dns, *fingerprints.http):
        digest.update(repr(fp).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


#: A verdict as a plain tuple (its fields in order, observation ids as JSON text):
#: what worker processes send back, pickled about six times faster than a Verdict.
VerdictFields = tuple[Any, ...]


def _fields(v: Verdict) -> VerdictFields:
    return (
        v.measurement_id, v.url, v.domain, v.probe_asn, v.measured_at, v.status, v.blocking,
        bool(v.confirmed), v.reason, v.rule_id, v.rules_version, json.dumps(list(v.observation_ids)),
    )  # fmt: skip


def _verdict(t: VerdictFields) -> Verdict:
    mid, url, domain, asn, at, status, blocking, confirmed, reason, rule, rules, obs = t
    ids = list(json.loads(obs))
    return Verdict(mid, url, domain, asn, at, status, blocking, confirmed, reason, rule, rules, ids)


def _store_fields(engine: Engine, verdicts: list[VerdictFields], digest: str) -> bool:
    """Cache verdicts given as :data:`VerdictFields`; False when the database cannot take them."""
    # the cache's column order: measurement_id, rules_version, fingerprints, status,
    # blocking, confirmed, reason, rule_id, observation_ids
    rows = [(t[0], t[10], digest, t[5], t[6], t[7], t[8], t[9], t[11]) for t in verdicts]
    # False: a read-only database (or one without the table): judged, just not cached
    return readers.insert_verdict_rows(engine, rows)


def judge_stored(
    db_url: str,
    *,
    fingerprints: FingerprintSet,
    domain: str | None = None,
    probe_asn: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    batch: int = 5000,
    workers: int | None = None,
) -> tuple[int, list[Verdict]]:
    """Judge and cache every target measurement matching the filters that has no cached
    verdict for the current rules and fingerprints (with its run's canaries).

    Streams: records are read ``batch`` at a time, judged a chunk at a time (in worker
    processes when there are many) and written to the cache as they come, so memory is
    bounded by a window of chunks whatever the database size.  Returns how many were
    judged, and the verdicts the database would not take (a read-only database), which
    the caller must keep itself."""
    digest = fingerprints_digest(fingerprints)
    engine = readers.open_engine(db_url)
    rows = readers.iter_uncached(
        engine, RULES_VERSION, digest, domain=domain, probe_asn=probe_asn, since=since, until=until,
        batch=batch, encoded=True,
    )
    try:
        return _judge_missing(engine, rows, fingerprints, digest, workers=workers)
    finally:
        rows.close()
        engine.dispose()


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
    measurement matching the filters: what is not cached is judged first
    (:func:`judge_stored`), then the frame is read from the cache column by column
    (repeated strings shared, no :class:`Verdict` objects), in time order."""
    _judged, unstored = judge_stored(
        db_url,
        fingerprints=fingerprints,
        domain=domain,
        probe_asn=probe_asn,
        since=since,
        until=until,
        batch=batch,
        workers=workers,
    )
    digest = fingerprints_digest(fingerprints)
    engine = readers.open_engine(db_url)
    rows = readers.iter_cached(
        engine, RULES_VERSION, digest, domain=domain, probe_asn=probe_asn, since=since, until=until,
        batch=batch,
    )
    try:
        frame = _read_frame(rows)
    finally:
        rows.close()
        engine.dispose()
    if unstored:
        frame = pd.concat([frame, verdicts_frame(unstored)], ignore_index=True)
        frame = frame.sort_values(["measured_at", "measurement_id"], kind="mergesort").reset_index(drop=True)
    return compact_verdicts(frame)


def _read_frame(rows: Iterable[Any]) -> pd.DataFrame:
    """A verdicts frame from cache rows, built as columns: each distinct string (url,
    status, reason, ...) and each distinct observation-id list is one object shared by
    the rows that have it, which keeps ten million verdicts in memory."""
    columns: list[list[Any]] = [[] for _ in VERDICT_COLUMNS]
    shared: list[dict[Any, Any]] = [{} for _ in VERDICT_COLUMNS]
    ids_seen: dict[str, list[str]] = {}
    (mid, url, dom, asn, at, status, blocking, confirmed, reason, rule, rules, obs) = columns
    s_url, s_dom, s_status, s_blocking = shared[1], shared[2], shared[5], shared[6]
    s_reason, s_rule, s_rules = shared[8], shared[9], shared[10]
    for row in rows:
        mid.append(row[0])
        url.append(s_url.setdefault(row[1], row[1]))
        dom.append(s_dom.setdefault(row[2], row[2]))
        asn.append(row[3])
        at.append(row[4])
        status.append(s_status.setdefault(row[5], row[5]))
        blocking.append(s_blocking.setdefault(row[6], row[6]))
        confirmed.append(bool(row[7]))
        reason.append(s_reason.setdefault(row[8], row[8]))
        rule.append(s_rule.setdefault(row[9], row[9]))
        rules.append(s_rules.setdefault(row[10], row[10]))
        parsed = ids_seen.get(row[11])
        if parsed is None:
            parsed = ids_seen[row[11]] = list(_loads(row[11]))
        obs.append(parsed)
    frame = pd.DataFrame(_compact_columns(columns), columns=list(VERDICT_COLUMNS))
    frame["measured_at"] = pd.to_datetime(
        [_utc(x) for x in at] if at and not isinstance(at[0], str) else at, utc=True, format="ISO8601"
    )
    frame["probe_asn"] = frame["probe_asn"].astype("Int64")
    frame["confirmed"] = frame["confirmed"].astype(bool)
    return frame


def _compact_columns(columns: list[list[Any]]) -> dict[str, Any]:
    """The columns as :func:`analysis.verdicts.compact_verdicts` holds them, each built
    straight from its list (no string column in between) and its list emptied once
    built, so the lists and the frame are not both whole in memory."""
    out: dict[str, Any] = {}
    for name, values in zip(VERDICT_COLUMNS, columns, strict=True):
        if name in CATEGORY_COLUMNS:
            out[name] = pd.Categorical(values)
        elif name == "measurement_id":
            out[name] = pd.array(values, dtype=id_dtype())
        else:
            out[name] = values
            continue
        values.clear()
    return out


#: Records per unit of judging work; a run's measurements never straddle two.
JUDGE_CHUNK = 2000
#: Below this many records to judge, worker processes cost more than they save.
PARALLEL_ABOVE = 20_000

_WORKER_FINGERPRINTS: FingerprintSet | None = None


def _init_worker(fingerprints: FingerprintSet) -> None:
    global _WORKER_FINGERPRINTS
    _WORKER_FINGERPRINTS = fingerprints


def _judge_chunk(
    records: list[bytes | str], fingerprints: FingerprintSet | None = None
) -> list[VerdictFields]:
    """Open, parse and judge one chunk (a whole run's measurements, canaries included),
    its records as stored (:func:`probe.store.readers.record_text` opens them here)."""
    fps = fingerprints or _WORKER_FINGERPRINTS
    assert fps is not None
    measurements = [Measurement.from_json(readers.record_text(r)) for r in records]
    pending = {m.run_id for m in measurements if m.role != "canary"}
    # A run judged earlier is read again only for its canaries: skip it.
    todo = [m for m in measurements if m.role != "canary" or m.run_id in pending]
    return [_fields(v) for v in judge_all(todo, fingerprints=fps)]


def _chunks(rows: Iterable[Any]) -> Iterable[list[bytes | str]]:
    chunk: list[bytes | str] = []
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
) -> tuple[int, list[Verdict]]:
    """Judge every record not cached (in worker processes when there are many), caching
    the verdicts chunk by chunk.  Returns the count judged and the verdicts the cache
    would not take.

    Why a sliding window of ``2 * workers`` chunks in flight (not a window awaited
    whole): the parent reads records and writes verdicts while the workers judge, so
    both cores stay busy, and memory still holds only the chunks in flight."""
    import collections
    import itertools
    import multiprocessing
    import os

    judged = 0
    unstored: list[Verdict] = []

    def keep(verdicts: list[VerdictFields]) -> None:
        nonlocal judged
        judged += len(verdicts)
        if not _store_fields(engine, verdicts, digest):
            unstored.extend(_verdict(t) for t in verdicts)

    chunks = iter(_chunks(rows))
    first = list(itertools.islice(chunks, PARALLEL_ABOVE // JUDGE_CHUNK))
    count = workers if workers is not None else (os.cpu_count() or 1)
    if len(first) < PARALLEL_ABOVE // JUDGE_CHUNK or count <= 1:
        for chunk in itertools.chain(first, chunks):
            keep(_judge_chunk(chunk, fingerprints))
        return judged, unstored
    context = multiprocessing.get_context("forkserver")
    # imported once in the fork server (when this starts it), not once per worker
    context.set_forkserver_preload([__name__])
    with context.Pool(count, initializer=_init_worker, initargs=(fingerprints,)) as pool:
        pending: collections.deque[Any] = collections.deque()
        for chunk in itertools.chain(first, chunks):
            pending.append(pool.apply_async(_judge_chunk, (chunk,)))
            if len(pending) > 2 * count:
                keep(pending.popleft().get())
        while pending:
            keep(pending.popleft().get())
    return judged, unstored


def _utc(value: Any) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back text, PostgreSQL datetimes)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def prune(db_url: str, *, keep_current: bool = True) -> int:
    """Delete cached verdicts of other rules versions (all, with ``keep_current=False``)."""
    return readers.delete_verdicts(db_url, except_rules_version=RULES_VERSION if keep_current else None)

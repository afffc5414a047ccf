"""Import OONI measurement files fast: parse in worker processes, insert in bulk.

Why this shape: converting one OONI measurement (JSON parse, our record, its
canonical JSON and hash, the index rows) costs milliseconds of CPU; inserting it costs
far less when done a few hundred rows at a time.  So workers (one per core) turn chunks
of raw lines into :class:`~probe.store.database.PreparedItem` values and the
parent process, the only writer, stores them.  Small inputs are converted in-process:
starting workers costs more than it saves.

Compact storage (see ``docs/ooni-archive.md``): an imported OONI measurement keeps
every observation the verdicts, episodes and reports use, but not whole bodies.  A
response body sample is kept only when it matches a blockpage fingerprint (the
caller's ``keep_body``); otherwise only its length, SHA-256 and title remain (and the
annotation ``kuzot.bodies_dropped`` says how many were dropped).  Header values beyond
:data:`HEADER_VALUE_CHARS` are cut (``kuzot.header_values_trimmed``).  Certificates keep
their fingerprint, names and dates but not their DER bytes.  The raw file stays in
the cache, so anything dropped can be read again from the evidence itself.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.ooni_archive.files import Damaged, measurement_lines
from probe.records import HttpObservation, Measurement
from probe.store.bulk_load import BulkLoad

#: Header values longer than this are cut to it (Content-Security-Policy, long cookies):
#: verdicts compare header names and match short values (Server, Location), and these
#: long values were a third of a compact record.
HEADER_VALUE_CHARS = 256
#: Lines per unit of work handed to a worker.
CHUNK_LINES = 400
#: Below this many lines, workers are not worth starting.
IN_PROCESS_BELOW = 3000
#: Measurements stored by one import before it defers the observation indexes
#: (see :mod:`probe.store.bulk_load`): smaller imports keep them up to date.
DEFER_INDEXES_AFTER = 20_000


@dataclass(frozen=True, slots=True)
class Filters:
    """Which measurements to keep (empty: all)."""

    asns: frozenset[int] = frozenset()
    domains: frozenset[str] = frozenset()
    ccs: frozenset[str] = frozenset()

    def keep(self, m: Measurement) -> bool:
        if self.asns and m.probe_asn not in self.asns:
            return False
        if self.ccs and (m.probe_cc or "") not in self.ccs:
            return False
        if self.domains:
            bare = m.domain.removeprefix("www.")
            if bare not in self.domains and m.domain not in self.domains:
                return False
        return True


def compact(m: Measurement, keep_body: Callable[[HttpObservation], bool] | None) -> Measurement:
    """Drop what no verdict needs (see the module's docstring); returns ``m``."""
    dropped = trimmed = 0
    for obs in m.http:
        if obs.body_sample and not (keep_body is not None and keep_body(obs)):
            obs.body_sample = b""
            dropped += 1
    for obs in [*m.http, *(m.control.http if m.control is not None else [])]:
        if any(len(value) > HEADER_VALUE_CHARS for _, value in obs.headers):
            trimmed += sum(1 for _, value in obs.headers if len(value) > HEADER_VALUE_CHARS)
            obs.headers = [(name, value[:HEADER_VALUE_CHARS]) for name, value in obs.headers]
    for tls in m.tls:
        for cert in tls.certificates:
            cert.der_b64 = ""
    if m.control is not None:
        for tls in m.control.tls:
            for cert in tls.certificates:
                cert.der_b64 = ""
    if dropped:
        m.annotations["kuzot.bodies_dropped"] = str(dropped)
    if trimmed:
        m.annotations["kuzot.header_values_trimmed"] = str(trimmed)
    return m


@dataclass(slots=True)
class ChunkResult:
    prepared: list[Any] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    filtered: int = 0
    lines: int = 0


@dataclass(frozen=True, slots=True)
class _Job:
    label: str
    lines: list[tuple[int, bytes]]
    filters: Filters
    keep_body: Callable[[HttpObservation], bool] | None
    compact: bool


def _convert_one(raw: bytes, job: _Job, number: int, out: ChunkResult) -> None:
    from probe.formats.ooni import OoniFormatError, loads, measurement_from_ooni, scrubbed
    from probe.store.canonical import canonical_record
    from probe.store.rows import prepare_item

    text = raw.strip()
    if not text:
        return
    try:
        data = loads(text)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        out.skipped.append(f"{job.label}:{number}: not JSON ({exc.__class__.__name__}: {str(exc)[:200]})")
        return
    try:
        m = measurement_from_ooni(data, check_encoding=False)
    except OoniFormatError as exc:
        out.skipped.append(f"{job.label}:{number}: {exc}")
        return
    except _HOSTILE as exc:
        reason = f"cannot be read ({exc.__class__.__name__}: {str(exc)[:200]})"
        out.skipped.append(f"{job.label}:{number}: {reason}")
        return
    if not job.filters.keep(m):
        out.filtered += 1
        return
    if job.compact:
        compact(m, job.keep_body)
    try:
        record = canonical_record(m)
    except UnicodeEncodeError:
        m = scrubbed(data)
        if job.compact:
            compact(m, job.keep_body)
        record = canonical_record(m)
    except (ValueError, RecursionError) as exc:
        out.skipped.append(f"{job.label}:{number}: cannot be stored ({exc.__class__.__name__})")
        return
    out.prepared.append(prepare_item(m, record=record))


_HOSTILE = (RecursionError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


def convert_chunk(job: _Job) -> ChunkResult:
    """Raw lines -> prepared rows (runs in a worker); a bad line is skipped with its reason."""
    out = ChunkResult(lines=len(job.lines))
    for number, raw in job.lines:
        _convert_one(raw, job, number, out)
    return out


@dataclass(slots=True)
class FileOutcome:
    path: Path
    lines: int = 0
    stored: int = 0
    present: int = 0
    filtered: int = 0
    skipped: list[str] = field(default_factory=list)
    error: str | None = None


def _jobs(
    path: Path, label: str, filters: Filters, keep_body: Any, do_compact: bool, outcome: FileOutcome
) -> Iterator[_Job]:
    batch: list[tuple[int, bytes]] = []
    try:
        for item in measurement_lines(path):
            batch.append(item)
            if len(batch) >= CHUNK_LINES:
                yield _Job(label, batch, filters, keep_body, do_compact)
                batch = []
    except Damaged as exc:
        outcome.error = str(exc)
    if batch:
        yield _Job(label, batch, filters, keep_body, do_compact)


def convert_file(
    path: Path, label: str, filters: Filters, keep_body: Any, do_compact: bool
) -> tuple[FileOutcome, list[Any]]:
    """A whole file -> prepared rows (runs in a worker): the worker reads the file
    itself, so only the compact rows cross the process boundary, not the raw lines."""
    outcome = FileOutcome(path)
    prepared: list[Any] = []
    for job in _jobs(path, label, filters, keep_body, do_compact, outcome):
        result = convert_chunk(job)
        outcome.lines += result.lines
        outcome.filtered += result.filtered
        outcome.skipped.extend(result.skipped)
        prepared.extend(result.prepared)
    return outcome, prepared


def _context() -> Any:
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


#: How much lower the converting workers' priority is than the writing parent's.
WORKER_NICENESS = 5


def _start_worker() -> None:
    """Why lower: the parent is the one writer, so every moment it waits for a core
    the whole import waits; the workers, with chunks queued ahead, use what it leaves."""
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICENESS)


def _pool(workers: int) -> Any:
    return _context().Pool(workers, initializer=_start_worker)


class Importer:
    """Imports files into one store; reuse it for many files (workers start once)."""

    def __init__(
        self,
        store: Any,
        *,
        filters: Filters | None = None,
        keep_body: Callable[[HttpObservation], bool] | None = None,
        compact: bool = True,
        workers: int | None = None,
        on_progress: Callable[[int, int], None] = lambda lines, stored: None,
    ) -> None:
        self.store = store
        self.filters = filters or Filters()
        self.keep_body = keep_body
        self.compact = compact
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self.on_progress = on_progress
        self._pool: Any = None
        self._load: BulkLoad | None = None
        self._stored = 0
        self._defer_at = 0

    def __enter__(self) -> Importer:
        engine = getattr(self.store, "engine", None)
        if engine is not None:
            self._load = BulkLoad(engine)
            # Deferring pays once this import is large next to what is stored: the
            # indexes are then rebuilt over everything, once.
            self._defer_at = max(DEFER_INDEXES_AFTER, self._load.stored_rows() // 4)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._pool is not None:
                self._pool.terminate()
                self._pool.join()
                self._pool = None
        finally:
            if self._load is not None:
                self._load.finish()
                self._load = None

    def _map(self, jobs: Iterable[_Job], parallel: bool) -> Iterator[ChunkResult]:
        if not parallel or self.workers <= 1:
            return map(convert_chunk, jobs)
        if self._pool is None:
            self._pool = _pool(self.workers)
        return self._pool.imap(convert_chunk, jobs, chunksize=1)

    def import_file(self, path: Path, label: str | None = None) -> FileOutcome:
        """Import one file; a damaged file keeps what came before the damage."""
        outcome = FileOutcome(path)
        parallel = path.stat().st_size > 200_000 or not path.name.endswith((".gz", ".lz4"))
        parallel = parallel and path.stat().st_size > 50_000
        jobs = _jobs(path, label or str(path), self.filters, self.keep_body, self.compact, outcome)
        pending: list[Any] = []
        for result in self._map(jobs, parallel):
            outcome.lines += result.lines
            outcome.filtered += result.filtered
            outcome.skipped.extend(result.skipped)
            pending.extend(result.prepared)
            if len(pending) >= 2000:
                self._flush(pending, outcome)
        self._flush(pending, outcome)
        return outcome

    def import_files(
        self, items: Iterable[tuple[Path, str]], on_done: Callable[[FileOutcome], None]
    ) -> None:
        """Import many files, one per worker at a time, storing each as it is ready, in
        order; ``items`` is consumed lazily (a sync downloads the next file while the
        workers parse the ones before).  ``on_done`` gets each file's outcome once its
        measurements are stored."""
        if self.workers <= 1:
            for path, label in items:
                on_done(self.import_file(path, label))
            return
        if self._pool is None:
            self._pool = _pool(self.workers)
        pending: deque[Any] = deque()

        def finish() -> None:
            outcome, prepared = pending.popleft().get()
            for start in range(0, len(prepared), 2000):
                self._flush(prepared[start : start + 2000], outcome)
            on_done(outcome)

        for path, label in items:
            if path.stat().st_size > 20_000_000:  # one large file: its lines go to all workers
                while pending:
                    finish()
                on_done(self.import_file(path, label))
                continue
            args = (path, label, self.filters, self.keep_body, self.compact)
            pending.append(self._pool.apply_async(convert_file, args))
            while pending and (len(pending) > self.workers * 2 or pending[0].ready()):
                finish()
        while pending:
            finish()

    def _flush(self, pending: list[Any], outcome: FileOutcome) -> None:
        if not pending:
            return
        # Ids already stored are skipped whatever their content (a re-import after a
        # kill, or with other options, stores each measurement once).
        stored = sum(self.store.save_prepared(pending, source="ooni", changed="keep", chunk=2000))
        self._stored += stored
        if self._load is not None and self._stored >= self._defer_at and not self._load.deferred:
            self._load.defer()
        outcome.stored += stored
        outcome.present += len(pending) - stored
        self.on_progress(len(pending), stored)
        if isinstance(pending, list):
            pending.clear()


def import_paths(store: Any, paths: Sequence[Path], **options: Any) -> list[FileOutcome]:
    with Importer(store, **options) as importer:
        return [importer.import_file(p) for p in paths]


def save_stream(store: Any, measurements: Iterable[Measurement], *, chunk: int = 500) -> tuple[int, int]:
    """Store already-converted measurements (``kuzot import-ooni FILE``) a transaction per
    ``chunk`` through the bulk writer; returns (newly stored, already present).

    Why chunks and not one transaction each: a commit (an fsync) per measurement capped
    the command near 20 measurements/s.  A kill loses at most the chunk not yet
    committed, none of which was reported, and importing again stores each id once."""
    seen = 0

    def counted() -> Iterator[Measurement]:
        nonlocal seen
        for m in measurements:
            seen += 1
            yield m

    stored = store.save_measurements(counted(), source="ooni", chunk=chunk)
    return stored, seen - stored

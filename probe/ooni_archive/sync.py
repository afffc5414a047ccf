"""``kuzot ooni sync``: list, fetch into the cache, and import what matched.

Why each step is idempotent: a sync of years of data runs for hours on a volunteer's
or analyst's line and will be interrupted.  The cache holds only complete, verified
copies (partial ones are ``.part`` files that the next run continues); each cached file
carries ``<name>.etag`` naming the object version it is; the database notes every
version it imported (``ooni_files``); measurement ids come from OONI's identifiers.  So
a kill at any point loses at most the file in flight, which the next run resumes, and
nothing is stored twice.  A second run over the same period lists again, finds every
file already imported under the same ETag, and downloads nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from probe.ooni_archive.importer import FileOutcome, Filters, Importer
from probe.ooni_archive.layout import ArchiveFile, prefixes, wanted
from probe.ooni_archive.s3 import ArchiveError, RateLimit, download, list_files, make_client


def cache_path(cache: Path, entry: ArchiveFile) -> Path:
    """Where a file lives in the cache: its bucket and key, so the cache mirrors the archive."""
    return cache / entry.bucket / entry.key


def archive_url(entry: ArchiveFile) -> str:
    return f"s3://{entry.bucket}/{entry.key}"


def _cached(path: Path, entry: ArchiveFile) -> bool:
    """Whether ``path`` is a complete copy of this version of the object.

    A file without its ``.etag`` note (a kill just after the rename) is checked once by
    size and MD5, and noted if it matches."""
    note = path.with_name(path.name + ".etag")
    if not path.exists() or path.stat().st_size != entry.size:
        return False
    if note.exists():
        return note.read_text().strip() == entry.etag
    digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    if "-" in entry.etag or digest == entry.etag.lower():
        note.write_text(entry.etag)
        return True
    return False


@dataclass(slots=True)
class SyncReport:
    listed: int = 0
    matched: int = 0
    downloaded: int = 0
    resumed: int = 0
    bytes_downloaded: int = 0
    already_imported: int = 0
    imported_files: int = 0
    measurements_read: int = 0
    stored: int = 0
    already_present: int = 0
    filtered: int = 0
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cache: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "files_listed": self.listed,
            "files_matched": self.matched,
            "files_downloaded": self.downloaded,
            "files_resumed": self.resumed,
            "bytes_downloaded": self.bytes_downloaded,
            "files_already_imported": self.already_imported,
            "files_imported": self.imported_files,
            "measurements_read": self.measurements_read,
            "imported": self.stored,
            "already_present": self.already_present,
            "filtered_out": self.filtered,
            "skipped": len(self.skipped),
            "skipped_lines": self.skipped,
            "errors": self.errors,
            "cache": self.cache,
        }


@dataclass(frozen=True, slots=True)
class SyncRequest:
    ccs: list[str]
    tests: list[str]
    since: date
    until: date
    asns: list[int] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    cans: bool = False
    endpoint_url: str | None = None
    bucket: str | None = None
    rate: int | None = None


class Progress:
    """What the sync tells as it goes; the command shows it with rich, tests ignore it."""

    def listing(self, done: int, total: int, files: int) -> None: ...
    def planned(self, files: int, total_bytes: int) -> None: ...
    def bytes(self, amount: int) -> None: ...
    def file_done(self, name: str) -> None: ...
    def measurements(self, amount: int) -> None: ...


def _list_archive(client: Any, request: SyncRequest, ccs: list[str], progress: Progress) -> list[ArchiveFile]:
    """Every file under the prefixes the request's countries, tests and days map to.

    Listing is by prefix because the archive is laid out by day, country and test, so
    only the part of it asked for is walked; ``--bucket`` re-points each prefix."""
    entries: list[ArchiveFile] = []
    plan = prefixes(ccs, request.tests, request.since, request.until, cans=request.cans)
    for index, prefix in enumerate(plan, start=1):
        if request.bucket:
            prefix = type(prefix)(request.bucket, prefix.prefix)
        entries.extend(list_files(client, prefix))
        progress.listing(index, len(plan), len(entries))
    return entries


def _filters(request: SyncRequest, ccs: list[str]) -> Filters:
    """The per-measurement filters; domains compared as the importer sees them (lower, no www.)."""
    return Filters(
        asns=frozenset(request.asns),
        domains=frozenset(d.lower().removeprefix("www.") for d in request.domains),
        ccs=frozenset(ccs),
    )


def _fetched(
    todo: list[ArchiveFile],
    client: Any,
    cache: Path,
    limit: RateLimit,
    report: SyncReport,
    progress: Progress,
) -> Iterator[tuple[Path, str]]:
    """Each file once it is in the cache (downloading it if needed), with its archive URL.

    A generator, so the importer parses one file while the next downloads; a file that
    cannot be fetched is noted in the report and left for the next run, not fatal."""

    def counted(amount: int) -> None:
        report.bytes_downloaded += amount
        progress.bytes(amount)

    for entry in todo:
        target = cache_path(cache, entry)
        if _cached(target, entry):
            progress.bytes(entry.size)
        else:
            try:
                resumed = download(client, entry, target, limit=limit, progress=counted)
            except ArchiveError as exc:
                report.errors.append(str(exc))
                continue
            target.with_name(target.name + ".etag").write_text(entry.etag)
            report.downloaded += 1
            report.resumed += int(resumed)
        yield target, archive_url(entry)


def _recorder(
    store: Any,
    cache: Path,
    todo: list[ArchiveFile],
    report: SyncReport,
    progress: Progress,
) -> Callable[[FileOutcome], None]:
    """What to do as each file's import finishes: count it and note its version as imported.

    Noting per file (not at the end) is what lets an interrupted sync skip the files it
    already finished."""
    from probe.store.ooni_files import record_import

    by_label = {archive_url(e): e for e in todo}

    def done(outcome: FileOutcome) -> None:
        entry = by_label[archive_url_of(outcome.path, cache)]
        _tally(report, outcome)
        record_import(
            store,
            archive_url(entry),
            entry.etag,
            entry.size,
            measurements=outcome.lines,
            stored=outcome.stored,
            skipped=len(outcome.skipped),
            error=outcome.error,
        )
        progress.file_done(entry.name)

    return done


def sync(
    request: SyncRequest,
    store: Any,
    cache: Path,
    *,
    keep_body: Callable[[Any], bool] | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> SyncReport:
    """List the archive, fetch what is not yet imported in this version, and import it.

    The work is planned against ``ooni_files`` before anything is downloaded, so a
    repeated sync over the same period lists, finds nothing new and fetches nothing."""
    from probe.store.ooni_files import imported_versions

    progress = progress or Progress()
    report = SyncReport(cache=str(cache))
    client = make_client(request.endpoint_url)
    ccs = [c.upper() for c in request.ccs]
    entries = _list_archive(client, request, ccs, progress)
    report.listed = len(entries)
    chosen = wanted(entries, ccs, request.tests)
    report.matched = len(chosen)
    imported = imported_versions(store)
    todo = [e for e in chosen if imported.get(archive_url(e)) != e.etag]
    report.already_imported = len(chosen) - len(todo)
    progress.planned(len(todo), sum(e.size for e in todo))
    limit = RateLimit(request.rate)
    with Importer(
        store,
        filters=_filters(request, ccs),
        keep_body=keep_body,
        workers=workers,
        on_progress=lambda lines, stored: progress.measurements(lines),
    ) as importer:
        importer.import_files(
            _fetched(todo, client, cache, limit, report, progress),
            _recorder(store, cache, todo, report, progress),
        )
    return report


def archive_url_of(path: Path, cache: Path) -> str:
    """``s3://bucket/key`` of a file in the cache (the inverse of :func:`cache_path`)."""
    return "s3://" + path.relative_to(cache).as_posix()


def _tally(report: SyncReport, outcome: FileOutcome) -> None:
    report.imported_files += 1
    report.measurements_read += outcome.lines
    report.stored += outcome.stored
    report.already_present += outcome.present
    report.filtered += outcome.filtered
    report.skipped.extend(outcome.skipped)
    if outcome.error:
        report.errors.append(outcome.error)


def local_version(path: Path) -> str:
    """A local file's version for ``ooni_files``: size and modification time."""
    stat = path.stat()
    return f"local:{stat.st_size}:{int(stat.st_mtime_ns // 1_000_000)}"


def import_directory(
    root: Path,
    store: Any,
    *,
    keep_body: Callable[[Any], bool] | None = None,
    filters: Filters | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> SyncReport:
    """Import a folder already synced (by ``oonidata sync``, or our cache) as it is;
    files already imported in the same version are skipped."""
    from probe.ooni_archive.files import local_files
    from probe.store.ooni_files import imported_versions, record_import

    progress = progress or Progress()
    report = SyncReport(cache=str(root))
    paths = local_files(root)
    report.listed = report.matched = len(paths)
    imported = imported_versions(store)
    todo = [p for p in paths if imported.get(str(p.resolve())) != local_version(p)]
    report.already_imported = len(paths) - len(todo)
    progress.planned(len(todo), sum(p.stat().st_size for p in todo))
    with Importer(
        store,
        filters=filters,
        keep_body=keep_body,
        workers=workers,
        on_progress=lambda lines, stored: progress.measurements(lines),
    ) as importer:
        def done(outcome: FileOutcome) -> None:
            path = outcome.path
            progress.bytes(path.stat().st_size)
            _tally(report, outcome)
            record_import(
                store,
                str(path.resolve()),
                local_version(path),
                path.stat().st_size,
                measurements=outcome.lines,
                stored=outcome.stored,
                skipped=len(outcome.skipped),
                error=outcome.error,
            )
            progress.file_done(path.name)

        importer.import_files(((p, str(p)) for p in todo), done)
    return report

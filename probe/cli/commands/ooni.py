"""``kuzot ooni sync`` and ``kuzot ooni import``: OONI's public archive as a data source.

Why a command of its own: OONI has published every Web Connectivity measurement from
Kyrgyzstan since 2014, and an analyst should get that history with one command.
``sync`` lists OONI's bucket for the period, country and test, downloads what is new
into the cache (``<data dir>/ooni-archive``, resumable), and imports what matched
(``--asn``, ``--domain``); ``import DIR`` imports a folder already synced (by OONI's
``oonidata sync`` or by us) as it is.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from probe.cli._analysis import keep_body
from probe.cli._common import CommandError, add_db_option, add_json_option, emit, open_store, parse_asn
from probe.i18n import gettext as _


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        message = _("not a date: {value} (use YYYY-MM-DD)").format(value=repr(text))
        raise argparse.ArgumentTypeError(message) from None


def _rate(text: str) -> int:
    """``500k``, ``2M``, ``1000000``: bytes per second."""
    cleaned = text.strip().upper().removesuffix("B").removesuffix("/S")
    factor = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(cleaned[-1:], 1)
    number = cleaned[:-1] if factor != 1 else cleaned
    try:
        value = float(number) * factor
    except ValueError:
        message = _("not a rate: {value} (use e.g. 500k or 2M bytes/s)").format(value=repr(text))
        raise argparse.ArgumentTypeError(message) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(_("the rate must be positive"))
    return int(value)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ooni", help="sync and import OONI's public measurement archive")
    sub = p.add_subparsers(dest="ooni_command", metavar="ACTION")
    s = sub.add_parser(
        "sync",
        help="download OONI's raw measurements for a period and country, then import them",
        description="List OONI's public S3 archive (anonymous requests), download the hourly "
        "measurement files that are new into the cache, resuming partial downloads, and import the "
        "measurements that match.  Running it again fetches only what is new.",
    )
    s.add_argument("--cc", action="append", required=True, metavar="CC", help="probe country (repeatable)")
    s.add_argument(
        "--asn", action="append", type=parse_asn, default=[], help="only this network (repeatable)"
    )
    s.add_argument("--domain", action="append", default=[], help="only this domain (repeatable)")
    s.add_argument("--test", action="append", default=None, help="OONI test (default web_connectivity)")
    s.add_argument("--since", type=_day, required=True, metavar="DATE", help="first day (UTC)")
    s.add_argument("--until", type=_day, metavar="DATE", help="day after the last (default: tomorrow)")
    s.add_argument("--cans", action="store_true", help="before 2020-10-21, read the old canned archives")
    s.add_argument(
        "--endpoint-url",
        default=None,
        help="an S3-compatible server instead of AWS (also $KUZOT_OONI_S3_ENDPOINT)",
    )
    s.add_argument("--bucket", default=None, help="bucket name (default OONI's, ooni-data-eu-fra)")
    s.add_argument(
        "--max-rate", type=_rate, default=None, metavar="RATE", help="bandwidth cap, e.g. 500k, 2M"
    )
    s.add_argument("--cache", type=Path, default=None, help="cache folder (default: in the data directory)")
    s.add_argument("--workers", type=int, default=None, help="parsing processes (default: one per core)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_db_option(s)
    add_json_option(s)
    s.set_defaults(handler=handle_sync)
    i = sub.add_parser(
        "import",
        help="import a folder of OONI files (e.g. one synced by oonidata) as it is",
        description="Import every OONI measurement file under DIR (.jsonl, .jsonl.gz, postcans); "
        "files already imported in the same version are skipped.",
    )
    i.add_argument(
        "dir",
        type=Path,
        metavar="DIR",
        help="a folder of OONI files (.jsonl[.gz], .json, lz4 cans), as oonidata syncs it",
    )
    i.add_argument(
        "--asn", action="append", type=parse_asn, default=[], help="only this network (repeatable)"
    )
    i.add_argument("--domain", action="append", default=[], help="only this domain (repeatable)")
    i.add_argument("--workers", type=int, default=None, help="parsing processes (default: one per core)")
    i.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_db_option(i)
    add_json_option(i)
    i.set_defaults(handler=handle_import)
    p.set_defaults(handler=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def default_cache() -> Path:
    from probe.volunteer.paths import ooni_cache_dir

    return ooni_cache_dir()


class _RichProgress:
    """Files, bytes, measurements and an ETA, on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bar: Any = None
        self.task: Any = None
        self.files = self.files_total = self.count = 0
        self.started = time.monotonic()

    def __enter__(self) -> _RichProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[files]} files, {task.fields[count]} measurements"),
                transient=False,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("listing", total=None, files="0/0", count=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def _update(self, **values: Any) -> None:
        if self.bar is not None:
            self.bar.update(self.task, files=f"{self.files}/{self.files_total}", count=self.count, **values)

    def listing(self, done: int, total: int, files: int) -> None:
        self._update(description=f"listing {done}/{total}")

    def planned(self, files: int, total_bytes: int) -> None:
        self.files_total = files
        if self.bar is not None:
            self.bar.reset(self.task, total=total_bytes)
        self._update(description="syncing")

    def bytes(self, amount: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, amount)

    def file_done(self, name: str) -> None:
        self.files += 1
        self._update()

    def measurements(self, amount: int) -> None:
        self.count += amount
        self._update()


def _text(report: Any) -> str:
    data = report.to_dict()
    text = _(
        "{files_matched} files matched, {files_downloaded} downloaded "
        "({bytes_downloaded} bytes, {files_resumed} resumed), "
        "{files_already_imported} already imported; {imported} measurements imported, "
        "{already_present} already present, {filtered_out} filtered out, "
        "{skipped} skipped"
    ).format(**{**data, "bytes_downloaded": f"{data['bytes_downloaded']:,}"})
    for error in data["errors"]:
        text += "\n" + _("error: {error}").format(error=error)
    return text


def handle_sync(args: argparse.Namespace) -> int:
    from probe.ooni_archive.sync import SyncRequest, sync

    until = args.until or (datetime.now(UTC).date() + timedelta(days=1))
    if until <= args.since:
        raise CommandError(_("--until must be after --since"), status=2)
    request = SyncRequest(
        ccs=[c.upper() for c in args.cc],
        tests=args.test or ["web_connectivity"],
        since=args.since,
        until=until,
        asns=args.asn,
        domains=args.domain,
        cans=args.cans,
        endpoint_url=args.endpoint_url,
        bucket=args.bucket,
        rate=args.max_rate,
    )
    store = open_store(args.db)
    try:
        with _RichProgress(not args.no_progress and not args.json) as progress:
            report = sync(
                request,
                store,
                args.cache or default_cache(),
                keep_body=keep_body,
                progress=progress,  # type: ignore[arg-type]  # duck-types sync.Progress
                workers=args.workers,
            )
    finally:
        store.close()
    for line in report.skipped:
        print(f"skipped {line}", file=sys.stderr)
    emit(args, report.to_dict(), _text(report))
    return 1 if report.errors and not report.stored and not report.already_imported else 0


def handle_import(args: argparse.Namespace) -> int:
    from probe.ooni_archive.importer import Filters
    from probe.ooni_archive.sync import import_directory

    if not args.dir.exists():
        raise CommandError(_("{path}: no such file or folder").format(path=args.dir), status=2)
    store = open_store(args.db)
    filters = Filters(
        asns=frozenset(args.asn), domains=frozenset(d.lower().removeprefix("www.") for d in args.domain)
    )
    try:
        with _RichProgress(not args.no_progress and not args.json) as progress:
            report = import_directory(
                args.dir, store, keep_body=keep_body, filters=filters, progress=progress, workers=args.workers  # type: ignore[arg-type]  # duck-types sync.Progress
            )
    finally:
        store.close()
    for line in report.skipped:
        print(f"skipped {line}", file=sys.stderr)
    emit(args, report.to_dict(), _text(report))
    return 1 if report.skipped and not report.stored and not report.already_present else 0


__all__ = ["default_cache", "handle_import", "handle_sync", "keep_body", "register"]

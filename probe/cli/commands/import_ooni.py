"""``kuzot import-ooni``: load OONI Web Connectivity measurements into the database.

Why: analysts already hold years of OONI measurements from Kyrgyzstan.  Stored as our
records (``source`` "ooni", under the probe's own AS number) they are judged by the
same rules as ours, so ``kuzot verdicts`` and the reports cover both.

A line that cannot be imported (malformed JSON, another OONI test, a measurement
without the fields a verdict needs) is skipped and reported with its line number: one
broken line must not cost the rest of a year's file.  With ``--strict`` every such
line is an error instead, and nothing is written unless the whole input is clean.
Importing the same file again stores nothing new (measurement ids are derived from
OONI's own identifiers).
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from probe.cli._common import CommandError, add_db_option, add_json_option, emit, open_store
from probe.i18n import gettext as _
from probe.i18n import ngettext
from probe.records import Measurement

#: Whatever reading an input can raise besides bad lines: an unreadable file, a gzip
#: stream cut short.
_READ_ERRORS = (OSError, EOFError, gzip.BadGzipFile)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-ooni",
        help="import OONI web_connectivity measurements (.jsonl, .jsonl.gz, .json)",
        description="Load OONI Web Connectivity measurements (OONI's data format: one JSON object a "
        "line, gzipped or not, or one measurement per .json file) into the database, as measurements "
        "of their probe's network.  Lines that cannot be imported are skipped and listed on stderr.",
    )
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="OONI measurements (.jsonl, .jsonl.gz, .json); - reads stdin"
    )
    add_db_option(p)
    p.add_argument(
        "--strict",
        action="store_true",
        help="a line that cannot be imported is an error (exit 2) and nothing is written",
    )
    add_json_option(p)
    p.set_defaults(handler=handle)


def _results(name: str) -> Iterator[tuple[str, Measurement | None]]:
    """Each input item as (``"FILE:LINE"``, measurement), or as (``"FILE:LINE: reason"``,
    None) when it cannot be imported."""
    from probe.formats.ooni import read_ooni_path

    label = "<stdin>" if name == "-" else name
    last = 0
    try:
        for result in read_ooni_path(name):
            last = result.line
            if result.error is not None:
                yield f"{label}:{result.line}: {result.error}", None
            else:
                yield f"{label}:{result.line}", result.measurement
    except _READ_ERRORS as exc:
        yield f"{label}: unreadable after line {last}: {exc}", None


def _check_inputs(files: list[str]) -> None:
    if files.count("-") > 1:
        raise CommandError(_("standard input (-) can be read only once"), status=2)
    for name in files:
        if name != "-" and not Path(name).is_file() and not Path(name).is_dir():
            raise CommandError(_("{path}: no such file").format(path=name), status=2)


def _import_folders(args: argparse.Namespace) -> int:
    """A folder (one synced by ``oonidata``, or our cache) is imported as it is, fast,
    by ``kuzot ooni import``'s importer."""
    from probe.cli._analysis import keep_body
    from probe.ooni_archive.sync import import_directory

    store = open_store(args.db)
    stored = present = 0
    skipped: list[str] = []
    try:
        for name in args.files:
            report = import_directory(Path(name), store, keep_body=keep_body)
            stored += report.stored
            present += report.already_present
            skipped.extend(report.skipped)
            skipped.extend(report.errors)
    finally:
        store.close()
    for where in skipped:
        print(f"skipped {where}", file=sys.stderr)
    _report(args, stored, present, skipped)
    return 1 if skipped and not stored and not present else 0


def handle(args: argparse.Namespace) -> int:
    _check_inputs(args.files)
    if any(name != "-" and Path(name).is_dir() for name in args.files):
        if not all(Path(name).is_dir() for name in args.files) or args.strict:
            raise CommandError(_("give either folders or files (and --strict only with files)"), status=2)
        return _import_folders(args)
    if args.strict:
        return _import_strict(args)
    skipped: list[str] = []

    def usable() -> Iterator[Measurement]:
        for name in args.files:
            for where, measurement in _results(name):
                if measurement is None:
                    skipped.append(where)
                    print(f"skipped {where}", file=sys.stderr)
                else:
                    yield measurement

    stored, present = _save_all(args.db, usable())
    _report(args, stored, present, skipped)
    # Nothing usable at all in what was given is a failure, not an empty success.
    return 1 if skipped and not stored and not present else 0


def _import_strict(args: argparse.Namespace) -> int:
    """Read everything first; write only when every line converted."""
    measurements: list[Measurement] = []
    problems: list[str] = []
    for name in args.files:
        for where, measurement in _results(name):
            if measurement is None:
                problems.append(where)
            else:
                measurements.append(measurement)
    if problems:
        for where in problems:
            print(f"error {where}", file=sys.stderr)
        raise CommandError(
            ngettext(
                "{n} line cannot be imported; nothing was written (without --strict it is skipped)",
                "{n} lines cannot be imported; nothing was written (without --strict they are skipped)",
                len(problems),
            ).format(n=len(problems)),
            status=2,
        )
    stored, present = _save_all(args.db, measurements)
    _report(args, stored, present, [])
    return 0


def _save_all(db: str | None, measurements: Iterable[Measurement]) -> tuple[int, int]:
    """Store in bulk, a transaction per chunk (a kill keeps every chunk committed before
    it); returns (newly stored, already present)."""
    from probe.ooni_archive.importer import save_stream

    store = open_store(db)
    try:
        return save_stream(store, measurements)
    finally:
        store.close()


def _report(args: argparse.Namespace, stored: int, present: int, skipped: list[str]) -> None:
    text = _("{imported} imported, {present} already present, {skipped} skipped").format(
        imported=stored, present=present, skipped=len(skipped)
    )
    text += " " + _("(reasons on stderr)") if skipped else ""
    data = {"imported": stored, "already_present": present, "skipped": len(skipped), "skipped_lines": skipped}
    emit(args, data, text)

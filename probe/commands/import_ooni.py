"""``kuzot import-ooni``: load OONI Web Connectivity measurements into the database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from probe.commands import CommandError
from probe.commands._common import add_db_option, open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("import-ooni", help="import OONI web_connectivity measurements (.jsonl[.gz])")
    p.add_argument("files", nargs="+", type=Path)
    add_db_option(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from probe.formats.ooni import OoniFormatError, iter_ooni_file

    store = open_store(args.db)
    stored = duplicates = bad = 0
    try:
        for path in args.files:
            if not path.is_file():
                raise CommandError(f"{path}: no such file", status=2)
            for line, item in iter_ooni_file(path):
                if isinstance(item, OoniFormatError):
                    bad += 1
                    print(f"{path}:{line}: skipped: {item}", file=sys.stderr)
                    continue
                if store.save_measurement(item, source="ooni"):
                    stored += 1
                else:
                    duplicates += 1
    finally:
        store.close()
    print(f"{stored} imported, {duplicates} already present, {bad} skipped")
    return 1 if bad and not stored and not duplicates else 0

"""Options several subcommands share, parsed the same way everywhere."""

from __future__ import annotations

import argparse

from probe.commands import CommandError
from probe.store import Store, StoreError


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="database URL (default: sqlite in your data directory; e.g. sqlite:///kuzot.db, "
        "postgresql+psycopg://user@host/kuzot)",
    )


def add_format_option(parser: argparse.ArgumentParser, default: str = "table") -> None:
    parser.add_argument(
        "--format", choices=["json", "jsonl", "csv", "table"], default=default, help="output format"
    )


def open_store(url: str | None, *, migrate: bool = True) -> Store:
    try:
        return Store.open(url, migrate=migrate)
    except StoreError as exc:
        raise CommandError(str(exc)) from exc


def parse_asn(text: str) -> int:
    cleaned = text.strip().upper().removeprefix("AS")
    if not cleaned.isdigit():
        raise argparse.ArgumentTypeError(f"not an AS number: {text!r} (use 12345 or AS12345)")
    return int(cleaned)

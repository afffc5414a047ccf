"""Options several subcommands share, parsed the same way everywhere, and the CLI's error."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from probe.errors import KuzotError
from probe.i18n import gettext as _

if TYPE_CHECKING:  # imported when a store is opened: SQLAlchemy is 0.3 s of every command's start
    from probe.store import Store


class CommandError(KuzotError):
    """A command line the user must change; the exit status is given where it is raised."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.exit_status = status

    @property
    def status(self) -> int:
        """The old name of :attr:`exit_status`."""
        return self.exit_status


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
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object for scripts")


def emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    """Say ``text`` to a person, or ``data`` to a script when ``--json`` was given: every
    command answers both ways (scripts must not parse sentences)."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    elif text:
        print(text)


def open_store(url: str | None, *, migrate: bool = True, must_exist: bool = False) -> Store:
    """The store for a command; reading commands pass ``must_exist`` so that a wrong
    ``--db`` is an error, not a new empty database."""
    from probe.store import Store

    return Store.open(url, migrate=migrate, must_exist=must_exist)


def parse_asn(text: str) -> int:
    cleaned = text.strip().upper().removeprefix("AS")
    if not cleaned.isdigit():
        raise argparse.ArgumentTypeError(
            _("not an AS number: {value} (use 12345 or AS12345)").format(value=repr(text))
        )
    return int(cleaned)


def serve_or_fail(app: Any, config: Any, started: Any, listen: str) -> None:
    """Serve ``app`` until a signal, with a listening failure as one line, not a traceback.

    Why here: the collector, the control helper and the Explorer are started the same
    way, and an address already in use (or a port the user may not bind) is a mistake in
    the command line that a person must read at once; trio reports it wrapped in one
    exception group per nursery, which :func:`probe.errors.first_error` unwraps.
    """
    import trio

    from probe.errors import first_error
    from probe.server.asgi import serve_until_signal

    try:
        trio.run(serve_until_signal, app, config, started)
    except BaseExceptionGroup as group:
        failed = group.subgroup(OSError)
        if failed is None:
            raise
        raise CommandError(
            _("cannot listen on {address}: {error}").format(address=listen, error=first_error(failed)),
            status=1,
        ) from None

"""``kuzot upload``: send every measurement not yet acknowledged to a collector."""

from __future__ import annotations

import argparse
import json
import sys

from probe.cli._common import CommandError, add_db_option
from probe.cli._output import describe_upload
from probe.i18n import gettext as _
from probe.upload.pacing import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ITEMS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("upload", help="send measurements not yet uploaded to a collector")
    p.add_argument(
        "--to",
        metavar="URL",
        help="the collector, e.g. https://collector.example.org (default: config collector_url)",
    )
    add_db_option(p)
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_ITEMS,
        metavar="N",
        help=f"measurements per request (default {DEFAULT_BATCH_ITEMS}; the collector's limit wins)",
    )
    p.add_argument(
        "--batch-bytes",
        type=int,
        default=DEFAULT_BATCH_BYTES,
        metavar="N",
        help=f"bytes per request (default {DEFAULT_BATCH_BYTES}; the collector's limit wins)",
    )
    p.add_argument(
        "--retries", type=int, default=6, metavar="N", help="retries of a failed request (default 6)"
    )
    p.add_argument(
        "--backoff",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="first retry delay; it doubles each time, up to 60 s (default 1)",
    )
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--quiet", action="store_true", help="print nothing unless something went wrong")
    p.set_defaults(handler=handle)


def collector_from_config(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    from probe.volunteer.config import load_config

    return load_config().get("collector_url")


def handle(args: argparse.Namespace) -> int:
    collector = collector_from_config(args.to)
    if not collector:
        raise CommandError(
            _("no collector: pass --to URL or set one with `kuzot config set collector_url URL`"), status=2
        )
    if args.batch_size < 1:
        raise CommandError(_("--batch-size must be at least 1"), status=2)
    log = None if args.quiet or args.json else (lambda message: print(f"upload: {message}", file=sys.stderr))
    from probe.upload import upload_database  # the store and SQLAlchemy: only when uploading

    result = upload_database(
        args.db,
        collector,
        log=log,
        batch_items=args.batch_size,
        batch_bytes=args.batch_bytes,
        max_retries=args.retries,
        backoff=args.backoff,
    )
    failed = bool(result.error or result.rejected)
    if args.json:
        print(json.dumps({**result.to_dict(), "ok": not failed}, indent=2))
    elif not args.quiet or failed:
        print(describe_upload(result), file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0

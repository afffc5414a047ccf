"""``kuzot serve``: run the collector that receives volunteers' measurements."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from probe.cli._common import CommandError, open_store, serve_or_fail
from probe.cli._control import add_control_options, control_settings
from probe.i18n import gettext as _

if TYPE_CHECKING:
    import trio


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the collector (receives uploads from probes)")
    p.add_argument(
        "--db",
        metavar="URL",
        required=True,
        help="the collector's database, e.g. postgresql+psycopg://kuzot@/kuzot or sqlite:///collector.db "
        "(required: never the probe's own database by accident)",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="address to serve plain HTTP on, normally behind a TLS reverse proxy (default 127.0.0.1:8080; "
        "port 0 picks a free one)",
    )
    _add_limit_options(p)
    _add_mount_options(p)
    add_control_options(p)
    p.set_defaults(handler=handle)


def _add_limit_options(p: argparse.ArgumentParser) -> None:
    """What the collector accepts and how much work it takes on, in the order ``--help`` shows.

    Kept in one place (rather than spread through ``register``) because the defaults
    come from the collector app, imported only when the parser is built."""
    from probe.server.collector.app import (
        DEFAULT_BODY_TIMEOUT,
        DEFAULT_MAX_BYTES,
        DEFAULT_MAX_ITEMS,
        DEFAULT_RATE_LIMIT,
    )

    _add_batch_size_options(p, max_items=DEFAULT_MAX_ITEMS, max_bytes=DEFAULT_MAX_BYTES)
    _add_asn_options(p)
    _add_load_options(p, body_timeout=DEFAULT_BODY_TIMEOUT, rate_limit=DEFAULT_RATE_LIMIT)


def _add_batch_size_options(p: argparse.ArgumentParser, *, max_items: int, max_bytes: int) -> None:
    """How big one upload may be: the collector refuses larger batches before parsing them."""
    p.add_argument(
        "--max-batch-items",
        type=int,
        default=max_items,
        metavar="N",
        help=f"most measurements per request (default {max_items})",
    )
    p.add_argument(
        "--max-batch-bytes",
        type=int,
        default=max_bytes,
        metavar="N",
        help=f"largest request body in bytes (default {max_bytes})",
    )


def _add_asn_options(p: argparse.ArgumentParser) -> None:
    """Where an uploader's AS number comes from when its records do not carry one."""
    p.add_argument(
        "--asn-db",
        type=Path,
        metavar="FILE.mmdb",
        help="ASN database (GeoLite2-ASN format): give records without probe_asn the AS number of the "
        "uploading connection; the address itself is never stored (needs the 'asn' extra)",
    )
    p.add_argument(
        "--asn-header",
        metavar="NAME",
        help="with --asn-db behind a reverse proxy: the header holding the client address (e.g. X-Real-IP)",
    )


def _add_load_options(p: argparse.ArgumentParser, *, body_timeout: float, rate_limit: int) -> None:
    """How much work the collector takes on at once and how much one client may ask of it."""
    p.add_argument(
        "--write-concurrency",
        type=int,
        metavar="N",
        help="batches written at once (default 1 for SQLite, 8 for PostgreSQL)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=body_timeout,
        metavar="SECONDS",
        help=f"seconds a request body may take, plus 1 s per 8 KiB of it; slower clients get 408 "
        f"(default {body_timeout:g})",
    )
    p.add_argument(
        "--rate-limit",
        type=int,
        default=rate_limit,
        metavar="PER_MINUTE",
        help=f"batches one probe may send per minute, in bursts of a tenth of that; beyond it 429 with "
        f"Retry-After (default {rate_limit}; 0: no limit)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes that parse and check batches and their signatures (default: the number of CPUs, "
        "at most 4; 0: in this process)",
    )


def _add_mount_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--with-control",
        action="store_true",
        help="also serve the control helper at /api/v1/control (only where the network is uncensored)",
    )
    p.add_argument(
        "--with-web",
        action="store_true",
        help="also serve the Explorer (kuzot web's pages, API and feeds, read-only, public mode) at /",
    )
    p.add_argument(
        "--orders",
        type=Path,
        default=None,
        help="with --with-web: the orders file the Explorer correlates with "
        "(default: the one shipped with Kuzot)",
    )


def _check(args: argparse.Namespace) -> None:
    if args.max_batch_items < 1 or args.max_batch_bytes < 1024:
        raise CommandError(
            _("--max-batch-items must be at least 1 and --max-batch-bytes at least 1024"), status=2
        )
    if args.body_timeout <= 0 or args.rate_limit < 0 or (args.workers is not None and args.workers < 0):
        raise CommandError(
            _("--body-timeout must be positive, --rate-limit and --workers zero or more"), status=2
        )
    if args.asn_db is not None and not args.asn_db.is_file():
        raise CommandError(_("{path}: no such file").format(path=f"--asn-db {args.asn_db}"), status=2)


def _control_config(args: argparse.Namespace):  # -> ControlConfig | None
    """The control helper to mount (``--with-control``), or None."""
    from probe.server.control.app import ControlConfig

    if not args.with_control:
        return None
    geolookup = None
    if args.asn_db is not None:
        # With both, probes asking this server for control also learn their network
        # (GET /api/v1/geolookup: AS number, country and name, never the address).
        from probe.server.control.geolookup import GeoLookup

        try:
            geolookup = GeoLookup(args.asn_db, header=args.asn_header)
        except (RuntimeError, OSError, ValueError) as exc:
            raise CommandError(f"--asn-db {args.asn_db}: {exc}", status=2) from exc
    return ControlConfig(
        settings=control_settings(args),
        concurrency=args.concurrency,
        allow_private=args.allow_private_targets,
        geolookup=geolookup,
    )


def _collector_app(args: argparse.Namespace, store, control):  # -> Starlette
    from probe.server.collector.app import CollectorConfig, create_collector_app

    try:
        return create_collector_app(
            store,
            CollectorConfig(
                max_items=args.max_batch_items,
                max_bytes=args.max_batch_bytes,
                control=control,
                asn_db=args.asn_db,
                asn_header=args.asn_header,
                write_concurrency=args.write_concurrency,
                body_timeout=args.body_timeout,
                rate_limit=args.rate_limit,
                workers=args.workers,
            ),
        )
    except (RuntimeError, OSError, ValueError) as exc:  # maxminddb's InvalidDatabaseError is a RuntimeError
        store.close()
        raise CommandError(f"--asn-db {args.asn_db}: {exc}", status=2) from exc


def handle(args: argparse.Namespace) -> int:
    from probe.server.asgi import server_config

    _check(args)
    control = _control_config(args)
    store = open_store(args.db)
    app = _collector_app(args, store, control)
    web_source = None
    if args.with_web:
        web_source = _mount_web(app, args)
    config = server_config(args.listen)

    async def started(binds: list[str], _background: trio.Nursery, _stop: trio.Event) -> None:
        print(_("collector listening on {url}").format(url=f"{binds[0]}/api/v1/"), flush=True)
        if control is not None:
            print(_("control helper on {url}").format(url=f"{binds[0]}/api/v1/control"), flush=True)
        if web_source is not None:
            print(_("explorer on {url}").format(url=f"{binds[0]}/"), flush=True)

    try:
        serve_or_fail(app, config, started, args.listen)
    finally:
        store.close()
        if web_source is not None:
            web_source.close()
    print(_("collector stopped"), file=sys.stderr)
    return 0


def _mount_web(app, args: argparse.Namespace):  # -> probe.web.source.Source
    """Mount the Explorer under the collector's routes (which match first), over its own
    read-only connection to the same database."""
    from starlette.routing import Mount

    from probe.cli._analysis import load_orders_or_fail
    from probe.web.app import open_explorer
    from probe.web.context import WebConfig

    orders = load_orders_or_fail(args.orders)
    web_app, source = open_explorer(args.db, orders, WebConfig(mode="public", refresh_seconds=15.0))
    app.router.routes.append(Mount("/", app=web_app))
    return source

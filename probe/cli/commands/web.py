"""``kuzot web``: the Explorer (pages, JSON API, Atom feeds) over an existing database, read-only."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from typing import TYPE_CHECKING

from probe.cli._analysis import add_orders_option, load_orders_or_fail
from probe.cli._common import CommandError, serve_or_fail
from probe.i18n import gettext as _

if TYPE_CHECKING:
    import trio


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "web", help="browse measurements, episodes and orders in a web browser (read-only)"
    )
    p.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="database to show, opened read-only (default: your probe's SQLite; e.g. "
        "postgresql+psycopg://kuzot@/kuzot on a collector)",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:8090",
        metavar="HOST:PORT",
        help="address to serve plain HTTP on (default 127.0.0.1:8090; port 0 picks a free one)",
    )
    p.add_argument(
        "--mode",
        choices=["local", "public"],
        default=None,
        help="local shows your probe's own page (runs, consent, upload queue); public never does "
        "(default: local on a loopback address, public otherwise)",
    )
    p.add_argument(
        "--refresh",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how often to take in newly stored measurements (default 15)",
    )
    p.add_argument(
        "--webhook",
        metavar="URL",
        help="POST each new confirmed episode as JSON to this URL (episodes found at start-up are not sent)",
    )
    add_orders_option(p)
    p.add_argument("--json", action="store_true", help="print where it listens as one JSON line")
    p.set_defaults(handler=handle)


def _loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def web_config(mode: str, refresh: float):  # -> WebConfig
    from probe.web.context import WebConfig

    return WebConfig(mode=mode, refresh_seconds=max(1.0, refresh))


def open_or_fail(db_url: str, orders, config):  # -> (app, Source)
    from probe.web.app import open_explorer

    return open_explorer(db_url, orders, config)


def handle(args: argparse.Namespace) -> int:
    from probe.server.asgi import server_config
    from probe.volunteer.paths import default_db_url
    from probe.web.webhook import refresh_and_notify

    if ":" not in args.listen:
        raise CommandError(_("--listen takes HOST:PORT, e.g. 127.0.0.1:8090"), status=2)
    orders = load_orders_or_fail(args.orders)
    mode = args.mode or ("local" if _loopback(args.listen) else "public")
    if not args.json:
        print(_("judging the stored measurements..."), file=sys.stderr, flush=True)
    app, source = open_or_fail(args.db or default_db_url(), orders, web_config(mode, args.refresh))
    config = server_config(args.listen)

    async def started(binds: list[str], background: trio.Nursery, _stop: trio.Event) -> None:
        url = binds[0].rstrip("/")
        # Refreshes (and webhooks) until the server is asked to stop.
        background.start_soon(
            partial(
                refresh_and_notify,
                app.context.cache,
                max(1.0, args.refresh),
                webhook=args.webhook,
                base_url=url,
            )
        )
        app.context.background = True
        if args.json:
            print(json.dumps({"url": f"{url}/", "mode": mode, "api": f"{url}/api/v1/"}), flush=True)
        else:
            print(
                _("Kuzot Explorer on {url} ({mode} mode, read-only)").format(url=f"{url}/", mode=mode),
                flush=True,
            )

    try:
        serve_or_fail(app, config, started, args.listen)
    finally:
        source.close()
    print(_("explorer stopped"), file=sys.stderr)
    return 0

"""``kuzot web``: the Explorer (pages, JSON API, Atom feeds) over an existing database, read-only."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from functools import partial

import trio

from probe.commands import CommandError
from probe.commands.orders import add_orders_option, load_orders_or_fail


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
    from hypercorn.config import Config
    from hypercorn.trio import serve

    from probe.store.database import default_db_url
    from probe.web.webhook import refresh_and_notify

    if ":" not in args.listen:
        raise CommandError("--listen takes HOST:PORT, e.g. 127.0.0.1:8090", status=2)
    orders = load_orders_or_fail(args.orders)
    mode = args.mode or ("local" if _loopback(args.listen) else "public")
    if not args.json:
        print("judging the stored measurements...", file=sys.stderr, flush=True)
    app, source = open_or_fail(args.db or default_db_url(), orders, web_config(mode, args.refresh))
    config = Config()
    config.bind = [args.listen]
    config.accesslog = None  # an access log would record every reader's address
    config.errorlog = "-"
    config.include_server_header = False

    async def main() -> None:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:

            async def on_signal() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        stop.set()
                        return

            nursery.start_soon(on_signal)
            binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
            url = binds[0].rstrip("/")

            async def background() -> None:
                # Refreshes (and webhooks) until the server is asked to stop.
                async with trio.open_nursery() as inner:
                    inner.start_soon(
                        partial(
                            refresh_and_notify,
                            app.context.cache,
                            max(1.0, args.refresh),
                            webhook=args.webhook,
                            base_url=url,
                        )
                    )
                    await stop.wait()
                    inner.cancel_scope.cancel()

            app.context.background = True
            nursery.start_soon(background)
            if args.json:
                print(json.dumps({"url": f"{url}/", "mode": mode, "api": f"{url}/api/v1/"}), flush=True)
            else:
                print(f"Kuzot Explorer on {url}/ ({mode} mode, read-only)", flush=True)

    try:
        trio.run(main)
    except BaseExceptionGroup as group:
        failed = group.subgroup(OSError)
        if failed is None:
            raise
        first = failed.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise CommandError(f"cannot listen on {args.listen}: {first}", status=1) from None
    finally:
        source.close()
    print("explorer stopped", file=sys.stderr)
    return 0

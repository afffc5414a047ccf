"""``kuzot control serve``: run the control helper on an uncensored network."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from probe.cli._common import CommandError, serve_or_fail
from probe.cli._control import add_control_options, control_settings
from probe.i18n import gettext as _

if TYPE_CHECKING:
    import trio


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("control", help="run the control helper (an uncensored vantage)")
    sub = p.add_subparsers(dest="control_command", metavar="ACTION", required=True)
    serve = sub.add_parser("serve", help="serve POST /api/v1/control over HTTP")
    serve.add_argument(
        "--listen",
        default="127.0.0.1:8787",
        metavar="HOST:PORT",
        help="address and port to serve on (default 127.0.0.1:8787; 0.0.0.0:8787 for everyone)",
    )
    add_control_options(serve)
    serve.add_argument(
        "--asn-db",
        type=Path,
        metavar="FILE",
        help="ASN database (GeoLite2-ASN format): answer GET /api/v1/geolookup with the asking probe's AS "
        "number, country and network name only; its address is never stored (needs the 'asn' extra)",
    )
    serve.add_argument("--country-db", type=Path, metavar="FILE", help="with --asn-db: a country database")
    serve.add_argument(
        "--asn-header", metavar="NAME", help="with --asn-db behind a reverse proxy: the client address header"
    )
    serve.set_defaults(handler=handle_serve)


def handle_serve(args: argparse.Namespace) -> int:
    from probe.server.asgi import server_config
    from probe.server.control.app import ControlConfig, create_control_app

    geolookup = None
    if args.asn_db is not None:
        from probe.server.control.geolookup import GeoLookup

        for option, path in (("--asn-db", args.asn_db), ("--country-db", args.country_db)):
            if path is not None and not path.is_file():
                raise CommandError(_("{path}: no such file").format(path=f"{option} {path}"), status=2)
        try:
            geolookup = GeoLookup(args.asn_db, args.country_db, header=args.asn_header)
        except (RuntimeError, OSError, ValueError) as exc:  # maxminddb's InvalidDatabaseError: RuntimeError
            raise CommandError(f"--asn-db {args.asn_db}: {exc}", status=2) from exc
    app = create_control_app(
        ControlConfig(
            settings=control_settings(args),
            concurrency=args.concurrency,
            allow_private=args.allow_private_targets,
            geolookup=geolookup,
        )
    )

    async def started(binds: list[str], _background: trio.Nursery, _stop: trio.Event) -> None:
        print(_("control helper listening on {url}").format(url=f"{binds[0]}/api/v1/control"), flush=True)

    serve_or_fail(app, server_config(args.listen), started, args.listen)
    return 0

"""``kuzot control serve``: run the control helper on an uncensored network."""

from __future__ import annotations

import argparse
from pathlib import Path

import trio

from probe.cli.commands import CommandError
from probe.settings import ProbeSettings, Timeouts
from probe.steps import dns


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


def add_control_options(parser: argparse.ArgumentParser) -> None:
    """How the helper measures; shared with ``kuzot serve --with-control``."""
    parser.add_argument(
        "--resolver",
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="also ask this DNS resolver directly over UDP (repeatable)",
    )
    parser.add_argument(
        "--no-system-resolver", action="store_true", help="skip getaddrinfo (the system's resolver)"
    )
    parser.add_argument(
        "--ca-bundle", type=Path, metavar="FILE", help="trust this CA in addition to the system store"
    )
    parser.add_argument(
        "--source-address", metavar="ADDR", help="send the helper's measurements from this local address"
    )
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="connect timeout (others scale)")
    parser.add_argument("--concurrency", type=int, default=32, help="measurements at once (default 32)")
    parser.add_argument(
        "--allow-private-targets",
        action="store_true",
        help="measure URLs that resolve to private or loopback addresses (labs only)",
    )


def control_settings(args: argparse.Namespace) -> ProbeSettings:
    try:
        resolvers = tuple(dns.parse_resolver(r) for r in args.resolver)
    except ValueError as exc:
        raise CommandError(f"--resolver: {exc}", status=2) from exc
    if args.ca_bundle is not None and not args.ca_bundle.is_file():
        raise CommandError(f"--ca-bundle {args.ca_bundle}: no such file", status=2)
    return ProbeSettings(
        resolvers=resolvers or tuple(dns.system_nameservers()),
        system_resolver=not args.no_system_resolver,
        ca_bundle=args.ca_bundle,
        source_address=args.source_address,
        timeouts=Timeouts.scaled(args.timeout) if args.timeout else Timeouts(),
        comparison_sni=None,
    )


def handle_serve(args: argparse.Namespace) -> int:
    from probe.server.asgi import serve_until_signal, server_config
    from probe.server.control.app import ControlConfig, create_control_app

    geolookup = None
    if args.asn_db is not None:
        from probe.server.control.geolookup import GeoLookup

        for option, path in (("--asn-db", args.asn_db), ("--country-db", args.country_db)):
            if path is not None and not path.is_file():
                raise CommandError(f"{option} {path}: no such file", status=2)
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
        print(f"control helper listening on {binds[0]}/api/v1/control", flush=True)

    trio.run(serve_until_signal, app, server_config(args.listen), started)
    return 0

"""The control helper's options: shared by ``kuzot control serve`` and ``kuzot serve --with-control``."""

from __future__ import annotations

import argparse
from pathlib import Path

from probe.cli._common import CommandError
from probe.settings import ProbeSettings, Timeouts


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
    from probe.steps import dns  # dnspython: for the helper's own measuring, not at every start

    try:
        resolvers = tuple(dns.parse_resolver(r) for r in args.resolver)
    except ValueError as exc:
        raise CommandError(f"--resolver: {exc}", status=2) from exc
    from probe.volunteer.trust import check_ca_bundle

    check_ca_bundle(args.ca_bundle)  # refused at start, not on the helper's first request
    return ProbeSettings(
        resolvers=resolvers or tuple(dns.system_nameservers()),
        system_resolver=not args.no_system_resolver,
        ca_bundle=args.ca_bundle,
        source_address=args.source_address,
        timeouts=Timeouts.scaled(args.timeout) if args.timeout else Timeouts(),
        comparison_sni=None,
    )

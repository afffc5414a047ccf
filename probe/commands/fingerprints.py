"""``kuzot fingerprints``: fetch OONI's blockpage fingerprints, or list what is loaded."""

from __future__ import annotations

import argparse

from probe.commands import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fingerprints", help="update or list blockpage fingerprints")
    sub = p.add_subparsers(dest="fingerprints_command", metavar="ACTION", required=True)
    up = sub.add_parser("update", help="download OONI's blocking-fingerprints into your data directory")
    up.add_argument("--base-url", default=None, help=argparse.SUPPRESS)
    up.set_defaults(handler=handle_update)
    ls = sub.add_parser("list", help="count the fingerprints the matcher uses, by source file")
    ls.set_defaults(handler=handle_list)


def handle_update(args: argparse.Namespace) -> int:
    import httpx

    from analysis.fingerprints import OONI_BASE_URL, FingerprintError, download_fingerprints

    try:
        paths = download_fingerprints(base_url=args.base_url or OONI_BASE_URL)
    except (httpx.HTTPError, FingerprintError, OSError) as exc:
        raise CommandError(f"could not update fingerprints (the old ones are kept): {exc}") from exc
    for path in paths:
        print(path)
    return 0


def handle_list(_args: argparse.Namespace) -> int:
    from analysis.fingerprints import FingerprintError, default_fingerprint_paths, load_fingerprints

    try:
        for path in default_fingerprint_paths():
            print(f"{path}: {len(load_fingerprints([path]))} fingerprints")
    except FingerprintError as exc:
        raise CommandError(str(exc), status=2) from exc
    return 0

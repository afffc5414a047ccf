"""``kuzot fingerprints``: fetch OONI's blockpage fingerprints, or list what is loaded."""

from __future__ import annotations

import argparse

from probe.cli._common import CommandError, add_json_option, emit


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fingerprints", help="update or list blockpage fingerprints")
    sub = p.add_subparsers(dest="fingerprints_command", metavar="ACTION", required=True)
    up = sub.add_parser("update", help="download OONI's blocking-fingerprints into your data directory")
    up.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help="download the files from this mirror (default: OONI's blocking-fingerprints repository)",
    )
    add_json_option(up)
    up.set_defaults(handler=handle_update)
    ls = sub.add_parser("list", help="count the fingerprints the matcher uses, by source file")
    add_json_option(ls)
    ls.set_defaults(handler=handle_list)


def handle_update(args: argparse.Namespace) -> int:
    import httpx

    from analysis.fingerprints import OONI_BASE_URL, FingerprintError, download_fingerprints

    try:
        paths = download_fingerprints(base_url=args.base_url or OONI_BASE_URL)
    except (httpx.HTTPError, FingerprintError, OSError) as exc:
        raise CommandError(f"could not update fingerprints (the old ones are kept): {exc}") from exc
    emit(args, {"files": [str(p) for p in paths]}, "\n".join(str(p) for p in paths))
    return 0


def handle_list(args: argparse.Namespace) -> int:
    from analysis.fingerprints import default_fingerprint_paths, load_fingerprints

    sources = [
        {"path": str(path), "fingerprints": len(load_fingerprints([path]))}
        for path in default_fingerprint_paths()
    ]
    emit(
        args,
        {"sources": sources},
        "\n".join(f"{s['path']}: {s['fingerprints']} fingerprints" for s in sources),
    )
    return 0

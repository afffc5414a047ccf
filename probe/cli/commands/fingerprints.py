"""``kuzot fingerprints``: fetch OONI's blockpage fingerprints, or list what is loaded."""

from __future__ import annotations

import argparse

from probe.cli._common import CommandError, add_json_option, emit
from probe.i18n import gettext as _
from probe.i18n import ngettext


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
        raise CommandError(
            _("could not update fingerprints (the old ones are kept): {error}").format(error=exc)
        ) from exc
    emit(args, {"files": [str(p) for p in paths]}, "\n".join(str(p) for p in paths))
    return 0


def handle_list(args: argparse.Namespace) -> int:
    from analysis.fingerprints import default_fingerprint_paths, load_fingerprints

    counts = [(str(path), len(load_fingerprints([path]))) for path in default_fingerprint_paths()]
    sources = [{"path": path, "fingerprints": n} for path, n in counts]
    emit(
        args,
        {"sources": sources},
        "\n".join(
            ngettext("{path}: {n} fingerprint", "{path}: {n} fingerprints", n).format(path=path, n=n)
            for path, n in counts
        ),
    )
    return 0

"""``kuzot report``: a citable, verifiable evidence folder for one site."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from probe.cli._analysis import add_filters, add_orders_option, database_url, load_orders_or_fail
from probe.cli._common import CommandError, add_db_option, open_store
from probe.i18n import gettext as _


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="write an evidence report for one site (HTML, citations, CSV, charts, signed evidence)"
    )
    add_db_option(p)
    add_filters(p)
    add_orders_option(p)
    p.add_argument("--out", type=Path, required=True, help="folder to write (new or empty)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier Kuzot report in --out (nothing else is removed)",
    )
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(handler=handle)


def _prepare(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise CommandError(_("{out} exists and is not a folder").format(out=out), status=2)
    if not any(out.iterdir()):
        return
    earlier = (out / "evidence" / "MANIFEST.sha256").is_file() and (out / "index.html").is_file()
    if not overwrite:
        raise CommandError(
            _("{out} is not empty: choose a new folder (or --overwrite an earlier report)").format(out=out),
            status=2,
        )
    if not earlier:
        message = _("{out} does not hold an earlier Kuzot report; refusing to overwrite it").format(out=out)
        raise CommandError(message, status=2)
    # The earlier report is replaced only once the new one is complete (build_report).


def handle(args: argparse.Namespace) -> int:
    from analysis.report import build_report

    if not args.domain:
        raise CommandError(_("a report is about one site: add --domain DOMAIN"), status=2)
    orders = load_orders_or_fail(args.orders)
    url = database_url(args)
    open_store(url, must_exist=True).close()  # a clear error for a bad URL, and the schema in place
    _prepare(args.out, args.overwrite)
    report = build_report(
        url,
        args.domain,
        args.out,
        orders=orders,
        since=args.since,
        until=args.until,
        replace_existing=args.overwrite,
    )
    if args.json:
        import json

        print(
            json.dumps(
                {
                    "out": str(args.out),
                    "domain": report.domain,
                    "measurements": len(report.verdicts),
                    "evidence": len(report.evidence_ids),
                    "episodes": len(report.episodes),
                    "networks": [n.asn for n in report.networks],
                    "simulated": report.simulated,
                    "index": str(args.out / "index.html"),
                    "citation": report.citation(),
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        index = f"{args.out}/index.html"
        print(
            _("Report on {domain} written to {path}").format(domain=report.domain, path=index),
            file=sys.stderr,
        )
        print(report.citation(), end="")
    return 0

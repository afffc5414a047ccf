"""``kuzot chart``: a timeline per domain (one row per network) and a blocked-share heatmap."""

from __future__ import annotations

import argparse
from pathlib import Path

from probe.cli._analysis import add_filters, add_orders_option, load_episodes, load_orders_or_fail
from probe.cli._common import CommandError, add_db_option, add_json_option, emit
from probe.i18n import gettext as _
from probe.i18n import language


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "chart", help="draw a domain's timeline or a blocked-share heatmap (PNG and SVG)"
    )
    p.add_argument(
        "kind", choices=["timeline", "heatmap"], help="timeline: episodes per network; heatmap: by day"
    )
    add_db_option(p)
    add_filters(p)
    add_orders_option(p)
    p.add_argument("--out", type=Path, required=True, help="output path; .png and .svg are written beside it")
    p.add_argument(
        "--image-format",
        dest="formats",
        action="append",
        choices=["png", "svg", "pdf"],
        help="only these formats (repeatable; default png and svg)",
    )
    add_json_option(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from analysis import charts

    if args.kind == "timeline" and not args.domain:
        raise CommandError(_("a timeline is drawn for one site: add --domain DOMAIN"), status=2)
    verdicts, episodes = load_episodes(args)
    if verdicts.empty:
        what = args.domain or _("any site")
        raise CommandError(
            _("no measurements of {what} in the database (check --db and the filters)").format(what=what),
            status=1,
        )
    if args.kind == "timeline":
        orders = load_orders_or_fail(args.orders)
        figure = charts.timeline(args.domain, episodes, verdicts, orders, lang=language())
    else:
        figure = charts.heatmap(verdicts, args.domain, lang=language())
    paths = charts.save(figure, args.out, formats=args.formats or ("png", "svg"))
    emit(args, {"kind": args.kind, "files": [str(p) for p in paths]}, "\n".join(str(p) for p in paths))
    return 0

"""``kuzot verdicts``: one verdict per stored measurement, with the rule that made it."""

from __future__ import annotations

import argparse

from probe.cli._analysis import add_filters, load_verdicts
from probe.cli._common import add_db_option, add_format_option
from probe.cli._output import write_rows

COLUMNS = [
    "measurement_id",
    "url",
    "domain",
    "probe_asn",
    "measured_at",
    "status",
    "blocking",
    "confirmed",
    "reason",
    "rule_id",
    "rules_version",
    "observation_ids",
]
TABLE_COLUMNS = ["measured_at", "probe_asn", "domain", "status", "blocking", "confirmed", "reason"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("verdicts", help="judge stored measurements: accessible, blocked, down...")
    add_db_option(p)
    add_format_option(p)
    add_filters(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    frame = load_verdicts(args)
    rows = frame.to_dict(orient="records")
    columns = TABLE_COLUMNS if args.format == "table" else COLUMNS
    write_rows(rows, args.format, columns=columns)
    return 0

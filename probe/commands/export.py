"""``kuzot export``: write stored measurements in OONI's data format."""

from __future__ import annotations

import argparse
from pathlib import Path

from probe.commands._common import add_db_option, open_store, parse_asn


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export measurements (OONI web_connectivity JSONL)")
    p.add_argument("file", type=Path)
    p.add_argument("--format", choices=["ooni"], default="ooni")
    add_db_option(p)
    p.add_argument("--domain")
    p.add_argument("--asn", type=parse_asn)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from probe.formats.ooni import write_ooni_jsonl

    store = open_store(args.db)
    try:
        measurements = list(store.iter_measurements(domain=args.domain, probe_asn=args.asn, role="target"))
    finally:
        store.close()
    write_ooni_jsonl(measurements, args.file)
    print(f"{len(measurements)} measurements written to {args.file}")
    return 0

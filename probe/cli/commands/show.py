"""``kuzot show``: print stored measurements."""

from __future__ import annotations

import argparse
from typing import Any

from probe.cli._common import add_db_option, add_format_option, open_store, parse_asn
from probe.cli._output import step_summary, write_rows
from probe.records import Measurement, format_time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("show", help="print stored measurements")
    add_db_option(p)
    add_format_option(p)
    p.add_argument("--domain", help="only this domain")
    p.add_argument("--asn", type=parse_asn, help="only this probe network")
    p.add_argument("--run", dest="run_id", help="only this run")
    p.add_argument("--canaries", action="store_true", help="include canary measurements")
    p.set_defaults(handler=handle)


def measurement_json(m: Measurement) -> dict[str, Any]:
    """One measurement as printed by ``show --format json``: the archival record, plus a
    per-step ``failures`` summary (a failure string, or null when the step succeeded
    or was not reached)."""
    data = m.to_dict()
    summary = step_summary(m)
    data["started_at"] = format_time(m.started_at)
    failures: dict[str, str | None] = {}
    for step in ("dns", "tcp", "tls"):
        failures[step] = None if summary[step] in ("ok", "-") else summary[step]
    failures["http"] = str(m.http[-1].failure) if m.http and m.http[-1].failure else None
    data["failures"] = failures
    return data


def handle(args: argparse.Namespace) -> int:
    store = open_store(args.db, must_exist=True)
    try:
        role = None if args.canaries else "target"
        measurements = store.iter_measurements(
            domain=args.domain, probe_asn=args.asn, run_id=args.run_id, role=role
        )
        if args.format in ("json", "jsonl"):
            write_rows((measurement_json(m) for m in measurements), args.format)
        else:
            rows = []
            for m in measurements:
                row = {"id": m.id, "started_at": format_time(m.started_at), "asn": m.probe_asn}
                row.update(step_summary(m))
                rows.append(row)
            write_rows(
                rows, args.format, columns=["id", "started_at", "asn", "url", "dns", "tcp", "tls", "http"]
            )
    finally:
        store.close()
    return 0

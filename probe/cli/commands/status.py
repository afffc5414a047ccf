"""``kuzot status``: what this probe did lately, what waits to be uploaded, what comes next."""

from __future__ import annotations

import argparse
import json

from probe.cli._common import add_db_option, open_store
from probe.cli._output import write_rows
from probe.i18n import gettext as _
from probe.records import format_time
from probe.volunteer.schedule import next_scheduled_run


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("status", help="recent runs, the upload queue and the next scheduled run")
    add_db_option(p)
    p.add_argument("--runs", type=int, default=5, help="how many recent runs to show (default 5)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from probe.store.database import default_db_url, missing_sqlite_file

    if args.db is None and missing_sqlite_file(default_db_url()) is not None:
        # Nothing measured yet on this machine: say so without creating a database.
        runs, bytes_by_run, counts, queued = [], {}, {}, 0
    else:
        runs, bytes_by_run, counts, queued = _read(open_store(args.db, must_exist=True), args.runs)
    rows = _rows(runs, bytes_by_run, counts)
    return _show(args, rows, queued)


def _read(store, limit: int):  # -> (runs, bytes by run, measurements by run, upload queue)
    from probe.store.queue import queued_count, target_counts_by_run  # SQLAlchemy: not at every start

    try:
        runs = store.runs()[-limit:]
        bytes_by_run = store.bytes_used_by_run()
        counts = target_counts_by_run(store)
        queued = queued_count(store)
    finally:
        store.close()
    return runs, bytes_by_run, counts, queued


def _rows(runs: list, bytes_by_run: dict, counts: dict) -> list[dict]:
    rows = []
    for run in reversed(runs):
        status = run.status
        if status == "running" and run.finished_at is None:
            status = "running or interrupted (no end recorded)"
        rows.append(
            {
                "run": run.id,
                "started": format_time(run.started_at),
                "ended": format_time(run.finished_at) if run.finished_at else None,
                "status": status,
                "targets": run.targets_total,
                "measured": int(counts.get(run.id, 0)),
                "bytes_used": bytes_by_run.get(run.id, 0),
            }
        )
    return rows


def _show(args: argparse.Namespace, rows: list[dict], queued: int | None) -> int:
    schedule = next_scheduled_run()
    if args.json:
        print(json.dumps({"runs": rows, "upload_queue": int(queued or 0), "next_run": schedule}, indent=2))
        return 0
    if rows:
        write_rows(rows, "table", title=_("recent runs"))
    else:
        print(_("No runs yet. Start one with `kuzot run`."))
    print(_("Measurements waiting to be uploaded: {n}").format(n=int(queued or 0)))
    when = schedule or _("not scheduled (see `kuzot schedule --every 6h`)")
    print(_("Next scheduled run: {when}").format(when=when))
    return 0

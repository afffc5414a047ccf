"""``kuzot schedule``: install, show or remove periodic runs."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from probe.cli._common import CommandError, add_json_option, emit
from probe.i18n import gettext as _
from probe.volunteer.config import load_config
from probe.volunteer.consent import consent_record
from probe.volunteer.schedule import Scheduler, parse_every


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("schedule", help="run kuzot periodically (systemd user timer or cron)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--every", metavar="INTERVAL", help="30m, 6h, 1d ...")
    group.add_argument("--remove", action="store_true", help="stop scheduled runs")
    group.add_argument("--show", action="store_true", help="print the installed schedule")
    add_json_option(p)
    p.set_defaults(handler=handle)


def kuzot_command() -> list[str]:
    executable = shutil.which("kuzot")
    if executable:
        return [str(Path(executable).resolve())]
    return [sys.executable, "-m", "probe"]


def handle(args: argparse.Namespace) -> int:
    scheduler = Scheduler.detect()
    if args.remove:
        removed = scheduler.remove()
        emit(
            args,
            {"removed": removed},
            _("Scheduled runs removed.") if removed else _("Nothing was scheduled."),
        )
        return 0
    if args.show:
        shown = scheduler.show()
        emit(
            args,
            {"scheduled": bool(shown), "schedule": shown or None},
            shown if shown else _("Not scheduled."),
        )
        return 0
    try:
        seconds = parse_every(args.every)
    except ValueError as exc:
        raise CommandError(str(exc), status=2) from exc
    if consent_record() is None:
        raise CommandError(
            _(
                "accept the informed consent first (`kuzot consent --show`, then `kuzot consent --accept`); "
                "a schedule never accepts it for you"
            ),
            status=3,
        )
    command = [*kuzot_command(), "run", "--quiet"]
    config = load_config()
    if config.get("upload") and config.get("collector_url"):
        command += ["--upload", str(config.get("collector_url"))]
    installed = scheduler.install(command, seconds)
    emit(
        args,
        {"scheduled": True, "schedule": installed, "every_seconds": seconds, "command": command},
        _("Scheduled: {schedule}").format(schedule=installed),
    )
    return 0

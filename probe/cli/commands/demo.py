"""``kuzot demo``: a simulated day on the namespace lab, from measurement to evidence report."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from probe.cli._common import CommandError
from probe.i18n import gettext as _


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="see the whole product in one command (root, Linux): lab, measurements, verdicts, report"
    )
    p.add_argument(
        "--out", type=Path, help="where to keep the demo's database and report (default: a new temp folder)"
    )
    p.add_argument(
        "--every", type=int, default=2, choices=[1, 2, 3, 4, 6, 8, 12], metavar="HOURS",
        help="hours between simulated rounds (default 2: twelve rounds)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from probe.lab.netns import LabError, environment_problem

    problem = environment_problem()
    if problem:
        message = _("kuzot demo runs the namespace lab: {problem}").format(problem=problem)
        raise CommandError(message, status=2)
    out = args.out or Path(tempfile.mkdtemp(prefix="kuzot-demo-"))
    if out.exists() and any(out.iterdir()):
        message = _("{out} is not empty: choose a new folder for the demo").format(out=out)
        raise CommandError(message, status=2)
    from probe.cli._demo import run_demo

    def say(line: str) -> None:
        if not args.json:
            print(line, file=sys.stderr, flush=True)

    try:
        outcome = run_demo(out, every_hours=args.every, say=say)
    except LabError as exc:
        raise CommandError(str(exc), status=2) from exc
    if args.json:
        print(json.dumps(outcome, indent=2, ensure_ascii=False, default=str))
        return 0 if not outcome["failures"] else 1
    print()
    print(outcome["citation"], end="")
    print()
    for key, status in outcome["enforcement"].items():  # type: ignore[attr-defined]  # run_demo: a JSON-like dict
        order = "kg-2022-10-26-azattyk"
        print(_("Order {order}, {key}: {status}").format(order=order, key=key, status=status))
    print("\n" + _("The report is at {path}").format(path=outcome["report"]))
    command = f"kuzot verify {Path(str(outcome['report'])).parent}"
    print(_("Check it with: {command}").format(command=command))
    for failure in outcome["failures"]:  # type: ignore[attr-defined]  # run_demo: a JSON-like dict
        print(_("warning: a run failed: {failure}").format(failure=failure), file=sys.stderr)
    return 0 if not outcome["failures"] else 1

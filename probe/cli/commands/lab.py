"""``kuzot lab up|down|status``: the namespace censorship lab (root, Linux).

Why a command: the demo and people trying the probe need a censoring ISP they can
bring up and throw away; ``lab up`` prints the ``kuzot run`` line that measures through
it.  ``up`` leaves the lab running (its state in ``/run/kuzot-lab``) unless
``--foreground``, which keeps it until Ctrl-C; ``down`` removes every trace.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from probe.cli._common import CommandError, add_json_option, emit
from probe.i18n import gettext as _


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("lab", help="bring up or tear down the namespace censorship lab (root)")
    sub = p.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="build the lab: volunteer, ISP, internet and control namespaces")
    up.add_argument("--scenario", default="matrix", help="scenario name or TOML file (default: matrix)")
    up.add_argument("--state-dir", type=Path, metavar="DIR", help="where configs, certs and logs go")
    up.add_argument("--foreground", action="store_true", help="stay until Ctrl-C, then tear down")
    add_json_option(up)
    up.set_defaults(handler=handle_up)
    down = sub.add_parser("down", help="remove a lab (the only one, or --state-dir, or --all)")
    down.add_argument(
        "--state-dir", type=Path, metavar="DIR", help="tear down only the lab with this state directory"
    )
    down.add_argument("--all", action="store_true", help="remove every lab on this machine")
    add_json_option(down)
    down.set_defaults(handler=handle_down)
    status = sub.add_parser("status", help="list running labs")
    add_json_option(status)
    status.set_defaults(handler=handle_status)


def _require_environment() -> None:
    from probe.lab.netns import environment_problem

    problem = environment_problem()
    if problem:
        raise CommandError(problem, status=2)


def handle_up(args: argparse.Namespace) -> int:
    _require_environment()
    from probe.lab.netns import NetnsLab

    lab = NetnsLab(args.scenario, state_dir=args.state_dir)
    lab.up()
    try:
        probe = [*lab.probe_command(["--db", "sqlite:///lab.db"]), *lab.url_args()]
        lines = [
            _("lab {suffix} up: scenario {scenario}, state in {folder}").format(
                suffix=lab.suffix, scenario=lab.scenario.name, folder=lab.state_dir
            ),
            "  " + _("namespaces: {names}").format(names=", ".join(lab.namespaces.values())),
            "  " + _("control helper: {url}   CA: {path}").format(url=lab.control_url, path=lab.ca_bundle),
            "  " + _("measure: {command}").format(command=shlex.join(probe)),
        ]
        if not args.foreground:
            lab.detach()
            lines.append(
                "  "
                + _("remove with: {command}").format(command=f"kuzot lab down --state-dir {lab.state_dir}")
            )
        data = {
            "suffix": lab.suffix,
            "scenario": lab.scenario.name,
            "state_dir": str(lab.state_dir),
            "namespaces": list(lab.namespaces.values()),
            "control_url": lab.control_url,
            "ca_bundle": str(lab.ca_bundle),
            "measure": probe,
            "foreground": args.foreground,
        }
        emit(args, data, "\n".join(lines))
        if not args.foreground:
            return 0
        if not args.json:
            print("  " + _("Ctrl-C to tear down."), flush=True)
        while True:
            time.sleep(3600)
    except BaseException:
        for problem in lab.down():  # Ctrl-C included: say what could not be removed
            print("kuzot lab up: " + _("not torn down: {problem}").format(problem=problem), file=sys.stderr)
        raise


def handle_down(args: argparse.Namespace) -> int:
    _require_environment()
    from probe.lab.netns import running_labs, teardown

    if args.state_dir:
        targets = [args.state_dir]
    else:
        targets = running_labs()
        if len(targets) > 1 and not args.all:
            listed = ", ".join(str(t) for t in targets)
            message = _("{n} labs are running ({listed}): use --state-dir or --all").format(
                n=len(targets), listed=listed
            )
            raise CommandError(message, 2)
    results = [{"state_dir": str(state_dir), "problems": teardown(state_dir)} for state_dir in targets]
    lines: list[str] = []
    for result in results:
        lines += [f"  {problem}" for problem in result["problems"]]
        template = (
            _("lab in {folder}: partly removed") if result["problems"] else _("lab in {folder}: removed")
        )
        lines.append(template.format(folder=result["state_dir"]))
    emit(args, {"removed": results}, "\n".join(lines) if results else _("no lab is running"))
    return 1 if any(r["problems"] for r in results) else 0


def handle_status(args: argparse.Namespace) -> int:
    from probe.lab.netns import STATE_FILE, _process_is_ours, running_labs

    labs: list[dict[str, object]] = []
    lines: list[str] = []
    for state_dir in running_labs():
        state = json.loads((state_dir / STATE_FILE).read_text())
        alive = [name for name, pid in state["pids"].items() if _process_is_ours(int(pid), state_dir)]
        namespaces = [n for n in state["namespaces"] if Path(f"/run/netns/{n}").exists()]
        labs.append(
            {
                "suffix": state["suffix"],
                "scenario": state["scenario"],
                "created": state["created"],
                "state_dir": str(state_dir),
                "namespaces_present": namespaces,
                "namespaces_expected": state["namespaces"],
                "daemons_up": alive,
                "control_url": state["control_url"],
                "targets": list(state["targets"].values()),
            }
        )
        lines += [
            f"lab {state['suffix']}: scenario {state['scenario']}, since {state['created']}",
            f"  state {state_dir}",
            f"  namespaces {len(namespaces)}/{len(state['namespaces'])}; daemons up: {', '.join(alive)}",
            f"  control {state['control_url']}; targets: {', '.join(state['targets'].values())}",
        ]
    emit(args, {"labs": labs}, "\n".join(lines) if labs else _("no lab is running"))
    return 0

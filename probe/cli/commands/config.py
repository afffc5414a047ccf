"""``kuzot config``: show and change the settings file."""

from __future__ import annotations

import argparse
import json

from probe.cli._output import write_rows
from probe.volunteer.config import SETTINGS, load_config, parse_value, save_config


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config", help="show or change settings (command-line options win over them)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="config_command", metavar="ACTION")
    s = sub.add_parser("set", help="set KEY to VALUE")
    s.add_argument("key", choices=sorted(SETTINGS), help="the setting to change")
    s.add_argument("value", help="its new value")
    u = sub.add_parser("unset", help="go back to the default for KEY")
    u.add_argument("key", choices=sorted(SETTINGS), help="the setting to reset")
    path = sub.add_parser("path", help="print where the settings file is")
    for action in (s, u, path):
        # Either place works: `kuzot config --json set ...` or `kuzot config set ... --json`.
        action.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
        )
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config()
    if args.config_command == "path":
        print(json.dumps({"path": str(config.path)}) if args.json else config.path)
        return 0
    if args.config_command == "set":
        config.values[args.key] = parse_value(args.key, args.value)
        save_config(config)
    elif args.config_command == "unset":
        config.values.pop(args.key, None)
        save_config(config)
    rows = [
        {"key": key, "value": config.get(key), "source": config.source(key), "meaning": SETTINGS[key][2]}
        for key in SETTINGS
    ]
    if args.json:
        print(json.dumps({r["key"]: {"value": r["value"], "source": r["source"]} for r in rows}, indent=2))
    else:
        write_rows(rows, "table", columns=["key", "value", "source", "meaning"], title=str(config.path))
    return 0

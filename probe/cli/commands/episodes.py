"""``kuzot episodes``: block episodes per site and network, durations as intervals."""

from __future__ import annotations

import argparse

from probe.cli._analysis import EPISODE_TABLE_COLUMNS, add_filters, load_episodes, with_network
from probe.cli._common import add_db_option, add_format_option
from probe.cli._output import write_rows


def _columns() -> list[str]:
    from analysis.episodes import EPISODE_COLUMNS

    return list(EPISODE_COLUMNS)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "episodes", help="block episodes per domain and network, with duration intervals"
    )
    add_db_option(p)
    add_format_option(p)
    add_filters(p)
    p.add_argument("--by-site", action="store_true", help="group a site with its mirrors")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    _verdicts, episodes = load_episodes(args)
    columns = _columns()
    extra = [c for c in episodes.columns if c not in columns]
    columns = EPISODE_TABLE_COLUMNS if args.format == "table" else [*columns, *extra, "network"]
    write_rows(with_network(episodes.to_dict(orient="records")), args.format, columns=columns)
    return 0

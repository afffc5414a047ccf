"""``kuzot episodes``: block episodes per site and network, durations as intervals."""

from __future__ import annotations

import argparse

from probe.cli._analysis import add_filters, load_verdicts
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


def load_episodes(args: argparse.Namespace):  # -> tuple[DataFrame, DataFrame]
    from analysis.episodes import find_episodes

    verdicts = load_verdicts(args)
    return verdicts, find_episodes(verdicts, by_site=getattr(args, "by_site", False))


#: What fits on a screen; json and csv have every column.
TABLE_COLUMNS = [
    "domain",
    "network",
    "blocking",
    "first_blocked",
    "last_blocked",
    "duration_days_min",
    "duration_days_max",
    "measurements_blocked",
    "measurements_total",
    "ongoing",
]


def with_network(rows: list[dict]) -> list[dict]:
    """Each row with ``network``: the network's name and number (``ElCat (AS8449)``), as
    journalists cite it; ``probe_asn`` stays for scripts."""
    from analysis.networks import network_label

    for row in rows:
        asn = row.get("probe_asn")
        row["network"] = network_label(None if asn is None or asn != asn else asn)
    return rows


def handle(args: argparse.Namespace) -> int:
    _verdicts, episodes = load_episodes(args)
    columns = _columns()
    extra = [c for c in episodes.columns if c not in columns]
    columns = TABLE_COLUMNS if args.format == "table" else [*columns, *extra, "network"]
    write_rows(with_network(episodes.to_dict(orient="records")), args.format, columns=columns)
    return 0

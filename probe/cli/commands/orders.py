"""``kuzot orders``: how each network enforced each blocking order, and blocks no order explains."""

from __future__ import annotations

import argparse
from pathlib import Path

from probe.cli._analysis import add_filters
from probe.cli._common import add_db_option, add_format_option
from probe.cli._output import write_rows
from probe.cli.commands import CommandError
from probe.cli.commands.episodes import TABLE_COLUMNS as EPISODE_TABLE_COLUMNS
from probe.cli.commands.episodes import load_episodes, with_network

#: What fits on a screen; json and csv have every column.
TABLE_COLUMNS = [
    "order_id",
    "domain",
    "network",
    "status",
    "enforcement_lag_days",
    "blocked_days_min",
    "blocked_days_max",
    "days_past_order_end",
    "days_after_withdrawal",
]


def add_orders_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--orders",
        type=Path,
        default=None,
        metavar="FILE",
        help="orders file in the orders.csv layout (default: the one shipped with Kuzot)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("orders", help="correlate block episodes with ministry orders")
    add_db_option(p)
    add_format_option(p)
    add_filters(p)
    add_orders_option(p)
    p.add_argument("--unexplained", action="store_true", help="list episodes that match no order instead")
    p.set_defaults(handler=handle)


def load_orders_or_fail(path: Path | None):  # -> DataFrame
    from analysis.bundled import orders_file
    from analysis.orders import load_orders

    path = orders_file() if path is None else path
    try:
        return load_orders(path)
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file", status=2) from None


def handle(args: argparse.Namespace) -> int:
    from analysis.orders import correlate, unexplained_episodes

    orders = load_orders_or_fail(args.orders)
    verdicts, episodes = load_episodes(args)
    frame = (
        unexplained_episodes(orders, episodes) if args.unexplained else correlate(orders, episodes, verdicts)
    )
    columns = [*frame.columns, "network"]
    if args.format == "table":
        columns = TABLE_COLUMNS if not args.unexplained else EPISODE_TABLE_COLUMNS
    write_rows(with_network(frame.to_dict(orient="records")), args.format, columns=columns)
    return 0

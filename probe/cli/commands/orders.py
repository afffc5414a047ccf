"""``kuzot orders``: how each network enforced each blocking order, and blocks no order explains."""

from __future__ import annotations

import argparse

from probe.cli._analysis import (
    EPISODE_TABLE_COLUMNS,
    add_filters,
    add_orders_option,
    load_episodes,
    load_orders_or_fail,
    with_network,
)
from probe.cli._common import add_db_option, add_format_option
from probe.cli._output import write_rows

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


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("orders", help="correlate block episodes with ministry orders")
    add_db_option(p)
    add_format_option(p)
    add_filters(p)
    add_orders_option(p)
    p.add_argument("--unexplained", action="store_true", help="list episodes that match no order instead")
    p.set_defaults(handler=handle)


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

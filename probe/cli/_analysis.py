"""What the analysis subcommands share: filters, verdicts and episodes loaded from a
database, the orders file, network labels."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from probe.cli._common import CommandError, parse_asn
from probe.i18n import gettext as _


def parse_date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("not a date: {value} (use YYYY-MM-DD)").format(value=repr(text))
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--domain", help="only this domain")
    parser.add_argument("--asn", type=parse_asn, help="only this probe network (AS number)")
    parser.add_argument("--from", dest="since", type=parse_date, metavar="DATE", help="from this date (UTC)")
    parser.add_argument("--to", dest="until", type=parse_date, metavar="DATE", help="until this date (UTC)")


def database_url(args: argparse.Namespace) -> str:
    from probe.volunteer.paths import default_db_url

    return args.db or default_db_url()


def load_verdicts(args: argparse.Namespace):  # -> pandas.DataFrame
    """Verdicts of every stored target measurement matching the filters (canaries are
    read too: they decide ``probe_offline``).  Verdicts already judged under the same
    rules version and fingerprints come from the database's verdict cache; only the
    rest are judged (and cached)."""
    from analysis.fingerprints import load_fingerprints
    from analysis.verdict_cache import cached_verdicts

    fingerprints = load_fingerprints()
    from probe.cli._common import open_store

    open_store(database_url(args), must_exist=True).close()  # a clear error for a bad URL
    return cached_verdicts(
        database_url(args),
        fingerprints=fingerprints,
        domain=getattr(args, "domain", None),
        probe_asn=getattr(args, "asn", None),
        since=getattr(args, "since", None),
        until=getattr(args, "until", None),
    )


def load_episodes(args: argparse.Namespace):  # -> tuple[DataFrame, DataFrame]
    from analysis.episodes import find_episodes

    verdicts = load_verdicts(args)
    return verdicts, find_episodes(verdicts, by_site=getattr(args, "by_site", False))


#: The episode columns that fit on a screen; json and csv have every column.
EPISODE_TABLE_COLUMNS = [
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


def add_orders_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--orders",
        type=Path,
        default=None,
        metavar="FILE",
        help="orders file in the orders.csv layout (default: the one shipped with Kuzot)",
    )


def load_orders_or_fail(path: Path | None):  # -> DataFrame
    from analysis.bundled import orders_file
    from analysis.orders import load_orders

    path = orders_file() if path is None else path
    try:
        return load_orders(path)
    except FileNotFoundError:
        raise CommandError(_("{path}: no such file").format(path=path), status=2) from None


_FINGERPRINTS: Any = None


def keep_body(obs: Any) -> bool:
    """Whether a response body is kept: when it matches a blockpage fingerprint.  Loaded
    once per worker process (a module-level function, so workers can be handed it)."""
    global _FINGERPRINTS
    if _FINGERPRINTS is None:
        from analysis.fingerprints import load_fingerprints

        _FINGERPRINTS = load_fingerprints()
    return _FINGERPRINTS.match_http(obs) is not None

"""What the analysis subcommands share: filters, and verdicts loaded from a database."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from probe.cli._common import parse_asn


def parse_date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None
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

"""Load measurements from any Kuzot database (a volunteer's SQLite or the collector's
PostgreSQL) for analysis.

Why through :mod:`probe.store.readers` and nothing else of the store: the schema is
known in one package (``probe.store``), while the analysis layer imports from the probe
only what keeps judging pure (records, failures) and this one read-only module, which
opens a plain engine by URL and hands back the stored canonical records.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import probe.store.readers as readers
from probe.records import Measurement


def iter_measurements(
    db_url: str,
    *,
    domain: str | None = None,
    probe_asn: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_canaries: bool = True,
    batch: int = 2000,
) -> Iterator[Measurement]:
    """Measurements in time order.  Canaries are included by default because verdicts need
    them to tell a dead link (``probe_offline``) from blocking."""
    records = readers.iter_records(
        db_url,
        domain=domain,
        probe_asn=probe_asn,
        since=since,
        until=until,
        include_canaries=include_canaries,
        batch=batch,
    )
    for record in records:
        yield Measurement.from_json(record)


def load_measurements(db_url: str, **filters: object) -> list[Measurement]:
    # mypy: filters are iter_measurements' own keyword arguments, passed through
    return list(iter_measurements(db_url, **filters))  # type: ignore[arg-type]


def load_verdicts(db_url: str, **filters: object):  # -> pandas.DataFrame
    """Verdicts of every target measurement in a database, as a frame
    (:func:`analysis.verdicts.verdicts_frame`): the starting point of every analysis.

    Streamed through the verdict cache (:func:`analysis.verdict_cache.cached_verdicts`:
    bounded memory, judged once per rules version); a database without the cache table
    (made before it existed) is judged in memory."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from analysis.fingerprints import load_fingerprints
    from analysis.verdict_cache import cached_verdicts
    from analysis.verdicts import judge_all, verdicts_frame

    fingerprints = load_fingerprints()
    if set(filters) <= {"domain", "probe_asn", "since", "until"}:
        try:
            return cached_verdicts(db_url, fingerprints=fingerprints, **filters)  # type: ignore[arg-type]
        except (OperationalError, ProgrammingError):
            pass
    # mypy: as above, iter_measurements' keyword arguments passed through
    measurements = iter_measurements(db_url, **filters)  # type: ignore[arg-type]
    return verdicts_frame(judge_all(measurements, fingerprints=fingerprints))


def canary_ids(db_url: str, measurement_ids: list[str], *, chunk: int = 500) -> list[str]:
    """The canaries measured in the same runs as ``measurement_ids``: the evidence that
    a run's probe was online (or, when they all failed, that it was not)."""
    return readers.canary_ids(db_url, measurement_ids, chunk=chunk)

"""Load measurements from any Kuzot database (a volunteer's SQLite or the collector's
PostgreSQL) for analysis.

Why not reuse ``probe.store``: the analysis layer may import only the record types
and failures from the probe, so that judging stays pure and can run anywhere the data
is.  Reading needs nothing but the ``measurements`` table's canonical records, which is
the archival format itself, so a plain SQL query suffices.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import create_engine, text

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
    clauses = []
    params: dict[str, object] = {}
    if domain is not None:
        # "azattyk.org" means the site, with or without "www."
        bare = domain.strip().lower().rstrip(".").removeprefix("www.")
        match = "domain IN (:domain, :www_domain)"
        clauses.append(f"({match} OR role = 'canary')" if include_canaries else match)
        params["domain"], params["www_domain"] = bare, f"www.{bare}"
    if probe_asn is not None:
        clauses.append("probe_asn = :asn")
        params["asn"] = probe_asn
    if since is not None:
        clauses.append("started_at >= :since")
        params["since"] = since
    if until is not None:
        clauses.append("started_at < :until")
        params["until"] = until
    if not include_canaries:
        clauses.append("role <> 'canary'")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    query = text(f"SELECT record FROM measurements {where} ORDER BY started_at, id")
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(query, params)
            for (record,) in result:
                yield Measurement.from_json(record)
    finally:
        engine.dispose()


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
    engine = create_engine(db_url)
    found: set[str] = set()
    try:
        with engine.connect() as conn:
            for i in range(0, len(measurement_ids), chunk):
                part = measurement_ids[i : i + chunk]
                params = {f"m{j}": mid for j, mid in enumerate(part)}
                names = ", ".join(f":m{j}" for j in range(len(part)))
                query = text(
                    "SELECT id FROM measurements WHERE role = 'canary' AND run_id IN "
                    f"(SELECT run_id FROM measurements WHERE id IN ({names}) AND run_id IS NOT NULL)"
                )
                found.update(row[0] for row in conn.execute(query, params))
    finally:
        engine.dispose()
    return sorted(found)

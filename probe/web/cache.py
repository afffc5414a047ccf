"""Verdicts and episodes kept in memory per rules_version, refreshed incrementally.

Why in memory: every page is a view of the same judged history, and judging a million
measurements takes minutes while reading a prepared frame takes microseconds.  The
expensive step (turning stored records into verdicts) sits behind one small interface,
:class:`VerdictProvider`: :class:`JudgingProvider` judges records itself;
:class:`StoredVerdictProvider` reads the stored verdict cache per rules_version (and
judges only what it lacks), so start-up over a judged database does not judge again.

Incremental: a refresh asks the provider only for measurements stored since the last
one (and re-judges the runs they belong to, because a run's canaries decide
``probe_offline`` for all its targets), then recomputes episodes only for the
(domain, network) series those verdicts touch.  Pages keep answering from the previous
snapshot while a refresh runs; the new one replaces it in one assignment.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec
import numpy as np
import pandas as pd

from analysis.episodes import EPISODE_COLUMNS, EXTRA_COLUMNS, bare_domain, find_episodes
from analysis.fingerprints import load_fingerprints
from analysis.orders import correlate
from analysis.verdicts import RULES_VERSION, VERDICT_COLUMNS, judge_all
from probe.records import Measurement
from probe.store import explorer_reads
from probe.web.source import Source

#: Columns a snapshot's verdict frame carries beyond :data:`VERDICT_COLUMNS`.
EXTRA_VERDICT_COLUMNS = ("site_domain", "category_code", "probe_network", "simulated", "stored_at")
#: Annotations that mark a measurement as not real-world evidence.
SIMULATED_MARKS = ("synthetic", "simulated_clock", "lab")
_CHUNK = 5000
REFRESH_MARGIN = timedelta(minutes=10)


def lab_network(asn: object) -> bool:
    """AS numbers for documentation (64496-64511) and private use (64512-65534,
    4200000000-4294967294): no real ISP, so a lab or a simulation."""
    if asn is None:
        return False
    try:
        n = int(asn)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    return 64496 <= n <= 65534 or 4_200_000_000 <= n <= 4_294_967_294


def is_simulated(m: Measurement) -> bool:
    """Simulated or lab data, which every page must label as such."""
    return any(m.annotations.get(mark) == "true" for mark in SIMULATED_MARKS) or lab_network(m.probe_asn)


class VerdictProvider(Protocol):
    """Where verdicts come from: one call, "everything stored since ``position``".

    ``position`` is the provider's own bookmark (opaque to the cache): ``None`` means
    from the beginning, and each call returns the bookmark to pass next time."""

    rules_version: str

    def verdicts_since(self, position: Any) -> tuple[pd.DataFrame, Any]:
        """Verdict rows (columns :data:`VERDICT_COLUMNS` + :data:`EXTRA_VERDICT_COLUMNS`)
        of every target measurement stored after ``position`` and of the runs they
        belong to (re-judged whole), plus the new position."""
        ...


class JudgingProvider:
    """Judges stored records with :mod:`analysis.verdicts` (no stored verdicts needed).

    Its bookmark is SQLite's rowid (assigned in commit order by the one writer, and
    indexed), or on PostgreSQL the latest ``stored_at`` read, re-reading
    :data:`REFRESH_MARGIN` before it because concurrent batches commit out of order."""

    rules_version = RULES_VERSION

    def __init__(self, source: Source) -> None:
        self.source = source
        self.fingerprints = load_fingerprints()

    def _since(self, position: Any) -> Any:
        """Where a call starts reading: the bookmark itself on SQLite, on PostgreSQL
        :data:`REFRESH_MARGIN` before it (None: from the beginning)."""
        if position is None or self.source.sqlite:
            return position
        return position - REFRESH_MARGIN

    def _top(self) -> Any:
        return explorer_reads.top_position(self.source.engine, self.source.sqlite)

    def verdicts_since(self, position: Any) -> tuple[pd.DataFrame, Any]:
        top = self._top()
        if top is None:
            return _frame([]), position
        rows = explorer_reads.iter_records_in_range(
            self.source.engine, self.source.sqlite, self._since(position), top
        )
        return _frame(self._judge(_decoded(rows))), top

    def _judge(self, records: Iterable[tuple[Measurement, Any]]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        chunk: list[Measurement] = []
        stored: dict[str, Any] = {}
        run: object = object()

        def flush() -> None:
            extra = {m.id: m for m in chunk}
            for v in judge_all(chunk, fingerprints=self.fingerprints):
                m = extra[v.measurement_id]
                row = {name: getattr(v, name) for name in VERDICT_COLUMNS}
                row.update(
                    site_domain=bare_domain(v.domain),
                    category_code=m.category_code,
                    probe_network=m.probe_network,
                    simulated=is_simulated(m),
                    stored_at=stored[m.id],
                )
                rows.append(row)
            chunk.clear()
            stored.clear()

        for m, stored_at in records:
            # Flush only between runs, so a run's canaries are judged with its targets.
            if len(chunk) >= _CHUNK and (m.run_id is None or m.run_id != run):
                flush()
            run = m.run_id
            chunk.append(m)
            stored[m.id] = stored_at
        flush()
        return rows


def _decoded(rows: Iterable[Any]) -> Iterator[tuple[Measurement, Any]]:
    """(record, stored_at) rows as (measurement, stored_at)."""
    for record, stored_at in rows:
        yield Measurement.from_json(record), stored_at


class _Extras(msgspec.Struct):
    """The few record fields a page needs beyond the cached verdict: msgspec skips the
    rest of the record without building it."""

    probe_network: str | None = None
    annotations: dict[str, Any] = msgspec.field(default_factory=dict)


_EXTRAS = msgspec.json.Decoder(_Extras)


class StoredVerdictProvider(JudgingProvider):
    """Reads verdicts from the database's verdict cache (:mod:`analysis.verdict_cache`,
    filled by ``kuzot episodes``/``kuzot verdicts`` or :func:`analysis.verdict_cache.judge_stored`)
    for the current rules version and fingerprints, so start-up does not judge again.

    Measurements without a cached verdict (stored since the cache was filled, or judged
    under other rules) are judged here, with their runs' canaries, as
    :class:`JudgingProvider` does; they are not written back, because the Explorer opens
    the database read-only."""

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        from analysis.verdict_cache import fingerprints_digest

        self.digest = fingerprints_digest(self.fingerprints)

    def verdicts_since(self, position: Any) -> tuple[pd.DataFrame, Any]:
        top = self._top()
        if top is None:
            return _frame([]), position
        engine, sqlite, since = self.source.engine, self.source.sqlite, self._since(position)
        rules, digest = self.rules_version, self.digest
        cached = explorer_reads.iter_cached_in_range(engine, sqlite, since, top, rules, digest)
        rows: list[dict[str, Any]] = []
        sites: dict[str, str] = {}
        for r in cached:
            extras = _EXTRAS.decode(r[14])
            site = sites.get(r[2])
            if site is None:
                site = sites[r[2]] = bare_domain(r[2])
            rows.append(
                {
                    "measurement_id": r[0],
                    "url": r[1],
                    "domain": r[2],
                    "probe_asn": r[3],
                    "measured_at": _utc(r[4]),
                    "status": r[5],
                    "blocking": r[6],
                    "confirmed": bool(r[7]),
                    "reason": r[8],
                    "rule_id": r[9],
                    "rules_version": r[10],
                    "observation_ids": list(json.loads(r[11])),
                    "site_domain": site,
                    "category_code": r[12],
                    "probe_network": extras.probe_network,
                    "simulated": any(extras.annotations.get(k) == "true" for k in SIMULATED_MARKS)
                    or lab_network(r[3]),
                    "stored_at": r[13],
                }
            )
        missing = explorer_reads.iter_uncached_in_range(engine, sqlite, since, top, rules, digest)
        rows.extend(self._judge(_decoded(missing)))
        return _frame(rows), top


def _utc(value: Any) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back text, PostgreSQL datetimes)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def provider_for(source: Source) -> VerdictProvider:
    """The stored verdict cache when the database has one, else judging everything."""
    if "verdict_cache" in getattr(source, "tables", ()):
        return StoredVerdictProvider(source)
    return JudgingProvider(source)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = [*VERDICT_COLUMNS, *EXTRA_VERDICT_COLUMNS]
    frame = pd.DataFrame(rows, columns=columns)
    frame["measured_at"] = pd.to_datetime(frame["measured_at"], utc=True)
    frame["stored_at"] = pd.to_datetime(frame["stored_at"], utc=True)
    frame["probe_asn"] = frame["probe_asn"].astype("Int64")
    frame["confirmed"] = frame["confirmed"].astype(bool)
    frame["simulated"] = frame["simulated"].astype(bool)
    return frame


@dataclass
class Snapshot:
    """One consistent view of the judged history; never changed after it is built.

    ``verdicts`` holds each (domain, network) series as one contiguous block sorted by
    time; ``series`` says where.  A refresh appends the series it touched as new blocks
    and leaves the old ones behind, unreferenced (``dead`` rows), so nothing else moves;
    once the dead outnumber the live the next refresh compacts."""

    version: int
    rules_version: str
    built_at: float
    verdicts: pd.DataFrame
    episodes: pd.DataFrame
    correlation: pd.DataFrame
    orders: pd.DataFrame
    #: (domain, asn) -> (start, stop) row range in ``verdicts``.
    series: dict[tuple[str, int | None], tuple[int, int]] = field(default_factory=dict)
    #: measurement id -> row in ``verdicts``.
    rows: dict[str, int] = field(default_factory=dict)
    #: episode id -> row in ``episodes``.
    episode_rows: dict[str, int] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)
    network_names: dict[int, str] = field(default_factory=dict)
    #: The provider's bookmark: where the next refresh starts reading.
    high_water: Any = None
    #: ``verdicts.measured_at`` as int64 nanoseconds, for searchsorted within a series.
    times: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="int64"))
    simulated_any: bool = False
    #: Rows of ``verdicts`` no series points to any more (left behind by refreshes).
    dead: int = 0
    #: Values derived from this snapshot on first use (see :func:`probe.web.rows.memo`).
    memo: dict[Any, Any] = field(default_factory=dict)

    @property
    def measurements(self) -> int:
        return len(self.rows)

    def live(self) -> np.ndarray:
        """Row numbers of every current verdict, series by series."""
        ranges = [np.arange(a, b) for a, b in self.series.values()]
        return np.concatenate(ranges) if ranges else np.empty(0, dtype="int64")


def _asn_key(value: object) -> int | None:
    """A series' network as a plain int (frames hand back numpy ints and ``pd.NA``)."""
    if value is None or pd.isna(value) or not isinstance(value, int | float | np.number):
        return None
    return int(value)


def _keys(frame: pd.DataFrame) -> list[tuple[str, int | None]]:
    domains, asns = frame["site_domain"].to_numpy(), frame["probe_asn"].astype(object).to_numpy()
    return [(d, _asn_key(a)) for d, a in zip(domains, asns, strict=True)]


def _sorted(verdicts: pd.DataFrame) -> pd.DataFrame:
    return verdicts.sort_values(
        ["site_domain", "probe_asn", "measured_at", "measurement_id"], kind="mergesort"
    ).reset_index(drop=True)


def _ranges(verdicts: pd.DataFrame, base: int = 0) -> dict[tuple[str, int | None], tuple[int, int]]:
    """Each series' row range in a frame sorted by :func:`_sorted`, shifted by ``base``."""
    keys = _keys(verdicts)
    starts = [0] + [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]] if keys else []
    bounds = [*starts[1:], len(keys)]
    return {keys[a]: (base + a, base + b) for a, b in zip(starts, bounds, strict=True)}


def _names(verdicts: pd.DataFrame, categories: dict[str, str], names: dict[int, str]) -> None:
    """Add the frame's site categories and network names to the two lookups."""
    domains, codes = verdicts["site_domain"].to_numpy(), verdicts["category_code"].to_numpy()
    for domain, category in zip(domains, codes, strict=True):
        if isinstance(category, str) and category:
            categories[domain] = category
    asns, networks = verdicts["probe_asn"].astype(object).to_numpy(), verdicts["probe_network"].to_numpy()
    for asn, name in zip(asns, networks, strict=True):
        if isinstance(name, str) and name and not pd.isna(asn):
            names[int(asn)] = name


def _ns(verdicts: pd.DataFrame) -> np.ndarray:
    return verdicts["measured_at"].dt.as_unit("ns").astype("int64").to_numpy()


def _episode_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=[*EPISODE_COLUMNS, *EXTRA_COLUMNS])
    episodes = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return episodes.sort_values(["first_blocked", "episode_id"], ascending=[False, True]).reset_index(
        drop=True
    )


def _correlation(snap: Snapshot) -> pd.DataFrame:
    """Orders against episodes, reading only the series of domains some order names."""
    if not len(snap.orders) or not snap.series:
        return pd.DataFrame()
    named = {d for domains in snap.orders["domains"] for d in domains}
    ranges = [np.arange(a, b) for (d, _), (a, b) in snap.series.items() if d in named]
    subset = snap.verdicts.iloc[np.concatenate(ranges)] if ranges else snap.verdicts.iloc[:0]
    return correlate(snap.orders, snap.episodes, subset)


def _finish(snap: Snapshot) -> Snapshot:
    """The lookups derived from a snapshot's frames."""
    snap.episode_rows = dict(zip(snap.episodes["episode_id"], range(len(snap.episodes)), strict=True))
    snap.correlation = _correlation(snap)
    return snap


def _index(
    version: int, verdicts: pd.DataFrame, episodes: pd.DataFrame, orders: pd.DataFrame, mark: Any
) -> Snapshot:
    """A snapshot built from scratch: every verdict sorted into its series."""
    verdicts = _sorted(verdicts)
    categories: dict[str, str] = {}
    names: dict[int, str] = {}
    _names(verdicts, categories, names)
    snap = Snapshot(
        version=version,
        rules_version=RULES_VERSION,
        built_at=time.time(),
        verdicts=verdicts,
        episodes=_episode_frame([episodes]),
        correlation=pd.DataFrame(),
        orders=orders,
        series=_ranges(verdicts),
        rows=dict(zip(verdicts["measurement_id"], range(len(verdicts)), strict=True)),
        categories=categories,
        network_names=names,
        high_water=mark,
        times=_ns(verdicts),
        simulated_any=bool(verdicts["simulated"].any()),
    )
    return _finish(snap)


def fold(old: Snapshot, new: pd.DataFrame, mark: Any) -> Snapshot:
    """``old`` with the verdicts ``new`` (re)judged: only the series they touch are
    rebuilt (their verdicts re-sorted, their episodes found again) and appended; every
    other series, its rows and its episodes stay where they are."""
    touched = set(_keys(new))
    # The touched series' old rows, less those judged again (one selection, not one per series).
    ranges = [np.arange(*old.series[key]) for key in touched & old.series.keys()]
    again = np.array([old.rows[m] for m in new["measurement_id"] if m in old.rows], dtype="int64")
    kept = np.setdiff1d(np.concatenate(ranges), again) if ranges else np.empty(0, dtype="int64")
    block = _sorted(pd.concat([new, old.verdicts.iloc[kept]], ignore_index=True))
    base = len(old.verdicts)
    series = {**old.series, **_ranges(block, base)}
    left = sum(b - a for key, (a, b) in old.series.items() if key in touched)
    categories, names = dict(old.categories), dict(old.network_names)
    _names(new, categories, names)
    episode_keys = zip(old.episodes["domain"], old.episodes["probe_asn"].astype(object), strict=True)
    stay = np.array([(d, _asn_key(a)) not in touched for d, a in episode_keys], dtype=bool)
    kept = old.episodes[stay] if len(stay) else old.episodes
    rows = dict(old.rows)
    rows.update(zip(block["measurement_id"], range(base, base + len(block)), strict=True))
    snap = Snapshot(
        version=old.version + 1,
        rules_version=old.rules_version,
        built_at=time.time(),
        verdicts=pd.concat([old.verdicts, block], ignore_index=True),
        episodes=_episode_frame([kept, find_episodes(block)]),
        correlation=pd.DataFrame(),
        orders=old.orders,
        series=series,
        rows=rows,
        categories=categories,
        network_names=names,
        high_water=mark,
        times=np.concatenate([old.times, _ns(block)]),
        simulated_any=old.simulated_any or bool(block["simulated"].any()),
        dead=old.dead + left,
    )
    if snap.dead > snap.measurements:
        return _index(snap.version, snap.verdicts.iloc[snap.live()], snap.episodes, snap.orders, mark)
    return _finish(snap)


class AnalysisCache:
    """The current :class:`Snapshot`, and the incremental refresh that replaces it."""

    def __init__(self, provider: VerdictProvider, source: Source, orders: pd.DataFrame) -> None:
        self.provider = provider
        self.source = source
        self.orders = orders
        self._lock = threading.Lock()
        self._marker: Any = None
        self.snapshot: Snapshot | None = None

    def build(self) -> Snapshot:
        """The first snapshot: every stored measurement judged."""
        with self._lock:
            return self._build()

    def _build(self) -> Snapshot:
        marker = self.source.marker()
        verdicts, mark = self.provider.verdicts_since(None)
        self.snapshot = _index(1, verdicts, find_episodes(verdicts), self.orders, mark)
        self._marker = marker
        return self.snapshot

    def refresh(self) -> bool:
        """Take in measurements stored since the last snapshot; True when something changed.
        A refresh already running makes this return at once (pages use the old snapshot)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self.snapshot is None:
                self._build()
                return True
            marker = self.source.marker()
            if marker == self._marker:
                return False
            new, mark = self.provider.verdicts_since(self.snapshot.high_water)
            self._marker = marker
            if new.empty:
                return False
            self.snapshot = fold(self.snapshot, new, mark)
            return True
        finally:
            self._lock.release()

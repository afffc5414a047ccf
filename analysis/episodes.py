"""Block episodes: runs of blocked verdicts per (domain, network), with durations as intervals.

A journalist needs "blocked from 27 October, for between 59 and 62 days", not a pile of
verdicts.  The rule that turns verdicts into episodes is small and documented here and
in docs/episodes.md, because every published figure depends on it.

The rule (:class:`EpisodeRule`)
- Each verdict counts as *blocked*, *accessible* or *neutral*.  ``down``,
  ``probe_offline`` and ``inconclusive`` are neutral: they say nothing about blocking,
  so they neither open nor close an episode, nor break a streak.
- An episode opens at the first of ``open_after`` consecutive blocked verdicts (neutral
  ones between them are skipped), or at a single blocked verdict that is *confirmed*
  (a blockpage fingerprint or a known blocking address is not noise).  A lone
  unconfirmed timeout inside an accessible period therefore opens nothing.
- An open episode closes at the first of ``close_after`` consecutive accessible
  verdicts.  A lone success inside a block (a cache, a lucky route) closes nothing and
  is counted in the episode's total.
- An episode still open at the end of the data is ``ongoing``.
- An episode is one method's: a blocked verdict of another method neither extends it nor
  opens a new one alone; a lasting change of method ends it and starts a new episode
  (see :func:`_scan`).

Durations are brackets (as OONI's event records use onset/resolution earliest and
latest): ``duration_days_min`` spans the first to the last blocked measurement, which is
certainly blocked time; ``duration_days_max`` spans the last accessible measurement
before to the first accessible one after, beyond which the site was certainly not
blocked.  When either side is unknown (no accessible measurement before, or the episode
is ongoing) the maximum is unbounded and left empty.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.columns import codes, in_ns, utc_times

#: The episode table's columns, in the order the CLI prints them (a stable interface).
EPISODE_COLUMNS: tuple[str, ...] = (
    "domain",
    "probe_asn",
    "blocking",
    "first_blocked",
    "last_blocked",
    "last_accessible_before",
    "first_accessible_after",
    "duration_days_min",
    "duration_days_max",
    "measurements_blocked",
    "measurements_total",
    "ongoing",
)
#: Further columns for traceability and charts.
EXTRA_COLUMNS: tuple[str, ...] = (
    "episode_id",
    "site",
    "confirmed",
    "methods",
    "measurements_accessible",
    "longest_gap_days",
    "measurement_ids",
)

_BLOCKED, _ACCESSIBLE, _NEUTRAL = 1, 0, -1
_DAY_NS = 86_400 * 1_000_000_000

#: Mirrors and language editions that belong to one publication, so analysts can
#: group them ("site").  Domains not listed are their own site.
MIRRORS: dict[str, str] = {
    "rus.azattyk.org": "azattyk.org",
    "azattyk.gitlab.io": "azattyk.org",
    "azattyk.github.io": "azattyk.org",
    "ky.kloop.asia": "kloop.kg",
    "uz.kloop.asia": "kloop.kg",
    "kloop.asia": "kloop.kg",
}


def bare_domain(name: str) -> str:
    """The name people say: lower case, no trailing dot, no ``www.``."""
    name = name.strip().lower().rstrip(".")
    return name[4:] if name.startswith("www.") else name


def site_of(domain: str) -> str:
    """The publication a domain belongs to (itself unless it is a known mirror)."""
    bare = bare_domain(domain)
    return MIRRORS.get(bare, bare)


@dataclass(frozen=True)
class EpisodeRule:
    open_after: int = 2
    close_after: int = 2
    #: A confirmed blocked verdict opens an episode on its own.
    confirmed_opens: bool = True

    def __post_init__(self) -> None:
        if self.open_after < 1 or self.close_after < 1:
            raise ValueError("open_after and close_after must be at least 1")


DEFAULT_RULE = EpisodeRule()


def _states(status: pd.Series) -> np.ndarray:
    status_codes, names = codes(status)
    lookup = np.array(
        [_BLOCKED if v == "blocked" else _ACCESSIBLE if v == "accessible" else _NEUTRAL for v in names]
        + [_NEUTRAL],  # code -1 (missing) reads the last entry
        dtype=np.int8,
    )
    scores: np.ndarray = lookup[status_codes]
    return scores


def _episode_id(domain: str, asn: object, first_ns: int) -> str:
    return hashlib.sha256(f"{domain}|{asn}|{first_ns}".encode()).hexdigest()[:16]


def _scan(
    states: np.ndarray,
    confirmed: np.ndarray,
    rule: EpisodeRule,
    kinds: np.ndarray | None = None,
) -> list[tuple[int, int, int, int, bool]]:
    """Episodes of one series as index tuples ``(start, last_blocked, accessible_before,
    accessible_after, ongoing)``; ``-1`` where there is no such measurement.

    An open episode belongs to one method (``kinds[i]``, the verdict's ``blocking`` as an
    integer code, ``-1`` for none).  A blocked verdict of another method neither extends
    it (``last_blocked`` stays at the episode's own last verdict) nor, alone, opens a new
    one: it counts only when the episode's own method is seen again after it (then it
    was inside the episode), or when the other method persists as an episode would open
    (``open_after`` in a row, or one confirmed), in which case the episode ends at its
    own last verdict and a new one of the new method starts, with ``accessible_before``
    unknown (it follows a block).

    Speed without a second rule: neutral verdicts change nothing, so they are dropped
    first; and two steps repeat without changing the state (an accessible verdict while
    no episode is open, a blocked verdict of the open episode's method), so a run of
    them is taken in one step at its last index.  Everything else goes verdict by
    verdict, exactly as the rule says.
    """
    if kinds is None:
        kinds = np.full(len(states), -1, dtype=np.int64)
    keep = np.flatnonzero(states != _NEUTRAL)
    if not len(keep):
        return []
    st = states[keep]
    kd = kinds[keep].astype(np.int64)
    symbol = st.astype(np.int64) * (int(kd.max()) + 2) + (kd + 1)
    ends = np.append(np.flatnonzero(symbol[1:] != symbol[:-1]), len(symbol) - 1)
    run_end = np.repeat(ends, np.diff(ends, prepend=-1))
    return _Scanner(rule, st, kd, confirmed[keep], keep, run_end).scan()


class _Scanner:
    """The state of :func:`_scan` over one series' non-neutral verdicts."""

    def __init__(
        self,
        rule: EpisodeRule,
        st: np.ndarray,
        kd: np.ndarray,
        cf: np.ndarray,
        keep: np.ndarray,
        run_end: np.ndarray,
    ) -> None:
        self.rule = rule
        self.n = len(keep)
        # Element access by .item(): only the verdicts the loop visits become Python ints.
        self.s_at, self.k_at, self.c_at = st.item, kd.item, cf.item
        self.idx_at, self.end_at = keep.item, run_end.item
        self.found: list[tuple[int, int, int, int, bool]] = []
        self.open_ = False
        self.pending_start = self.before_pending = self.last_accessible = -1
        self.pending = self.streak = self.other = 0
        self.start = self.last_blocked = self.before = self.method = -1
        self.streak_first = self.other_start = -1

    def scan(self) -> list[tuple[int, int, int, int, bool]]:
        j = 0
        while j < self.n:
            if self.s_at(j) == _BLOCKED:
                j = self._blocked_open(j) if self.open_ else self._blocked_closed(j)
            else:
                j = self._accessible(j)
        if self.open_:
            self.found.append((self.start, self.last_blocked, self.before, -1, True))
        return self.found

    def _opens(self, count: int, j: int) -> bool:
        return count >= self.rule.open_after or bool(self.rule.confirmed_opens and self.c_at(j))

    def _blocked_open(self, j: int) -> int:
        kind, i = self.k_at(j), self.idx_at(j)
        if self.method < 0 or kind < 0 or kind == self.method:
            j = self.end_at(j)  # the same step for the whole run: take its last
            self.last_blocked = self.idx_at(j)
            self.streak = self.other = 0
            return j + 1
        if self.other == 0:
            self.other_start = i
        self.other += 1
        if self._opens(self.other, j):
            self.found.append((self.start, self.last_blocked, self.before, -1, False))
            self.start, self.last_blocked, self.before = self.other_start, i, -1
            self.method = kind
            self.other = self.streak = 0
        return j + 1

    def _blocked_closed(self, j: int) -> int:
        i = self.idx_at(j)
        if self.pending == 0:
            self.pending_start, self.before_pending = i, self.last_accessible
        self.pending += 1
        if self._opens(self.pending, j):
            self.open_ = True
            self.start, self.last_blocked, self.before = self.pending_start, i, self.before_pending
            self.method = self.k_at(j)
            self.streak = self.pending = self.other = 0
        return j + 1

    def _accessible(self, j: int) -> int:
        if not self.open_:
            j = self.end_at(j)
            self.last_accessible = self.idx_at(j)
            self.other = self.pending = 0
            return j + 1
        i = self.idx_at(j)
        self.last_accessible = i
        self.other = 0
        self.streak += 1
        if self.streak == 1:
            self.streak_first = i
        if self.streak >= self.rule.close_after:
            self.found.append((self.start, self.last_blocked, self.before, self.streak_first, False))
            self.open_ = False
            self.streak = 0
        return j + 1


def find_episodes(
    verdicts: pd.DataFrame, rule: EpisodeRule = DEFAULT_RULE, *, by_site: bool = False
) -> pd.DataFrame:
    """Episodes from a verdict frame (:func:`analysis.verdicts.verdicts_frame` or any frame
    with ``measurement_id, domain, probe_asn, measured_at, status, blocking, confirmed``).

    Domains are compared without ``www.``.  With ``by_site`` a site and its mirrors form
    one series, which answers "could readers reach the publication at all".

    Vectorised: domains, statuses and methods become integer codes (each distinct
    domain normalised once), the series are ordered by one integer sort, and only ties
    in time within a series are ordered by measurement id (as a sort on all four keys
    would), so the long id strings are never sorted as a whole.
    """
    columns = [*EPISODE_COLUMNS, *EXTRA_COLUMNS]
    if verdicts.empty:
        return pd.DataFrame(columns=columns)
    s = _sorted_columns(verdicts, by_site)
    rows: list[dict[str, object]] = []
    for k, (lo, hi) in enumerate(zip(s.starts.tolist(), s.stops.tolist(), strict=True)):
        if s.blocked_cum[hi] == s.blocked_cum[lo]:
            continue
        asn = None if s.asns[k] == _MISSING_ASN else int(s.asns[k])
        rows.extend(
            _episodes_of(str(s.names[s.domains[k]]), asn, s.series(lo, hi), s.ids, s.kind_names, rule)
        )
    out = pd.DataFrame(rows, columns=columns)
    for name in ("first_blocked", "last_blocked", "last_accessible_before", "first_accessible_after"):
        out[name] = pd.to_datetime(out[name], utc=True)
    out["probe_asn"] = out["probe_asn"].astype("Int64")
    return out.sort_values(["domain", "probe_asn", "first_blocked"], kind="mergesort").reset_index(drop=True)


#: A missing network sorts last, as pandas puts missing values.
_MISSING_ASN = np.iinfo(np.int64).max


@dataclass(frozen=True)
class _Sorted:
    """The verdict columns as integer codes, sorted by (domain, network, time, id), and
    where each (domain, network) series starts and stops.

    Per row: ``times`` (ns), ``order`` (int32 positions in the input frame), ``states``,
    ``kinds``, ``confirmed`` and the cumulative counts; per series: ``domains`` (codes
    into ``names``) and ``asns``.  ``ids`` is the frame's id column as it is held (an
    Arrow-backed one is never turned into ten million Python strings)."""

    names: np.ndarray
    domains: np.ndarray
    asns: np.ndarray
    times: np.ndarray
    order: np.ndarray
    ids: Any
    states: np.ndarray
    kinds: np.ndarray
    kind_names: list[object]
    confirmed: np.ndarray
    starts: np.ndarray
    stops: np.ndarray
    blocked_cum: np.ndarray
    accessible_cum: np.ndarray

    def series(self, lo: int, hi: int) -> _Series:
        part = slice(lo, hi)
        return _Series(
            self.times[part],
            self.states[part],
            self.confirmed[part],
            self.kinds[part],
            self.order[part],
            self.blocked_cum[lo : hi + 1] - self.blocked_cum[lo],
            self.accessible_cum[lo : hi + 1] - self.accessible_cum[lo],
        )


def _series_order(verdicts: pd.DataFrame, by_site: bool) -> tuple[Any, ...]:
    """(domain names, the sorted domain codes, networks and times (ns), the order as
    int32 positions, and the id column)."""
    raw_codes, raw_names = codes(verdicts["domain"])
    normalise = site_of if by_site else bare_domain
    normalised = np.array([normalise(str(d)) for d in raw_names], dtype=object)
    names, inverse = np.unique(normalised, return_inverse=True)
    domain_codes = inverse.astype(np.int32)[raw_codes]  # int32: half the memory at 10 M rows
    asns = verdicts["probe_asn"].astype("Int64").to_numpy(dtype=np.int64, na_value=_MISSING_ASN)
    times, per_unit = utc_times(verdicts["measured_at"])
    # int32 positions (fewer than 2**31 verdicts): half of lexsort's int64, for every row.
    order = np.lexsort((times, asns, domain_codes)).astype(np.int32)
    d_s = domain_codes[order]
    del domain_codes
    a_s = asns[order]
    del asns
    t_s = in_ns(times[order], per_unit)
    ids = verdicts["measurement_id"].array
    tie = (d_s[1:] == d_s[:-1]) & (a_s[1:] == a_s[:-1]) & (t_s[1:] == t_s[:-1])
    if tie.any():
        edges = np.diff(np.concatenate(([0], tie.astype(np.int8), [0])))
        for lo, hi in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            part = order[lo : hi + 1]
            keys = np.array([str(x) for x in ids.take(part)], dtype=object)
            order[lo : hi + 1] = part[np.argsort(keys, kind="stable")]
    return names, d_s, a_s, t_s, order, ids


def _counts_before(flags: np.ndarray) -> np.ndarray:
    """``[k]``: how many of the first k flags are set (int32: fewer than 2**31 verdicts)."""
    out = np.zeros(len(flags) + 1, dtype=np.int32)
    np.cumsum(flags, dtype=np.int32, out=out[1:])
    return out


def _sorted_columns(verdicts: pd.DataFrame, by_site: bool) -> _Sorted:
    names, d_s, a_s, t_s, order, ids = _series_order(verdicts, by_site)
    bounds = np.flatnonzero((d_s[1:] != d_s[:-1]) | (a_s[1:] != a_s[:-1])) + 1
    starts = np.concatenate(([0], bounds))
    series_domains, series_asns = d_s[starts], a_s[starts]
    del d_s, a_s
    states = _states(verdicts["status"])[order]
    kind_codes, kind_names = codes(verdicts["blocking"])
    kind_ok = np.array([isinstance(k, str) for k in kind_names] + [False], dtype=bool)
    kinds = np.where(kind_ok[kind_codes], kind_codes, -1).astype(np.int32)[order]
    confirmed = verdicts["confirmed"].fillna(False).astype(bool).to_numpy()[order]
    return _Sorted(
        names=names,
        domains=series_domains,
        asns=series_asns,
        times=t_s,
        order=order,
        ids=ids,
        states=states,
        kinds=kinds,
        kind_names=kind_names,
        confirmed=confirmed,
        starts=starts,
        stops=np.concatenate((bounds, [len(order)])),
        blocked_cum=_counts_before(states == _BLOCKED),
        accessible_cum=_counts_before(states == _ACCESSIBLE),
    )


@dataclass(frozen=True)
class _Series:
    """One (domain, network) series in time order: numpy views into the sorted columns."""

    times: np.ndarray
    states: np.ndarray
    confirmed: np.ndarray
    kinds: np.ndarray
    rows: np.ndarray  # positions in the input frame (for the measurement ids)
    #: Blocked and accessible verdicts before each position (``[k]``: among the first k).
    blocked_before: np.ndarray
    accessible_before: np.ndarray


def _episodes_of(
    domain: str,
    asn_value: int | None,
    series: _Series,
    ids: Any,
    kind_names: list[object],
    rule: EpisodeRule,
) -> list[dict[str, object]]:
    states, times, confirmed, kinds = series.states, series.times, series.confirmed, series.kinds
    blocked, accessible = series.blocked_before, series.accessible_before
    out = []
    for start, last, before, after, ongoing in _scan(states, confirmed, rule, kinds):
        window = slice(start, last + 1)
        in_block = states[window] == _BLOCKED
        methods = Counter(str(kind_names[k]) for k in kinds[window][in_block].tolist() if k >= 0)
        gaps = np.diff(times[start : last + 1])
        t0, t1 = int(times[start]), int(times[last])
        lower = (t1 - t0) / _DAY_NS
        upper = (int(times[after]) - int(times[before])) / _DAY_NS if before >= 0 and after >= 0 else None
        out.append(
            {
                "domain": domain,
                "probe_asn": asn_value,
                "blocking": methods.most_common(1)[0][0] if methods else None,
                "first_blocked": pd.Timestamp(t0, tz="UTC"),
                "last_blocked": pd.Timestamp(t1, tz="UTC"),
                "last_accessible_before": pd.Timestamp(int(times[before]), tz="UTC") if before >= 0 else None,
                "first_accessible_after": pd.Timestamp(int(times[after]), tz="UTC") if after >= 0 else None,
                "duration_days_min": round(lower, 3),
                "duration_days_max": round(upper, 3) if upper is not None else None,
                "measurements_blocked": int(blocked[last + 1] - blocked[start]),
                "measurements_total": last - start + 1,
                "ongoing": ongoing,
                "episode_id": _episode_id(domain, asn_value, t0),
                "site": site_of(domain),
                "confirmed": bool(confirmed[window][in_block].any()),
                "methods": " ".join(f"{m}:{n}" for m, n in methods.most_common()),
                "measurements_accessible": int(accessible[last + 1] - accessible[start]),
                "longest_gap_days": round(float(gaps.max()) / _DAY_NS, 3) if len(gaps) else 0.0,
                "measurement_ids": [str(x) for x in ids.take(series.rows[window])],
            }
        )
    return out


def episodes_to_records(episodes: pd.DataFrame, *, with_ids: bool = True) -> list[dict[str, object]]:
    """JSON-ready rows: times as ISO 8601 UTC, missing values as ``None``."""
    records = []
    for row in episodes.to_dict(orient="records"):
        clean: dict[str, object] = {}
        for key, value in row.items():
            if key == "measurement_ids" and not with_ids:
                continue
            if isinstance(value, pd.Timestamp):
                clean[key] = value.strftime("%Y-%m-%dT%H:%M:%SZ")
            elif value is None or (not isinstance(value, list | str) and pd.isna(value)):
                clean[key] = None
            elif isinstance(value, np.integer):
                clean[key] = int(value)
            elif isinstance(value, np.floating):
                clean[key] = float(value)
            else:
                clean[key] = value
        records.append(clean)
    return records


__all__ = [
    "DEFAULT_RULE",
    "EPISODE_COLUMNS",
    "EXTRA_COLUMNS",
    "MIRRORS",
    "EpisodeRule",
    "bare_domain",
    "episodes_to_records",
    "find_episodes",
    "site_of",
]

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

import numpy as np
import pandas as pd

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
    states = np.full(len(status), _NEUTRAL, dtype=np.int8)
    values = status.to_numpy()
    states[values == "blocked"] = _BLOCKED
    states[values == "accessible"] = _ACCESSIBLE
    return states


def _episode_id(domain: str, asn: object, first_ns: int) -> str:
    return hashlib.sha256(f"{domain}|{asn}|{first_ns}".encode()).hexdigest()[:16]


def _scan(
    states: list[int],
    confirmed: list[bool],
    rule: EpisodeRule,
    methods: list[str | None] | None = None,
) -> list[tuple[int, int, int, int, bool]]:
    """Episodes of one series as index tuples ``(start, last_blocked, accessible_before,
    accessible_after, ongoing)``; ``-1`` where there is no such measurement.

    An open episode belongs to one method (``methods[i]``, the verdict's ``blocking``).
    A blocked verdict of another method neither extends it (``last_blocked`` stays at the
    episode's own last verdict) nor, alone, opens a new one: it counts only when the
    episode's own method is seen again after it (then it was inside the episode), or when
    the other method persists as an episode would open (``open_after`` in a row, or one
    confirmed), in which case the episode ends at its own last verdict and a new one of
    the new method starts, with ``accessible_before`` unknown (it follows a block).
    """
    kinds = methods if methods is not None else [None] * len(states)
    found: list[tuple[int, int, int, int, bool]] = []
    open_ = False
    pending_start = -1
    pending = 0
    before_pending = -1
    last_accessible = -1
    start = last_blocked = before = -1
    method: str | None = None
    streak = 0
    streak_first = -1
    other = 0
    other_start = -1
    for i, state in enumerate(states):
        if state == _BLOCKED:
            if open_:
                if method is None or kinds[i] is None or kinds[i] == method:
                    last_blocked = i
                    streak = 0
                    other = 0
                    continue
                if other == 0:
                    other_start = i
                other += 1
                if other >= rule.open_after or (rule.confirmed_opens and confirmed[i]):
                    found.append((start, last_blocked, before, -1, False))
                    start, last_blocked, before = other_start, i, -1
                    method = kinds[i]
                    other = 0
                    streak = 0
                continue
            if pending == 0:
                pending_start, before_pending = i, last_accessible
            pending += 1
            if pending >= rule.open_after or (rule.confirmed_opens and confirmed[i]):
                open_ = True
                start, last_blocked, before = pending_start, i, before_pending
                method = kinds[i]
                streak = 0
                pending = 0
                other = 0
        elif state == _ACCESSIBLE:
            last_accessible = i
            other = 0
            if open_:
                streak += 1
                if streak == 1:
                    streak_first = i
                if streak >= rule.close_after:
                    found.append((start, last_blocked, before, streak_first, False))
                    open_ = False
                    streak = 0
            else:
                pending = 0
    if open_:
        found.append((start, last_blocked, before, -1, True))
    return found


def find_episodes(
    verdicts: pd.DataFrame, rule: EpisodeRule = DEFAULT_RULE, *, by_site: bool = False
) -> pd.DataFrame:
    """Episodes from a verdict frame (:func:`analysis.verdicts.verdicts_frame` or any frame
    with ``measurement_id, domain, probe_asn, measured_at, status, blocking, confirmed``).

    Domains are compared without ``www.``.  With ``by_site`` a site and its mirrors form
    one series, which answers "could readers reach the publication at all".
    """
    columns = [*EPISODE_COLUMNS, *EXTRA_COLUMNS]
    if verdicts.empty:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(
        {
            "measurement_id": verdicts["measurement_id"].to_numpy(),
            "domain": verdicts["domain"].map(site_of if by_site else bare_domain),
            "probe_asn": verdicts["probe_asn"].astype("Int64"),
            "t": pd.to_datetime(verdicts["measured_at"], utc=True).dt.as_unit("ns").astype("int64"),
            "status": verdicts["status"].to_numpy(),
            "blocking": verdicts["blocking"].to_numpy(),
            "confirmed": verdicts["confirmed"].fillna(False).astype(bool).to_numpy(),
        }
    )
    frame = frame.sort_values(["domain", "probe_asn", "t", "measurement_id"], kind="mergesort")
    rows: list[dict[str, object]] = []
    for (domain, asn), group in frame.groupby(["domain", "probe_asn"], sort=True, dropna=False):
        rows.extend(_episodes_of(str(domain), asn, group, rule))
    out = pd.DataFrame(rows, columns=columns)
    for name in ("first_blocked", "last_blocked", "last_accessible_before", "first_accessible_after"):
        out[name] = pd.to_datetime(out[name], utc=True)
    out["probe_asn"] = out["probe_asn"].astype("Int64")
    return out.sort_values(["domain", "probe_asn", "first_blocked"], kind="mergesort").reset_index(drop=True)


def _episodes_of(domain: str, asn: object, group: pd.DataFrame, rule: EpisodeRule) -> list[dict[str, object]]:
    states = _states(group["status"])
    if not (states == _BLOCKED).any():
        return []
    times = group["t"].to_numpy()
    confirmed = group["confirmed"].to_numpy()
    blocking = group["blocking"].to_numpy()
    ids = group["measurement_id"].to_numpy()
    blocked_cum = np.cumsum(states == _BLOCKED)
    accessible_cum = np.cumsum(states == _ACCESSIBLE)
    asn_value = None if pd.isna(asn) else int(asn)
    out = []
    kinds = [m if isinstance(m, str) else None for m in blocking]
    for start, last, before, after, ongoing in _scan(states.tolist(), confirmed.tolist(), rule, kinds):
        window = slice(start, last + 1)
        in_block = states[window] == _BLOCKED
        methods = Counter(m for m in blocking[window][in_block] if isinstance(m, str))
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
                "measurements_blocked": int(blocked_cum[last] - (blocked_cum[start - 1] if start else 0)),
                "measurements_total": last - start + 1,
                "ongoing": ongoing,
                "episode_id": _episode_id(domain, asn_value, t0),
                "site": site_of(domain),
                "confirmed": bool(confirmed[window][in_block].any()),
                "methods": " ".join(f"{m}:{n}" for m, n in methods.most_common()),
                "measurements_accessible": int(
                    accessible_cum[last] - (accessible_cum[start - 1] if start else 0)
                ),
                "longest_gap_days": round(float(gaps.max()) / _DAY_NS, 3) if len(gaps) else 0.0,
                "measurement_ids": [str(x) for x in ids[window]],
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

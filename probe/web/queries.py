"""Each page's data, computed from one :class:`~probe.web.cache.Snapshot`.

Why one function per page returning plain JSON-ready dicts: the HTML page and its
``/api/v1/`` twin show the same figures by construction, and tests can compare them.
Every list is bounded (``limit``/``offset``, capped at :data:`MAX_LIMIT`) so that no
request walks the whole history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from analysis import report_text
from analysis.episodes import bare_domain
from analysis.verdicts import RULES
from probe.web.cache import Snapshot
from probe.web.measurement_view import measurement
from probe.web.rows import (
    MAX_LIMIT,
    NotFound,
    clamp,
    correlation_records,
    episode_records,
    episode_summary,
    episodes_by_series,
    iso,
    iso_ns,
    label,
    memo,
    networks,
    order_records,
    plain,
    simulated_count,
    verdict_row,
)
from probe.web.rows import _columns as _columns

__all__ = [
    "MAX_LIMIT",
    "NotFound",
    "bare_domain",
    "episode",
    "episode_records",
    "episode_summary",
    "episodes_list",
    "iso",
    "label",
    "measurement",
    "memo",
    "order",
    "orders_list",
    "overview",
    "site",
    "site_verdicts",
]

#: Most points one network's timeline draws; longer histories are binned.
TIMELINE_POINTS = 400
STATUS_ORDER = ("blocked", "accessible", "down", "inconclusive", "probe_offline")


def _span_slice(snap: Snapshot, key: tuple[str, int | None], since: int | None, until: int | None) -> slice:
    start, stop = snap.series[key]
    times = snap.times[start:stop]
    lo = start + (int(np.searchsorted(times, since, side="left")) if since is not None else 0)
    hi = start + (int(np.searchsorted(times, until, side="left")) if until is not None else stop - start)
    return slice(lo, hi)


def _ns(value: datetime | None) -> int | None:
    return None if value is None else pd.Timestamp(value).as_unit("ns").value


def _cell(
    snap: Snapshot,
    key: tuple[str, int | None],
    lo: int | None,
    hi: int | None,
    now_ns: int,
    open_id: str | None,
) -> dict[str, Any]:
    """One site on one network: its latest verdict in the period, or nothing."""
    empty = {"asn": key[1], "status": None}
    if key not in snap.series:
        return empty
    part = _span_slice(snap, key, lo, hi)
    if part.stop <= part.start:
        return empty
    c = _columns(snap)
    i = part.stop - 1
    at = int(snap.times[i])
    blocking = c["blocking"][i]
    return {
        "asn": key[1],
        "status": c["status"][i],
        "blocking": blocking if isinstance(blocking, str) else None,
        "measured_at": iso_ns(at),
        "age_seconds": max(0, (now_ns - at) // 1_000_000_000),
        "measurement_id": c["measurement_id"][i],
        "open_episode": open_id,
    }


def _overview_rows(
    snap: Snapshot,
    domains: list[str],
    nets: list[dict[str, Any]],
    lo: int | None,
    hi: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Sites with at least one verdict in the period, those with open episodes first."""
    open_by_key = {
        (e["domain"], e["probe_asn"]): e["episode_id"] for e in episode_records(snap) if e["ongoing"]
    }
    now_ns = int(now.timestamp() * 1e9)
    rows = []
    for domain in domains:
        keys = [(domain, net["asn"]) for net in nets]
        cells = [_cell(snap, key, lo, hi, now_ns, open_by_key.get(key)) for key in keys]
        if all(c["status"] is None for c in cells):
            continue
        open_count = sum(1 for c in cells if c.get("open_episode"))
        rows.append(
            {
                "domain": domain,
                "category": snap.categories.get(domain),
                "open_episodes": open_count,
                "cells": cells,
            }
        )
    rows.sort(key=lambda r: (-cast(int, r["open_episodes"]), r["domain"]))
    return rows


def overview(
    snap: Snapshot,
    *,
    category: str | None = None,
    asn: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """Sites × networks: the latest verdict in the period and its age; open episodes first."""
    now = now or datetime.now(UTC)
    limit, offset = clamp(limit, offset)
    nets = [n for n in networks(snap) if asn is None or n["asn"] == asn]
    domains = sorted({d for d, _ in snap.series})
    if category:
        domains = [d for d in domains if snap.categories.get(d) == category]
    rows = _overview_rows(snap, domains, nets, _ns(since), _ns(until), now)
    open_list = [
        e
        for e in episode_records(snap)
        if e["ongoing"]
        and (asn is None or e["probe_asn"] == asn)
        and (not category or snap.categories.get(e["domain"]) == category)
    ]
    return {
        "rules_version": snap.rules_version,
        "measurements": snap.measurements,
        "simulated": snap.simulated_any,
        "generated_at": iso(now),
        "filters": {"category": category, "asn": asn, "from": iso(since), "to": iso(until)},
        "networks": nets,
        "categories": sorted(set(snap.categories.values())),
        "open_episodes": open_list[:MAX_LIMIT],
        "total_sites": len(rows),
        "limit": limit,
        "offset": offset,
        "sites": rows[offset : offset + limit],
    }


def _timeline(snap: Snapshot, part: slice, t0: int, t1: int) -> list[dict[str, Any]]:
    """Points for the drawn timeline: each verdict, or (when many) one per time bin,
    coloured by the worst conclusive status in the bin."""
    c = _columns(snap)
    times = snap.times[part]
    status = c["status"][part]
    ids = c["measurement_id"][part]
    width = max(1, t1 - t0)
    if len(times) <= TIMELINE_POINTS:
        return [
            {"x": round((int(t) - t0) / width, 5), "status": s, "measurement_id": m, "n": 1}
            for t, s, m in zip(times, status, ids, strict=True)
        ]
    # A series is sorted by time, so each bin is one run of rows: reduce over the runs.
    bins = np.minimum(((times - t0) * TIMELINE_POINTS) // width, TIMELINE_POINTS - 1)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(bins)) + 1))
    worst = np.minimum.reduceat(_status_ranks(snap)[part], starts)
    counts = np.diff(np.append(starts, len(bins)))
    return [
        {
            "x": round(float(bins[a]) / TIMELINE_POINTS, 5),
            "status": STATUS_ORDER[r] if r < len(STATUS_ORDER) else status[a],
            "measurement_id": ids[a],
            "n": int(n),
        }
        for a, r, n in zip(starts.tolist(), worst.tolist(), counts.tolist(), strict=True)
    ]


def _status_ranks(snap: Snapshot) -> np.ndarray:
    """Each verdict's place in :data:`STATUS_ORDER` (worst first; other statuses last)."""
    ranks = {s: i for i, s in enumerate(STATUS_ORDER)}
    return memo(
        snap,
        "status_ranks",
        lambda: pd.Series(_columns(snap)["status"]).map(ranks).fillna(len(STATUS_ORDER)).to_numpy("int64"),
    )


class _Scale:
    """Where a time falls on a site's timelines, 0 (first measurement) to 1 (last)."""

    def __init__(self, t0: int, t1: int) -> None:
        self.t0, self.t1, self.width = t0, t1, max(1, t1 - t0)

    def __call__(self, value: str | None) -> float | None:
        if value is None:
            return None
        at = pd.Timestamp(value).value
        return round((at - self.t0) / self.width, 5) if self.t0 <= at <= self.t1 else None


def _brackets(episodes: list[dict[str, Any]], x: _Scale) -> list[dict[str, Any]]:
    """Each episode with its certain (x_min) and outer (x_max) extent on the timeline."""
    out = []
    for found in sorted(episodes, key=lambda e: e["first_blocked"]):
        summary = dict(found)
        summary["x_min"] = [x(summary["first_blocked"]), x(summary["last_blocked"])]
        before, after = summary["last_accessible_before"], summary["first_accessible_after"]
        summary["x_max"] = [x(before) if before else summary["x_min"][0], x(after) if after else 1.0]
        out.append(summary)
    return out


def _site_network(snap: Snapshot, key: tuple[str, int | None], x: _Scale) -> dict[str, Any]:
    part = slice(*snap.series[key])
    c = _columns(snap)
    counts = {s: int((c["status"][part] == s).sum()) for s in STATUS_ORDER}
    return {
        "asn": key[1],
        "network": label(snap, key[1]),
        "measurements": part.stop - part.start,
        "counts": counts,
        "conclusive": counts["blocked"] + counts["accessible"],
        "first": iso_ns(int(snap.times[part.start])),
        "last": iso_ns(int(snap.times[part.stop - 1])),
        "simulated": bool(c["simulated"][part].any()),
        "episodes": _brackets(episodes_by_series(snap).get(key, []), x),
        "timeline": _timeline(snap, part, x.t0, x.t1),
    }


def site(snap: Snapshot, domain: str) -> dict[str, Any]:
    """Per network: counts, a timeline of verdicts, episodes as brackets, orders overlaid."""
    domain = bare_domain(domain)
    keys = sorted((k for k in snap.series if k[0] == domain), key=lambda k: (k[1] is None, k[1] or 0))
    if not keys:
        raise NotFound(f"no measurements of {domain}")
    t0 = int(min(snap.times[snap.series[k][0]] for k in keys))
    t1 = int(max(snap.times[snap.series[k][1] - 1] for k in keys))
    x = _Scale(t0, t1)
    orders = [dict(m) for m in order_records(snap) if domain in m["domains"]]
    for order in orders:
        marks = ((kind, x(order[kind])) for kind in ("issued_on", "ordered_end", "withdrawn_on"))
        order["marks"] = [{"kind": kind, "x": at} for kind, at in marks if at is not None]
    nets = [_site_network(snap, key, x) for key in keys]
    return {
        "domain": domain,
        "category": snap.categories.get(domain),
        "rules_version": snap.rules_version,
        "from": iso_ns(t0),
        "to": iso_ns(t1),
        "simulated": any(n["simulated"] for n in nets),
        "networks": nets,
        "orders": orders,
    }


def site_verdicts(
    snap: Snapshot,
    domain: str,
    *,
    asn: int | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """A page of one site's verdicts, newest first."""
    domain = bare_domain(domain)
    limit, offset = clamp(limit, offset)
    keys = [k for k in snap.series if k[0] == domain and (asn is None or k[1] == asn)]
    if not keys:
        raise NotFound(f"no measurements of {domain}")
    index = np.concatenate([np.arange(*snap.series[k]) for k in keys])
    order = np.argsort(-snap.times[index], kind="stable")
    chosen = index[order][offset : offset + limit]
    rows = [verdict_row(snap, int(i)) for i in chosen]
    return {"domain": domain, "total": len(index), "limit": limit, "offset": offset, "verdicts": rows}


def _evidence_at(snap: Snapshot, key: tuple[str, int | None], when: str | None, status: str) -> dict | None:
    if when is None or key not in snap.series:
        return None
    start, stop = snap.series[key]
    t = pd.Timestamp(when).value
    times = snap.times[start:stop]
    lo = int(np.searchsorted(times, t, side="left"))
    c = _columns(snap)
    for i in range(start + lo, stop):
        if int(snap.times[i]) != t:
            break
        if c["status"][i] == status:
            return {"at": when, "measurement_id": c["measurement_id"][i], "status": status}
    return {"at": when, "measurement_id": None, "status": status}


def _bounds(snap: Snapshot, summary: dict[str, Any], ids: list[str]) -> dict[str, dict | None]:
    """The four bounds, each with the measurement that sets it."""
    key = (summary["domain"], summary["probe_asn"])
    return {
        "last_accessible_before": _evidence_at(snap, key, summary["last_accessible_before"], "accessible"),
        "first_blocked": {"at": summary["first_blocked"], "measurement_id": ids[0], "status": "blocked"},
        "last_blocked": {"at": summary["last_blocked"], "measurement_id": ids[-1], "status": "blocked"},
        "first_accessible_after": _evidence_at(snap, key, summary["first_accessible_after"], "accessible"),
    }


def _rules(part: pd.DataFrame) -> list[dict[str, Any]]:
    """The verdict rules that fired in an episode, most frequent first, with an example each."""
    rules = []
    for (rule_id, status), group in part.groupby(["rule_id", "status"], sort=False):
        rule = RULES.get(rule_id)
        rules.append(
            {
                "rule_id": rule_id,
                "status": status,
                "count": len(group),
                "summary": rule.summary if rule else None,
                "example_reason": group["reason"].iat[0],
                "example_measurement_id": group["measurement_id"].iat[0],
            }
        )
    rules.sort(key=lambda r: -r["count"])
    return rules


def citations(summary: dict[str, Any], ep: pd.Series, simulated: int, total: int) -> dict[str, str]:
    """The episode's sentence in every language, as the report words it; with simulated or
    lab measurements behind it, followed by the report's notice saying so."""
    out = {}
    for lang in report_text.LANGUAGES:
        sentence = report_text.blocked_sentence(
            lang=lang,
            domain=summary["domain"],
            network=summary["network"],
            method=summary["blocking"],
            first=ep["first_blocked"].to_pydatetime(),
            last=ep["last_blocked"].to_pydatetime(),
            low=float(ep["duration_days_min"]),
            high=None if pd.isna(ep["duration_days_max"]) else float(ep["duration_days_max"]),
            ongoing=bool(ep["ongoing"]),
            blocked=int(ep["measurements_blocked"]),
            total=int(ep["measurements_total"]),
        )
        if simulated:
            sentence += " " + report_text.simulated_sentence(lang, simulated, total)
        out[lang] = sentence
    return out


def episode(snap: Snapshot, episode_id: str, *, limit: int | None = None, offset: int | None = None) -> dict:
    """Bounds with their evidence, method, rules and reasons, orders, citations."""
    if episode_id not in snap.episode_rows:
        raise NotFound(f"no episode {episode_id}")
    ep = snap.episodes.iloc[snap.episode_rows[episode_id]]
    summary = episode_summary(snap, ep)
    ids = list(ep["measurement_ids"])
    rows = [snap.rows[m] for m in ids if m in snap.rows]
    simulated, total = simulated_count(snap, ids)
    limit, offset = clamp(limit, offset)
    return {
        **summary,
        "rules_version": snap.rules_version,
        "simulated": simulated > 0,
        "methods": ep["methods"],
        "measurements_accessible": int(ep["measurements_accessible"]),
        "longest_gap_days": plain(ep["longest_gap_days"]),
        "bounds": _bounds(snap, summary, ids),
        "rules": _rules(snap.verdicts.iloc[rows]),
        "orders": [r for r in correlation_records(snap) if episode_id in r["episode_ids"]],
        "citation": citations(summary, ep, simulated, total),
        "measurement_total": len(rows),
        "limit": limit,
        "offset": offset,
        "measurements": [verdict_row(snap, i) for i in rows[offset : offset + limit]],
    }


def episodes_list(
    snap: Snapshot,
    *,
    domain: str | None = None,
    asn: int | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """Episodes newest first (by first blocked measurement)."""
    limit, offset = clamp(limit, offset)
    eps = episode_records(snap)
    if domain is not None:
        eps = [e for e in eps if e["domain"] == bare_domain(domain)]
    if asn is not None:
        eps = [e for e in eps if e["probe_asn"] == asn]
    return {"total": len(eps), "limit": limit, "offset": offset, "episodes": eps[offset : offset + limit]}


def orders_list(snap: Snapshot, *, limit: int | None = None, offset: int | None = None) -> dict[str, Any]:
    limit, offset = clamp(limit, offset)
    rows = [dict(o) for o in order_records(snap)]
    rows.sort(key=lambda o: o["issued_on"] or "", reverse=True)
    measured = {d for d, _ in snap.series}
    for o in rows:
        o["measured"] = any(d in measured for d in o["domains"])
    return {"total": len(rows), "limit": limit, "offset": offset, "orders": rows[offset : offset + limit]}


def order(snap: Snapshot, order_id: str) -> dict[str, Any]:
    """Enforcement per network: lag, days past the ordered end, after withdrawal; sources."""
    match = snap.orders[snap.orders["order_id"] == order_id] if len(snap.orders) else snap.orders
    if not len(match):
        raise NotFound(f"no order {order_id}")
    meta = next(dict(o) for o in order_records(snap) if o["order_id"] == order_id)
    rows = [r for r in correlation_records(snap) if r["order_id"] == order_id]
    return {**meta, "rules_version": snap.rules_version, "enforcement": rows}

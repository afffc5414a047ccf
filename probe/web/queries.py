"""Each page's data, computed from one :class:`~probe.web.cache.Snapshot`.

Why one function per page returning plain JSON-ready dicts: the HTML page and its
``/api/v1/`` twin show the same figures by construction, and tests can compare them.
Every list is bounded (``limit``/``offset``, capped at :data:`MAX_LIMIT`) so that no
request walks the whole history.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from analysis import report_text
from analysis.episodes import bare_domain
from analysis.networks import network_label
from analysis.verdicts import RULES
from probe.web.cache import SIMULATED_MARKS, Snapshot, lab_network
from probe.web.source import Source

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
#: Most points one network's timeline draws; longer histories are binned.
TIMELINE_POINTS = 400
STATUS_ORDER = ("blocked", "accessible", "down", "inconclusive", "probe_offline")
OONI_EXPLORER = "https://explorer.ooni.org/m/"


class NotFound(LookupError):
    """No such site, episode, order or measurement."""


def memo(snap: Snapshot, key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per snapshot (a snapshot never changes, so neither does this)."""
    try:
        return snap.memo[key]
    except KeyError:
        value = snap.memo[key] = compute()
        return value


def episode_records(snap: Snapshot) -> list[dict[str, Any]]:
    """Every episode's summary, newest first, computed once per snapshot."""
    return memo(snap, "episodes", lambda: [episode_summary(snap, ep) for _, ep in snap.episodes.iterrows()])


def episodes_by_series(snap: Snapshot) -> dict[tuple[str, int | None], list[dict[str, Any]]]:
    def group() -> dict[tuple[str, int | None], list[dict[str, Any]]]:
        out: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
        for e in episode_records(snap):
            out.setdefault((e["domain"], e["probe_asn"]), []).append(e)
        return out

    return memo(snap, "episodes_by_series", group)


def correlation_records(snap: Snapshot) -> list[dict[str, Any]]:
    return memo(
        snap, "correlation", lambda: [correlation_row(snap, r) for _, r in snap.correlation.iterrows()]
    )


def episode_of_measurement(snap: Snapshot) -> dict[str, list[str]]:
    def index() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for episode_id, ids in zip(
            snap.episodes["episode_id"], snap.episodes["measurement_ids"], strict=True
        ):
            for m in ids:
                out.setdefault(m, []).append(episode_id)
        return out

    return memo(snap, "episode_of_measurement", index)


def clamp(limit: int | None, offset: int | None) -> tuple[int, int]:
    limit = DEFAULT_LIMIT if limit is None else max(1, min(int(limit), MAX_LIMIT))
    return limit, max(0, int(offset or 0))


def iso_ns(value: int) -> str:
    return datetime.fromtimestamp(value / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(value: object) -> str | None:
    if value is None or (not isinstance(value, str | list) and pd.isna(value)):
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(value: object) -> float | int | None:
    if value is None or pd.isna(value):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value)
    # mypy: what is left is already a plain JSON value (str, int, list)
    return value  # type: ignore[return-value]


def label(snap: Snapshot, asn: object) -> str:
    number = None if asn is None or pd.isna(asn) else int(asn)  # type: ignore[call-overload]  # a pandas scalar
    return network_label(number, snap.network_names.get(number) if number is not None else None)


def networks(snap: Snapshot) -> list[dict[str, Any]]:
    asns = sorted({asn for _, asn in snap.series if asn is not None})
    return [{"asn": asn, "label": label(snap, asn)} for asn in asns]


def episode_summary(snap: Snapshot, ep: pd.Series) -> dict[str, Any]:
    asn = _num(ep["probe_asn"])
    return {
        "episode_id": ep["episode_id"],
        "domain": ep["domain"],
        "probe_asn": asn,
        "network": label(snap, asn),
        "blocking": ep["blocking"] if isinstance(ep["blocking"], str) else None,
        "confirmed": bool(ep["confirmed"]),
        "first_blocked": iso(ep["first_blocked"]),
        "last_blocked": iso(ep["last_blocked"]),
        "last_accessible_before": iso(ep["last_accessible_before"]),
        "first_accessible_after": iso(ep["first_accessible_after"]),
        "duration_days_min": _num(ep["duration_days_min"]),
        "duration_days_max": _num(ep["duration_days_max"]),
        "measurements_blocked": int(ep["measurements_blocked"]),
        "measurements_total": int(ep["measurements_total"]),
        "ongoing": bool(ep["ongoing"]),
    }


def _span_slice(snap: Snapshot, key: tuple[str, int | None], since: int | None, until: int | None) -> slice:
    start, stop = snap.series[key]
    times = snap.times[start:stop]
    lo = start + (int(np.searchsorted(times, since, side="left")) if since is not None else 0)
    hi = start + (int(np.searchsorted(times, until, side="left")) if until is not None else stop - start)
    return slice(lo, hi)


def _ns(value: datetime | None) -> int | None:
    return None if value is None else pd.Timestamp(value).as_unit("ns").value


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
    lo, hi = _ns(since), _ns(until)
    nets = [n for n in networks(snap) if asn is None or n["asn"] == asn]
    ongoing = [e for e in episode_records(snap) if e["ongoing"]]
    open_by_key = {(e["domain"], e["probe_asn"]): e["episode_id"] for e in ongoing}
    domains = sorted({d for d, _ in snap.series})
    if category:
        domains = [d for d in domains if snap.categories.get(d) == category]
    status, blocking, ids = memo(
        snap,
        "columns",
        lambda: (
            snap.verdicts["status"].to_numpy(),
            snap.verdicts["blocking"].to_numpy(),
            snap.verdicts["measurement_id"].to_numpy(),
        ),
    )
    now_ns = int(now.timestamp() * 1e9)
    rows = []
    for domain in domains:
        cells = []
        for net in nets:
            key = (domain, net["asn"])
            if key not in snap.series:
                cells.append({"asn": net["asn"], "status": None})
                continue
            part = _span_slice(snap, key, lo, hi)
            if part.stop <= part.start:
                cells.append({"asn": net["asn"], "status": None})
                continue
            i = part.stop - 1
            at = int(snap.times[i])
            cells.append(
                {
                    "asn": net["asn"],
                    "status": status[i],
                    "blocking": blocking[i] if isinstance(blocking[i], str) else None,
                    "measured_at": iso_ns(at),
                    "age_seconds": max(0, (now_ns - at) // 1_000_000_000),
                    "measurement_id": ids[i],
                    "open_episode": open_by_key.get(key),
                }
            )
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
    open_list = [
        e
        for e in ongoing
        if (asn is None or e["probe_asn"] == asn)
        and (not category or snap.categories.get(e["domain"]) == category)
    ]
    return {
        "rules_version": snap.rules_version,
        "measurements": snap.measurements,
        "simulated": snap.simulated_any,
        "generated_at": iso(now),
        "filters": {
            "category": category,
            "asn": asn,
            "from": iso(since),
            "to": iso(until),
        },
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
    v = snap.verdicts
    times = snap.times[part]
    status = v["status"].to_numpy()[part]
    ids = v["measurement_id"].to_numpy()[part]
    width = max(1, t1 - t0)
    if len(times) <= TIMELINE_POINTS:
        return [
            {"x": round((int(t) - t0) / width, 5), "status": s, "measurement_id": m, "n": 1}
            for t, s, m in zip(times, status, ids, strict=True)
        ]
    bins = np.minimum(((times - t0) * TIMELINE_POINTS) // width, TIMELINE_POINTS - 1)
    out = []
    for b in np.unique(bins):
        sel = bins == b
        here = status[sel]
        chosen = next((s for s in STATUS_ORDER if (here == s).any()), here[0])
        first = int(np.argmax(sel))
        out.append(
            {
                "x": round(float(b) / TIMELINE_POINTS, 5),
                "status": chosen,
                "measurement_id": ids[first],
                "n": int(sel.sum()),
            }
        )
    return out


def _orders_naming(snap: Snapshot, domain: str) -> list[dict[str, Any]]:
    metas = memo(
        snap,
        "orders_meta",
        lambda: [order_meta(o) for _, o in snap.orders.iterrows()] if len(snap.orders) else [],
    )
    return [dict(m) for m in metas if domain in m["domains"]]


def order_meta(order: pd.Series) -> dict[str, Any]:
    return {
        "order_id": order["order_id"],
        "issued_on": iso(order["issued_on"]),
        "ordered_end": iso(order["ordered_end"]),
        "withdrawn_on": iso(order["withdrawn_on"]),
        "lifted_on": iso(order["lifted_on"]),
        "authority": order["authority"],
        "legal_basis": order["legal_basis"],
        "domains": list(order["domains"]),
        "duration_days": _num(order["duration_days"]),
        "source_url": order["source_url"],
        "notes": order["notes"],
    }


def site(snap: Snapshot, domain: str) -> dict[str, Any]:
    """Per network: counts, a timeline of verdicts, episodes as brackets, orders overlaid."""
    domain = bare_domain(domain)
    keys = sorted((k for k in snap.series if k[0] == domain), key=lambda k: (k[1] is None, k[1] or 0))
    if not keys:
        raise NotFound(f"no measurements of {domain}")
    starts = [snap.series[k][0] for k in keys]
    stops = [snap.series[k][1] for k in keys]
    t0 = int(min(snap.times[s] for s in starts))
    t1 = int(max(snap.times[s - 1] for s in stops))
    orders = _orders_naming(snap, domain)
    width = max(1, t1 - t0)

    def x(value: str | None) -> float | None:
        if value is None:
            return None
        at = pd.Timestamp(value).value
        return round((at - t0) / width, 5) if t0 <= at <= t1 else None

    for order in orders:
        order["marks"] = [
            {"kind": kind, "x": x(order[kind])}
            for kind in ("issued_on", "ordered_end", "withdrawn_on")
            if x(order[kind]) is not None
        ]
    status_all = snap.verdicts["status"].to_numpy()
    sim_all = snap.verdicts["simulated"].to_numpy()
    by_series = episodes_by_series(snap)
    nets = []
    for key in keys:
        part = slice(*snap.series[key])
        counts = {s: int((status_all[part] == s).sum()) for s in STATUS_ORDER}
        episodes = []
        for found in sorted(by_series.get(key, []), key=lambda e: e["first_blocked"]):
            summary = dict(found)
            summary["x_min"] = [x(summary["first_blocked"]), x(summary["last_blocked"])]
            outer = [summary["last_accessible_before"], summary["first_accessible_after"]]
            summary["x_max"] = [
                x(outer[0]) if outer[0] else summary["x_min"][0],
                x(outer[1]) if outer[1] else 1.0,
            ]
            episodes.append(summary)
        nets.append(
            {
                "asn": key[1],
                "network": label(snap, key[1]),
                "measurements": part.stop - part.start,
                "counts": counts,
                "conclusive": counts["blocked"] + counts["accessible"],
                "first": iso(pd.Timestamp(int(snap.times[part.start]), tz="UTC")),
                "last": iso(pd.Timestamp(int(snap.times[part.stop - 1]), tz="UTC")),
                "simulated": bool(sim_all[part].any()),
                "episodes": episodes,
                "timeline": _timeline(snap, part, t0, t1),
            }
        )
    return {
        "domain": domain,
        "category": snap.categories.get(domain),
        "rules_version": snap.rules_version,
        "from": iso(pd.Timestamp(t0, tz="UTC")),
        "to": iso(pd.Timestamp(t1, tz="UTC")),
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


def _columns(snap: Snapshot) -> dict[str, np.ndarray]:
    """The verdict frame's columns as arrays: a row from arrays costs microseconds, from
    ``DataFrame.iloc`` a fraction of a millisecond."""
    return memo(
        snap, "arrays", lambda: {name: snap.verdicts[name].to_numpy() for name in snap.verdicts.columns}
    )


def verdict_row(snap: Snapshot, i: int) -> dict[str, Any]:
    c = _columns(snap)
    asn = c["probe_asn"][i]
    asn = None if asn is None or pd.isna(asn) else int(asn)
    blocking = c["blocking"][i]
    return {
        "measurement_id": c["measurement_id"][i],
        "measured_at": iso_ns(int(snap.times[i])),
        "domain": c["domain"][i],
        "url": c["url"][i],
        "probe_asn": asn,
        "network": label(snap, asn),
        "status": c["status"][i],
        "blocking": blocking if isinstance(blocking, str) else None,
        "confirmed": bool(c["confirmed"][i]),
        "rule_id": c["rule_id"][i],
        "reason": c["reason"][i],
        "rules_version": c["rules_version"][i],
        "simulated": bool(c["simulated"][i]),
    }


def _evidence_at(snap: Snapshot, key: tuple[str, int | None], when: str | None, status: str) -> dict | None:
    if when is None or key not in snap.series:
        return None
    start, stop = snap.series[key]
    t = pd.Timestamp(when).value
    times = snap.times[start:stop]
    lo = int(np.searchsorted(times, t, side="left"))
    statuses = snap.verdicts["status"].to_numpy()
    for i in range(start + lo, stop):
        if int(snap.times[i]) != t:
            break
        if statuses[i] == status:
            return {"at": when, "measurement_id": snap.verdicts["measurement_id"].iat[i], "status": status}
    return {"at": when, "measurement_id": None, "status": status}


def episode(snap: Snapshot, episode_id: str, *, limit: int | None = None, offset: int | None = None) -> dict:
    """Bounds with their evidence, method, rules and reasons, orders, citations."""
    if episode_id not in snap.episode_rows:
        raise NotFound(f"no episode {episode_id}")
    ep = snap.episodes.iloc[snap.episode_rows[episode_id]]
    summary = episode_summary(snap, ep)
    key = (summary["domain"], summary["probe_asn"])
    ids = list(ep["measurement_ids"])
    bounds = {
        "last_accessible_before": _evidence_at(snap, key, summary["last_accessible_before"], "accessible"),
        "first_blocked": {"at": summary["first_blocked"], "measurement_id": ids[0], "status": "blocked"},
        "last_blocked": {"at": summary["last_blocked"], "measurement_id": ids[-1], "status": "blocked"},
        "first_accessible_after": _evidence_at(snap, key, summary["first_accessible_after"], "accessible"),
    }
    rows = [snap.rows[m] for m in ids if m in snap.rows]
    part = snap.verdicts.iloc[rows]
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
    correlation = [r for r in correlation_records(snap) if episode_id in r["episode_ids"]]
    limit, offset = clamp(limit, offset)
    citations = {
        lang: report_text.blocked_sentence(
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
        for lang in report_text.LANGUAGES
    }
    simulated = bool(part["simulated"].any())
    if simulated:
        note = {
            "en": " (Simulated or lab data: not evidence about a real network.)",
            "ru": " (Смоделированные или лабораторные данные: не свидетельство о реальной сети.)",
            "ky": " (Симуляцияланган же лабораториялык маалымат: чыныгы тармак жөнүндө далил эмес.)",
        }
        citations = {lang: text + note[lang] for lang, text in citations.items()}
    return {
        **summary,
        "rules_version": snap.rules_version,
        "simulated": simulated,
        "methods": ep["methods"],
        "measurements_accessible": int(ep["measurements_accessible"]),
        "longest_gap_days": _num(ep["longest_gap_days"]),
        "bounds": bounds,
        "rules": rules,
        "orders": correlation,
        "citation": citations,
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


def correlation_row(snap: Snapshot, row: pd.Series) -> dict[str, Any]:
    asn = _num(row["probe_asn"])
    return {
        "order_id": row["order_id"],
        "domain": row["domain"],
        "probe_asn": asn,
        "network": label(snap, asn) if asn is not None else None,
        "status": row["status"],
        "first_blocked": iso(row["first_blocked"]),
        "last_blocked": iso(row["last_blocked"]),
        "enforcement_lag_days": _num(row["enforcement_lag_days"]),
        "ordered_days": _num(row["ordered_days"]),
        "blocked_days_min": _num(row["blocked_days_min"]),
        "blocked_days_max": _num(row["blocked_days_max"]),
        "days_past_order_end": _num(row["days_past_order_end"]),
        "days_after_withdrawal": _num(row["days_after_withdrawal"]),
        "measurements_blocked": int(row["measurements_blocked"] or 0),
        "measurements_total": int(row["measurements_total"] or 0),
        "ongoing": bool(row["ongoing"]),
        "episode_ids": list(row["episode_ids"] or []),
    }


def orders_list(snap: Snapshot, *, limit: int | None = None, offset: int | None = None) -> dict[str, Any]:
    limit, offset = clamp(limit, offset)
    rows = [order_meta(o) for _, o in snap.orders.iterrows()] if len(snap.orders) else []
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
    meta = order_meta(match.iloc[0])
    rows = [r for r in correlation_records(snap) if r["order_id"] == order_id]
    return {**meta, "rules_version": snap.rules_version, "enforcement": rows}


def _obs_list(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return list(items or [])


def measurement(snap: Snapshot, source: Source, measurement_id: str) -> dict[str, Any]:
    """Every observation, the verdict and its reason, the control's view, the signature."""
    stored = source.record(measurement_id)
    if stored is None:
        raise NotFound(f"no measurement {measurement_id}")
    record = stored.record
    verdict = verdict_row(snap, snap.rows[measurement_id]) if measurement_id in snap.rows else None
    annotations = record.get("annotations") or {}
    uid = annotations.get("ooni.measurement_uid")
    control = record.get("control") or {}
    simulated = any(annotations.get(mark) == "true" for mark in SIMULATED_MARKS) or lab_network(
        record.get("probe_asn")
    )
    episode_ids = episode_of_measurement(snap).get(measurement_id, []) if verdict else []
    return {
        "id": stored.id,
        "url": record.get("url"),
        "domain": record.get("domain"),
        "role": record.get("role"),
        "started_at": record.get("started_at"),
        "runtime": record.get("runtime"),
        "run_id": record.get("run_id"),
        "probe_asn": record.get("probe_asn"),
        "probe_cc": record.get("probe_cc"),
        "network": network_label(record.get("probe_asn"), record.get("probe_network")),
        "software": f"{record.get('software_name', '')} {record.get('software_version', '')}".strip(),
        "source": stored.source,
        "simulated": simulated,
        "annotations": annotations,
        "verdict": verdict,
        "episode_ids": episode_ids,
        "probe": {
            "dns": _obs_list(record.get("dns")),
            "tcp": _obs_list(record.get("tcp")),
            "tls": _obs_list(record.get("tls")),
            "http": [_http(h) for h in _obs_list(record.get("http"))],
        },
        "control": {
            "source": control.get("source"),
            "failure": control.get("failure"),
            "dns": _obs_list(control.get("dns")),
            "tcp": _obs_list(control.get("tcp")),
            "tls": _obs_list(control.get("tls")),
            "http": [_http(h) for h in _obs_list(control.get("http"))],
        }
        if control
        else None,
        "signature": {
            "content_hash": stored.content_hash,
            "signature": stored.signature,
            "key_id": stored.key_id,
            "public_key": stored.public_key,
        },
        "ooni_explorer_url": f"{OONI_EXPLORER}{uid}" if uid else None,
    }


def _http(obs: dict[str, Any]) -> dict[str, Any]:
    """An HTTP observation without its raw body sample (which may be a hostile page):
    the length, hash and title say what was received."""
    return {k: v for k, v in obs.items() if k != "body_sample"}

"""Rows of a snapshot as plain JSON values, and the per-snapshot indexes pages share.

Why apart from :mod:`probe.web.queries`: an episode, a correlation row or a verdict is
shown by several pages, the API, the CSV tables and the feeds; one conversion here
keeps them saying the same thing.  Values derived from a snapshot are memoised on it
(a snapshot never changes, so neither do they).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from analysis.networks import network_label
from analysis.orders import CORRELATION_COLUMNS
from probe.web.cache import Snapshot

MAX_LIMIT = 500
DEFAULT_LIMIT = 100

#: An episode's summary fields, in the order the API and ``episodes.csv`` give them.
EPISODE_FIELDS = (
    "episode_id", "domain", "probe_asn", "network", "blocking", "confirmed", "first_blocked",
    "last_blocked", "last_accessible_before", "first_accessible_after", "duration_days_min",
    "duration_days_max", "measurements_blocked", "measurements_total", "ongoing",
)  # fmt: skip
#: A correlation row's fields: :data:`analysis.orders.CORRELATION_COLUMNS` with the network's name.
CORRELATION_FIELDS = tuple(
    name
    for column in CORRELATION_COLUMNS
    for name in ((column, "network") if column == "probe_asn" else (column,))
)
_COUNTS = ("measurements_blocked", "measurements_total")


class NotFound(LookupError):
    """No such site, episode, order or measurement."""


def memo(snap: Snapshot, key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per snapshot."""
    try:
        return snap.memo[key]
    except KeyError:
        value = snap.memo[key] = compute()
        return value


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


def plain(value: object) -> Any:
    """A frame's cell as a JSON value: times as ISO 8601 UTC, missing values as None."""
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    if value is None or pd.isna(value):
        return None
    if isinstance(value, date | pd.Timestamp | np.datetime64):
        return iso(value)
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value)
    return value


def label(snap: Snapshot, asn: object) -> str:
    number = None if asn is None or pd.isna(asn) else int(asn)  # type: ignore[call-overload]  # a pandas scalar
    return network_label(number, snap.network_names.get(number) if number is not None else None)


def networks(snap: Snapshot) -> list[dict[str, Any]]:
    asns = sorted({asn for _, asn in snap.series if asn is not None})
    return [{"asn": asn, "label": label(snap, asn)} for asn in asns]


def simulated_count(snap: Snapshot, ids: Iterable[str]) -> tuple[int, int]:
    """How many of these measurements are simulated or from a lab, of how many are known."""
    flags = _columns(snap)["simulated"]
    rows = [snap.rows[m] for m in ids if m in snap.rows]
    return (int(flags[rows].sum()) if rows else 0), len(rows)


def _record(snap: Snapshot, row: pd.Series, names: Iterable[str]) -> dict[str, Any]:
    out = {name: plain(row[name]) for name in names if name != "network"}
    if "network" in names:
        out["network"] = label(snap, out["probe_asn"]) if out.get("probe_asn") is not None else None
    for name in _COUNTS:
        out[name] = int(out.get(name) or 0)
    return out


def episode_summary(snap: Snapshot, ep: pd.Series) -> dict[str, Any]:
    summary = _record(snap, ep, EPISODE_FIELDS)
    summary["network"] = label(snap, summary["probe_asn"])
    summary["blocking"] = summary["blocking"] if isinstance(summary["blocking"], str) else None
    count, _total = simulated_count(snap, ep["measurement_ids"])
    summary["simulated"] = count > 0
    summary["simulated_measurements"] = count
    return {name: summary[name] for name in (*EPISODE_FIELDS, "simulated", "simulated_measurements")}


def correlation_row(snap: Snapshot, row: pd.Series) -> dict[str, Any]:
    out = _record(snap, row, CORRELATION_FIELDS)
    out["ongoing"] = bool(out["ongoing"])
    out["episode_ids"] = list(out["episode_ids"] or [])
    return out


def order_meta(order: pd.Series) -> dict[str, Any]:
    names = ("order_id", "issued_on", "ordered_end", "withdrawn_on", "lifted_on", "authority",
             "legal_basis", "domains", "duration_days", "source_url", "notes")  # fmt: skip
    meta = {name: plain(order[name]) for name in names}
    meta["domains"] = list(order["domains"])
    return meta


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


def episode_records(snap: Snapshot) -> list[dict[str, Any]]:
    """Every episode's summary, newest first."""
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
        episodes = snap.episodes
        for episode_id, ids in zip(episodes["episode_id"], episodes["measurement_ids"], strict=True):
            for m in ids:
                out.setdefault(m, []).append(episode_id)
        return out

    return memo(snap, "episode_of_measurement", index)


def order_records(snap: Snapshot) -> list[dict[str, Any]]:
    return memo(
        snap,
        "orders_meta",
        lambda: [order_meta(o) for _, o in snap.orders.iterrows()] if len(snap.orders) else [],
    )

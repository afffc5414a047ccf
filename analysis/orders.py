"""Blocking orders, and how each network enforced them.

The orders file (``analysis/data/orders.csv``) is the legal side of the record; episodes are
the technical side.  Correlating them answers what journalists ask: which ISPs obeyed,
how fast, for how long, and who kept blocking after the order ended or was withdrawn.

Rules (also in docs/episodes.md)
- The ordered end is ``issued_on`` plus ``duration_days``.  The law speaks of months, so a
  duration that is a whole number of 30-day months (30, 60, 90) counts as calendar
  months: "two months" from 26 Oct 2022 ends on 26 Dec 2022 (61 days).
- An episode *matches* an order when it is of one of the order's domains (without
  ``www.``), on that network, and its blocked span overlaps the order's window: from
  one day before ``issued_on`` (clocks and time zones) to the latest of the ordered end,
  the withdrawal and the lifting, plus a grace period (default 7 days).  An order with
  no known end stays open until the next dated order naming the domain.  An order with
  no date matches nothing (its rows say ``no_data``).
- Status per (order, domain, network): ``enforced_after_withdrawal`` when a matching
  episode was still blocked more than a day after the withdrawal; ``enforced`` when any
  episode matches; ``not_enforced`` when the network measured the domain conclusively
  inside the window and no episode matches; ``no_data`` otherwise.
- Episodes that match no order are *unexplained*: blocks with no public legal basis.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.columns import codes, in_ns, utc_times
from analysis.episodes import bare_domain
from probe.errors import InputError

ORDER_COLUMNS: tuple[str, ...] = (
    "order_id",
    "issued_on",
    "authority",
    "legal_basis",
    "domains",
    "duration_days",
    "withdrawn_on",
    "lifted_on",
    "source_url",
    "notes",
)
#: Correlation rows' columns, in the order the CLI prints them (a stable interface).
CORRELATION_COLUMNS: tuple[str, ...] = (
    "order_id",
    "domain",
    "probe_asn",
    "status",
    "issued_on",
    "ordered_end",
    "withdrawn_on",
    "first_blocked",
    "last_blocked",
    "enforcement_lag_days",
    "ordered_days",
    "blocked_days_min",
    "blocked_days_max",
    "days_past_order_end",
    "days_after_withdrawal",
    "measurements_blocked",
    "measurements_total",
    "ongoing",
    "episode_ids",
)
STATUSES = ("enforced", "not_enforced", "enforced_after_withdrawal", "no_data")
GRACE = timedelta(days=7)
#: AS numbers are 32-bit: (domain code, ASN) packs into one int64 key.
_ASN_SPAN = 2**32
_EARLY = timedelta(days=1)


class OrdersFileError(InputError, ValueError):
    """A malformed orders file; the message names the line."""


@dataclass(frozen=True)
class Order:
    order_id: str
    issued_on: date | None
    authority: str
    legal_basis: str
    domains: tuple[str, ...]
    duration_days: int | None
    withdrawn_on: date | None
    lifted_on: date | None
    source_url: str
    notes: str

    @property
    def ordered_end(self) -> date | None:
        if self.issued_on is None or self.duration_days is None:
            return None
        return add_duration(self.issued_on, self.duration_days)


def add_duration(start: date, days: int) -> date:
    """``days`` after ``start``, reading whole 30-day multiples as calendar months."""
    if days > 0 and days % 30 == 0:
        months = days // 30
        month0 = start.month - 1 + months
        year, month = start.year + month0 // 12, month0 % 12 + 1
        for day in range(start.day, 27, -1):  # 31 Jan + 1 month = 28/29 Feb
            try:
                return date(year, month, day)
            except ValueError:
                continue
        return date(year, month, min(start.day, 28))
    return start + timedelta(days=days)


def _date(value: str, column: str, where: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise OrdersFileError(f"{where}: {column} {value!r} is not a date (use YYYY-MM-DD)") from None


def parse_orders(text: str, name: str = "orders.csv") -> list[Order]:
    """Every order in the file; the first bad row raises :class:`OrdersFileError`
    naming its line, so nothing half-read is used."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise OrdersFileError(f"{name}:1: {exc}") from None
    except StopIteration:
        raise OrdersFileError(f"{name}: the file is empty (expected a header line)") from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    if tuple(header) != ORDER_COLUMNS:
        raise OrdersFileError(
            f"{name}:1: the header must be {','.join(ORDER_COLUMNS)}; found {','.join(header)}"
        )
    orders: list[Order] = []
    seen: set[str] = set()
    try:
        list(reader)
    except csv.Error as exc:  # a field over the csv module's limit, a NUL, say
        raise OrdersFileError(f"{name}:{reader.line_num}: {exc}") from None
    reader = csv.reader(io.StringIO(text))  # again, for line numbers (it reads cleanly now)
    next(reader)
    for row in reader:
        where = f"{name}:{reader.line_num}"
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(ORDER_COLUMNS):
            raise OrdersFileError(f"{where}: expected {len(ORDER_COLUMNS)} columns, found {len(row)}")
        order = _order(dict(zip(ORDER_COLUMNS, (cell.strip() for cell in row), strict=True)), where)
        if order.order_id in seen:
            raise OrdersFileError(f"{where}: order_id {order.order_id!r} appears twice")
        seen.add(order.order_id)
        orders.append(order)
    return orders


def _order(values: dict[str, str], where: str) -> Order:
    """One row's order, each field checked; errors name ``where`` (file:line)."""
    order_id = values["order_id"]
    if not order_id:
        raise OrdersFileError(f"{where}: order_id is empty")
    domains = tuple(bare_domain(d) for d in values["domains"].split())
    if not domains:
        raise OrdersFileError(f"{where}: domains is empty (space-separated domain names)")
    for domain in domains:
        if "/" in domain or ":" in domain or "." not in domain:
            raise OrdersFileError(f"{where}: {domain!r} is not a domain name (no scheme, no path)")
    duration = _duration(values["duration_days"], where)
    issued = _date(values["issued_on"], "issued_on", where)
    withdrawn = _date(values["withdrawn_on"], "withdrawn_on", where)
    lifted = _date(values["lifted_on"], "lifted_on", where)
    for label, value in (("withdrawn_on", withdrawn), ("lifted_on", lifted)):
        if issued is not None and value is not None and value < issued:
            raise OrdersFileError(f"{where}: {label} {value} is before issued_on {issued}")
    if values["source_url"] and not values["source_url"].startswith(("http://", "https://")):
        raise OrdersFileError(f"{where}: source_url must be an http(s) URL")
    return Order(
        order_id=order_id,
        issued_on=issued,
        authority=values["authority"],
        legal_basis=values["legal_basis"],
        domains=domains,
        duration_days=duration,
        withdrawn_on=withdrawn,
        lifted_on=lifted,
        source_url=values["source_url"],
        notes=values["notes"],
    )


def _duration(value: str, where: str) -> int | None:
    if not value:
        return None
    try:
        duration = int(value)
    except ValueError:
        raise OrdersFileError(f"{where}: duration_days {value!r} is not a whole number of days") from None
    if duration <= 0:
        raise OrdersFileError(f"{where}: duration_days must be positive")
    if duration > 36_500:  # beyond any order, and beyond what dates can hold
        raise OrdersFileError(f"{where}: duration_days {duration} is more than a hundred years")
    return duration


def load_orders(path: str | Path) -> pd.DataFrame:
    """The orders file as a frame, one row per order, ``domains`` a list, ``ordered_end`` added."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise OrdersFileError(f"{path}: not UTF-8 text ({exc})") from None
    return orders_frame(parse_orders(text, name=str(path)))


def orders_frame(orders: list[Order]) -> pd.DataFrame:
    rows = [
        {
            "order_id": o.order_id,
            "issued_on": o.issued_on,
            "authority": o.authority,
            "legal_basis": o.legal_basis,
            "domains": list(o.domains),
            "duration_days": o.duration_days,
            "withdrawn_on": o.withdrawn_on,
            "lifted_on": o.lifted_on,
            "source_url": o.source_url,
            "notes": o.notes,
            "ordered_end": o.ordered_end,
        }
        for o in orders
    ]
    frame = pd.DataFrame(rows, columns=[*ORDER_COLUMNS, "ordered_end"])
    frame["duration_days"] = frame["duration_days"].astype("Int64")
    return frame


def _ts(value: object) -> pd.Timestamp | None:
    if value is None or (not isinstance(value, date | pd.Timestamp) and pd.isna(value)):
        return None
    return pd.Timestamp(value, tz="UTC") if not isinstance(value, pd.Timestamp) else value


Window = tuple[pd.Timestamp, pd.Timestamp | None] | None


def _windows(orders: pd.DataFrame, grace: timedelta) -> dict[tuple[str, str], Window]:
    """Where a matching episode's blocked span must fall, per (order, domain).

    ``None``: the order has no date, so nothing can be matched to it.  An order with no
    known end stays open until the next dated order naming the same domain (or for
    ever): a block that began under one order is not explained by an older one that
    was superseded.
    """
    issued_by_domain: dict[str, list[pd.Timestamp]] = {}
    for _, order in orders.iterrows():
        issued = _ts(order["issued_on"])
        if issued is not None:
            for domain in order["domains"]:
                issued_by_domain.setdefault(domain, []).append(issued)
    windows: dict[tuple[str, str], Window] = {}
    for _, order in orders.iterrows():
        issued = _ts(order["issued_on"])
        ends = [
            t for t in (_ts(order["ordered_end"]), _ts(order["withdrawn_on"]), _ts(order["lifted_on"])) if t
        ]
        for domain in order["domains"]:
            if issued is None:
                windows[(order["order_id"], domain)] = None
                continue
            if ends:
                end: pd.Timestamp | None = max(ends) + grace
            else:
                later = [t for t in issued_by_domain.get(domain, []) if t > issued]
                end = min(later) if later else None
            windows[(order["order_id"], domain)] = (issued - _EARLY, end)
    return windows


def _overlaps(first: pd.Timestamp, last: pd.Timestamp, window: Window) -> bool:
    if window is None:
        return False
    start, end = window
    return last >= start and (end is None or first <= end)


def _days(delta: pd.Timedelta) -> float:
    return round(delta.total_seconds() / 86_400, 3)


def correlate(
    orders: pd.DataFrame,
    episodes: pd.DataFrame,
    verdicts: pd.DataFrame,
    *,
    grace: timedelta = GRACE,
) -> pd.DataFrame:
    """One row per (order, domain, network that measured the domain): status, lag, and
    durations against the order.  A domain no network measured gets one ``no_data`` row
    with an empty ``probe_asn``."""
    asns_by_domain, seen_times = _index_verdicts(verdicts)
    episodes_by_key = {(d, int(a)): g for (d, a), g in episodes.groupby(["domain", "probe_asn"], sort=False)}
    windows = _windows(orders, grace)
    rows: list[dict[str, object]] = []
    for _, order in orders.iterrows():
        for domain in order["domains"]:
            asns = sorted(asns_by_domain.get(domain, []))
            if not asns:
                rows.append(_row(order, domain, None, "no_data"))
                continue
            window = windows[(order["order_id"], domain)]
            for asn in asns:
                mine = episodes_by_key.get((domain, asn))
                rows.append(_network_row(order, domain, asn, window, mine, seen_times.get((domain, asn))))
    frame = pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))
    frame["probe_asn"] = frame["probe_asn"].astype("Int64")
    return frame


def _index_verdicts(
    verdicts: pd.DataFrame,
) -> tuple[dict[str, list[int]], dict[tuple[str, int], np.ndarray]]:
    """Per domain the networks that measured it, and per (domain, network) the sorted
    times of its conclusive verdicts: grouped once, so that each order costs a lookup,
    not a pass over millions of rows.

    Vectorised: each distinct domain is normalised once and the grouping is one
    integer sort on (domain code, network), never a pass over the strings."""
    raw_codes, raw_names = codes(verdicts["domain"])  # a categorical's own codes, not rehashed
    normalised = np.array([bare_domain(str(d)) for d in raw_names], dtype=object)
    names, inverse = np.unique(normalised, return_inverse=True) if len(normalised) else (normalised, [])
    domain_codes = np.where(raw_codes >= 0, np.asarray(inverse, dtype=np.int64)[raw_codes], -1)
    asn_values = verdicts["probe_asn"].astype("Int64").to_numpy(dtype=np.int64, na_value=-1)
    valid = (domain_codes >= 0) & (asn_values >= 0)
    keys = np.where(valid, domain_codes * _ASN_SPAN + asn_values, -1)
    asns_by_domain: dict[str, list[int]] = {}
    for key in np.unique(keys[valid]).tolist():
        asns_by_domain.setdefault(str(names[key // _ASN_SPAN]), []).append(key % _ASN_SPAN)
    conclusive_mask = verdicts["status"].isin(["blocked", "accessible"]).to_numpy() & valid
    times, per_unit = utc_times(verdicts["measured_at"])  # a view; only the kept rows are copied
    c_keys, c_times = keys[conclusive_mask], in_ns(times[conclusive_mask], per_unit)
    order = np.lexsort((c_times, c_keys))
    c_keys, c_times = c_keys[order], c_times[order]
    cuts = np.flatnonzero(c_keys[1:] != c_keys[:-1]) + 1
    seen_times = {
        (str(names[int(part_keys[0]) // _ASN_SPAN]), int(part_keys[0]) % _ASN_SPAN): part_times
        for part_keys, part_times in zip(np.split(c_keys, cuts), np.split(c_times, cuts), strict=True)
        if len(part_keys)
    }
    return asns_by_domain, seen_times


def _network_row(
    order: pd.Series,
    domain: str,
    asn: int,
    window: Window,
    mine: pd.DataFrame | None,
    seen: np.ndarray | None,
) -> dict[str, object]:
    """The row of one network for one order's domain: enforced when one of its episodes
    overlaps the order's window, else not enforced (or no data) by its measurements there."""
    if mine is not None:
        spans = zip(mine["first_blocked"], mine["last_blocked"], strict=True)
        hits = [_overlaps(first, last, window) for first, last in spans]
        matched = mine[hits]
        if len(matched):
            issued, ordered_end = _ts(order["issued_on"]), _ts(order["ordered_end"])
            return _enforced_row(order, domain, asn, matched, issued, ordered_end, _ts(order["withdrawn_on"]))
    inside = 0
    if window is not None and seen is not None:
        start, end = window
        lo = np.searchsorted(seen, start.value, side="left")
        hi = len(seen) if end is None else np.searchsorted(seen, end.value, side="right")
        inside = int(max(0, hi - lo))
    row = _row(order, domain, asn, "not_enforced" if inside else "no_data")
    row["measurements_total"] = inside
    return row


def _row(order: pd.Series, domain: str, asn: int | None, status: str) -> dict[str, object]:
    issued, ordered_end = _ts(order["issued_on"]), _ts(order["ordered_end"])
    return {
        "order_id": order["order_id"],
        "domain": domain,
        "probe_asn": asn,
        "status": status,
        "issued_on": order["issued_on"],
        "ordered_end": order["ordered_end"],
        "withdrawn_on": order["withdrawn_on"],
        "ordered_days": _days(ordered_end - issued)
        if issued is not None and ordered_end is not None
        else None,
        "measurements_blocked": 0,
        "measurements_total": 0,
        "ongoing": False,
        "episode_ids": [],
    }


def _enforced_row(
    order: pd.Series,
    domain: str,
    asn: int,
    matched: pd.DataFrame,
    issued: pd.Timestamp | None,
    ordered_end: pd.Timestamp | None,
    withdrawn: pd.Timestamp | None,
) -> dict[str, object]:
    first = matched["first_blocked"].min()
    last = matched["last_blocked"].max()
    status = "enforced"
    if withdrawn is not None and last > withdrawn + _EARLY:
        status = "enforced_after_withdrawal"
    row = _row(order, domain, asn, status)
    maxima = matched["duration_days_max"]
    row.update(
        first_blocked=first,
        last_blocked=last,
        enforcement_lag_days=_days(first - issued) if issued is not None else None,
        blocked_days_min=round(float(matched["duration_days_min"].sum()), 3),
        blocked_days_max=None if maxima.isna().any() else round(float(maxima.sum()), 3),
        days_past_order_end=max(0.0, _days(last - ordered_end)) if ordered_end is not None else None,
        days_after_withdrawal=max(0.0, _days(last - withdrawn)) if withdrawn is not None else None,
        measurements_blocked=int(matched["measurements_blocked"].sum()),
        measurements_total=int(matched["measurements_total"].sum()),
        ongoing=bool(matched["ongoing"].any()),
        episode_ids=list(matched["episode_id"]),
    )
    return row


def unexplained_episodes(
    orders: pd.DataFrame, episodes: pd.DataFrame, *, grace: timedelta = GRACE
) -> pd.DataFrame:
    """Episodes that no order's window covers: blocking with no public legal basis."""
    windows = _windows(orders, grace)
    by_domain: dict[str, list[Window]] = {}
    for (_order_id, domain), window in windows.items():
        by_domain.setdefault(domain, []).append(window)
    keep = [
        not any(_overlaps(first, last, window) for window in by_domain.get(domain, []))
        for domain, first, last in zip(
            episodes["domain"], episodes["first_blocked"], episodes["last_blocked"], strict=True
        )
    ]
    # A boolean Series, never a list: an empty list would select no *columns*.
    return episodes[pd.Series(keep, index=episodes.index, dtype=bool)].reset_index(drop=True)


__all__ = [
    "CORRELATION_COLUMNS",
    "GRACE",
    "ORDER_COLUMNS",
    "STATUSES",
    "Order",
    "OrdersFileError",
    "add_duration",
    "correlate",
    "load_orders",
    "orders_frame",
    "parse_orders",
    "unexplained_episodes",
]

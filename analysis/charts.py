"""Charts a reader understands at a glance, on screen and in print: a timeline of
episodes per network, and a heatmap of the blocked share over time and network.

Figures are built with matplotlib's object API, never pyplot: no global state, no
window, safe in threads and in servers, and no backend forced on a notebook user.

Design choices, for readers rather than analysts: one row per network, named
``Name (ASn)``; time left to right over the span of the data (not of the order, which
would shrink a one-day block to a sliver), dates with their year; the certain part of
an episode drawn solid and its uncertainty as a bracket from the last accessible to
the first accessible measurement around it; the same duration words as the report's
sentences; a colour per blocking method from the Okabe-Ito palette (safe for colour
blindness), and a legend of what the chart actually shows.  The heatmap's cells are
as wide as the measurement cadence (hours for a short series, days, then weeks), with
ticks on cell edges; 0 % is a colour and "no conclusive measurement" is hatched grey, never the same as 0 %.
Charts built from simulated or lab data say so across the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.ticker as ticker
import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.episodes import bare_domain
from analysis.networks import network_label as _network_label
from analysis.report_text import duration

#: Colour per blocking method (Okabe-Ito palette).
METHOD_COLOURS: dict[str, str] = {
    "dns": "#D55E00",
    "tcp_ip": "#0072B2",
    "tls": "#CC79A7",
    "http-failure": "#E69F00",
    "http-diff": "#009E73",
}
METHOD_WORDS: dict[str, str] = {
    "dns": "DNS tampering",
    "tcp_ip": "IP blocking",
    "tls": "TLS/SNI interference",
    "http-failure": "HTTP connection cut",
    "http-diff": "blockpage / altered page",
}
_UNKNOWN = "#777777"
_NO_DATA = "#D9D9D9"
#: Blocked share: sky blue (0 %, measured and accessible) to vermillion (100 %),
#: through yellow; none of it close to white or to the no-data grey.
SHARE_COLOURS = LinearSegmentedColormap.from_list("kuzot_share", ["#56B4E9", "#F0E442", "#D55E00"])


def network_label(asn: object, names: dict[int, str] | None = None) -> str:
    """``Name (ASn)``: the name given in ``names``, else the packaged table's."""
    if asn is None or pd.isna(asn):
        return "unknown network"
    # mypy: asn is a pandas scalar (int or float), typed object
    number = int(asn)  # type: ignore[call-overload]
    return _network_label(number, (names or {}).get(number))


def _labeller(labels: dict[int | None, str] | None, names: dict[int, str] | None):
    def label(asn: object) -> str:
        key = None if asn is None or pd.isna(asn) else int(asn)  # type: ignore[call-overload]  # asn: a pandas scalar, int or float
        if labels and key in labels:
            return labels[key]
        return network_label(key, names)

    return label


class _DayAndTime(ticker.Formatter):
    """Hours on every tick, the full date (with its year) under the first tick of each day."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return mdates.num2date(x).strftime("%H:%M\n%d %b %Y")

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        out, previous = [], None
        for value in values:
            moment = mdates.num2date(value)
            day = moment.date()
            out.append(moment.strftime("%H:%M") + ("" if day == previous else moment.strftime("\n%d %b %Y")))
            previous = day
        return out


def _date_axis(ax, start: pd.Timestamp, end: pd.Timestamp) -> None:
    """Dates a reader can copy: the year always shown, hours only for short spans."""
    short = end - start <= pd.Timedelta(days=3)
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=9))
    ax.xaxis.set_major_formatter(_DayAndTime() if short else mdates.DateFormatter("%d %b\n%Y"))
    ax.set_xlabel("Date and time (UTC)" if short else "Date (UTC)")


def _mark_simulated(fig: Figure, simulated: Sequence[str] | None) -> None:
    if not simulated:
        return
    fig.text(
        0.5,
        0.5,
        "SIMULATED DATA",
        ha="center",
        va="center",
        rotation=12,
        fontsize=44,
        color="#B00020",
        alpha=0.11,
        weight="bold",
        zorder=0,
    )
    fig.suptitle(
        "SIMULATED / LAB DATA — not a real network (see the report's notice)",
        color="#B00020",
        fontsize=10,
        weight="bold",
    )


def _span_of(mine: pd.DataFrame, eps: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    times = pd.to_datetime(mine["measured_at"], utc=True).dropna()
    if times.empty:
        return None
    start, end = times.min(), times.max()
    if end - start < pd.Timedelta(hours=2):
        start, end = start - pd.Timedelta(hours=1), end + pd.Timedelta(hours=1)
    pad = (end - start) * 0.03
    return start - pad, end + pad


def timeline(
    domain: str,
    episodes: pd.DataFrame,
    verdicts: pd.DataFrame,
    orders: pd.DataFrame | None = None,
    *,
    names: dict[int, str] | None = None,
    labels: dict[int | None, str] | None = None,
    simulated: Sequence[str] | None = None,
) -> Figure:
    """Episodes of one domain, one row per network that measured it."""
    domain = bare_domain(domain)
    label = _labeller(labels, names)
    mine = verdicts[verdicts["domain"].map(bare_domain) == domain]
    eps = episodes[episodes["domain"] == domain] if len(episodes) else episodes
    keys = sorted(
        {None if pd.isna(a) else int(a) for a in mine["probe_asn"]}, key=lambda a: (a is None, a or 0)
    )
    height = 2.4 + 0.75 * max(1, len(keys))
    fig = Figure(figsize=(11, height), layout="constrained")
    ax = fig.subplots()
    ax.set_title(f"{domain}: when and how each network blocked it", loc="left", fontsize=12, weight="bold")
    span = _span_of(mine, eps)
    if span is None:
        ax.text(0.5, 0.5, "no measurements", transform=ax.transAxes, ha="center")
        ax.set_axis_off()
        _mark_simulated(fig, simulated)
        return fig
    times = pd.to_datetime(mine["measured_at"], utc=True)
    seen_methods: list[str | None] = []
    confirmed_any = False
    for row, key in enumerate(keys):
        y = len(keys) - 1 - row
        at = mine["probe_asn"].isna() if key is None else mine["probe_asn"] == key
        ticks = times[at.fillna(False).to_numpy()].dropna()
        ax.plot(ticks, [y - 0.36] * len(ticks), "|", color="#444444", markersize=5, alpha=0.5)
        rows = eps[eps["probe_asn"].isna()] if key is None else eps[eps["probe_asn"] == key]
        for _, ep in rows.iterrows():
            method = ep["blocking"] if ep["blocking"] in METHOD_COLOURS else None
            if method not in seen_methods:
                seen_methods.append(method)
            colour = METHOD_COLOURS.get(method or "", _UNKNOWN)
            first, last = ep["first_blocked"], ep["last_blocked"]
            lo = ep["last_accessible_before"] if pd.notna(ep["last_accessible_before"]) else first
            hi = ep["first_accessible_after"] if pd.notna(ep["first_accessible_after"]) else last
            # The bracket: from the last accessible to the first accessible measurement.
            ax.hlines(y, lo, hi, color=colour, linewidth=1.4, zorder=2)
            ax.vlines([lo, hi], y - 0.22, y + 0.22, color=colour, linewidth=1.4, zorder=2)
            # The certain part, at least a visible sliver wide.
            minimum = (span[1] - span[0]) * 0.004
            ax.barh(
                y,
                max(last - first, minimum),
                left=first,
                height=0.32,
                color=colour,
                edgecolor="black" if ep["confirmed"] else colour,
                linewidth=0.8,
                zorder=3,
            )
            confirmed_any = confirmed_any or bool(ep["confirmed"])
            high = ep["duration_days_max"]
            words = duration(
                float(ep["duration_days_min"]),
                None if pd.isna(high) else float(high),
                "en",
                ongoing=bool(ep["ongoing"]),
            )
            if ep["ongoing"]:
                words += ", ongoing →"
            ax.annotate(
                words, (first, y + 0.24), xytext=(0, 2), textcoords="offset points", fontsize=8, va="bottom"
            )
    handles: list[object] = [
        Patch(color=METHOD_COLOURS.get(m or "", _UNKNOWN), label=METHOD_WORDS.get(m or "", "method unknown"))
        for m in seen_methods
    ]
    if seen_methods:
        handles.append(
            Line2D([], [], color="#444444", marker="|", markersize=10, label="earliest start / latest end")
        )
    if confirmed_any:
        handles.append(Patch(facecolor="white", edgecolor="black", label="confirmed by a fingerprint"))
    handles.append(
        Line2D([], [], color="#444444", marker="|", linestyle="none", alpha=0.5, label="one measurement")
    )
    start, end = span
    if orders is not None and len(orders):
        relevant = orders[[domain in list(d) for d in orders["domains"]]]
        shaded = lined = withdrawn_any = False
        for _, order in relevant.iterrows():
            if order["issued_on"] is None or pd.isna(order["issued_on"]):
                continue
            issued = pd.Timestamp(order["issued_on"], tz="UTC")
            ordered_end = order["ordered_end"]
            if ordered_end is not None and not pd.isna(ordered_end):
                stop = pd.Timestamp(ordered_end, tz="UTC")
                if stop > start and issued < end:
                    ax.axvspan(
                        max(issued, start), min(stop, end), color="#F0E442", alpha=0.22, linewidth=0, zorder=0
                    )
                    shaded = True
            if start <= issued <= end:
                ax.axvline(issued, color="black", linestyle="--", linewidth=1)
                ax.annotate(
                    f"order {order['order_id']}",
                    (issued, -0.62),
                    xytext=(3, 0),
                    textcoords="offset points",
                    fontsize=8,
                )
                lined = True
            withdrawn = order["withdrawn_on"]
            if withdrawn is not None and not pd.isna(withdrawn):
                when = pd.Timestamp(withdrawn, tz="UTC")
                if start <= when <= end:
                    ax.axvline(when, color="#555555", linestyle=":", linewidth=1.2)
                    withdrawn_any = True
        if lined:
            handles.append(Line2D([], [], color="black", linestyle="--", label="order issued"))
        if shaded:
            handles.append(Patch(color="#F0E442", alpha=0.4, label="ordered period"))
        if withdrawn_any:
            handles.append(Line2D([], [], color="#555555", linestyle=":", label="order withdrawn"))
    ax.set_xlim(start, end)
    ax.set_yticks(range(len(keys)), [label(k) for k in reversed(keys)])
    ax.set_ylim(-0.7, max(len(keys), 1) - 0.1)
    ax.set_ylabel("Network")
    _date_axis(ax, start, end)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    _mark_simulated(fig, simulated)
    return fig


#: Cell widths the heatmap may use, narrowest first, with their names.
_BINS: tuple[tuple[str, pd.Timedelta, str], ...] = (
    ("1h", pd.Timedelta(hours=1), "hour"),
    ("2h", pd.Timedelta(hours=2), "2 hours"),
    ("3h", pd.Timedelta(hours=3), "3 hours"),
    ("6h", pd.Timedelta(hours=6), "6 hours"),
    ("12h", pd.Timedelta(hours=12), "12 hours"),
    ("1D", pd.Timedelta(days=1), "day"),
    ("W-SUN", pd.Timedelta(days=7), "week"),  # Monday to Sunday
)
_MAX_CELLS = 120


def _bin(times: pd.Series, networks: pd.Series | None = None) -> tuple[str, pd.Timedelta, str]:
    """The narrowest cell that holds a measurement of each network (no striping of
    empty cells between regular runs) and keeps the row under ``_MAX_CELLS`` cells."""
    times = pd.to_datetime(times, utc=True)
    span = times.max() - times.min() if len(times) else pd.Timedelta(0)
    keys = networks if networks is not None else pd.Series(0, index=times.index)
    gaps = [g.sort_values().diff().dropna() for _, g in times.groupby(keys.to_numpy())]
    gaps = [g for g in gaps if len(g)]
    cadence = pd.concat(gaps).median() if gaps else pd.Timedelta(hours=1)
    for freq, width, name in _BINS:
        if width >= cadence * 0.98 and span / width <= _MAX_CELLS:
            return freq, width, name
    return _BINS[-1]


def blocked_share(verdicts: pd.DataFrame, domain: str | None = None, freq: str | None = "D") -> pd.DataFrame:
    """Share of conclusive verdicts that say blocked, by period (rows, UTC, ``freq``:
    a pandas frequency, or None to choose hours, days or weeks from the span) and network
    (columns); periods a network did not measure conclusively are missing, not zero."""
    data = verdicts
    if domain is not None:
        data = data[data["domain"].map(bare_domain) == bare_domain(domain)]
    data = data[data["status"].isin(["blocked", "accessible"])]
    times = pd.to_datetime(data["measured_at"], utc=True)
    data, times = data[times.notna().to_numpy()], times.dropna()
    if data.empty:
        return pd.DataFrame()
    if freq is None:
        freq = _bin(times, data["probe_asn"].astype("Int64").fillna(-1))[0]
    if freq.startswith("W"):
        period = times.dt.tz_localize(None).dt.to_period(freq).dt.start_time.dt.tz_localize("UTC")
    else:
        period = times.dt.floor(freq)
    blocked = (data["status"] == "blocked").astype(float)
    network = data["probe_asn"].astype("Int64").astype(object).where(data["probe_asn"].notna(), -1)
    table = blocked.groupby([period, network]).mean().unstack()
    step = "7D" if freq.startswith("W") else freq
    full = pd.date_range(table.index.min(), table.index.max(), freq=step)
    out = table.reindex(full)
    out.columns = [None if c == -1 else int(c) for c in out.columns]
    return out


def heatmap(
    verdicts: pd.DataFrame,
    domain: str | None = None,
    *,
    names: dict[int, str] | None = None,
    labels: dict[int | None, str] | None = None,
    simulated: Sequence[str] | None = None,
) -> Figure:
    label = _labeller(labels, names)
    conclusive = verdicts[verdicts["status"].isin(["blocked", "accessible"])]
    if domain is not None:
        conclusive = conclusive[conclusive["domain"].map(bare_domain) == bare_domain(domain)]
    times = pd.to_datetime(conclusive["measured_at"], utc=True)
    known = times.notna().to_numpy()
    networks = conclusive["probe_asn"].astype("Int64").fillna(-1)[known]
    freq, step, unit = _bin(times[known], networks) if known.any() else _BINS[5]
    share = blocked_share(verdicts, domain, freq=freq)
    fig = Figure(figsize=(11, 2.6 + 0.55 * max(1, share.shape[1])), layout="constrained")
    ax = fig.subplots()
    title = f"{bare_domain(domain)}: " if domain else ""
    ax.set_title(
        f"{title}share of conclusive measurements that were blocked, per {unit} and network",
        loc="left",
        fontsize=12,
        weight="bold",
    )
    if share.empty:
        ax.text(0.5, 0.5, "no conclusive measurements", transform=ax.transAxes, ha="center")
        ax.set_axis_off()
        _mark_simulated(fig, simulated)
        return fig
    edges = [*share.index, share.index[-1] + step]
    x = mdates.date2num([t.tz_localize(None).to_pydatetime() for t in edges])
    values = np.ma.masked_invalid(share.T.to_numpy(dtype=float))
    ax.set_facecolor(_NO_DATA)
    ax.patch.set_hatch("///")
    ax.patch.set_edgecolor("#FFFFFF")
    mesh = ax.pcolormesh(
        x,
        np.arange(share.shape[1] + 1) - 0.5,
        values,
        cmap=SHARE_COLOURS,
        vmin=0,
        vmax=1,
        edgecolors="white",
        linewidth=0.3,
    )
    ax.set_yticks(range(share.shape[1]), [label(a) for a in share.columns])
    ax.set_ylim(share.shape[1] - 0.5, -0.5)
    ax.set_ylabel("Network")
    ax.xaxis_date()
    start, end = edges[0], edges[-1]
    _date_axis(ax, start, end)
    # Ticks on cell edges: a tick never falls inside a cell.
    if step < pd.Timedelta(days=1):
        hours = int(step / pd.Timedelta(hours=1))
        every = hours * max(1, -(-len(share) // 8))
        ax.xaxis.set_major_locator(
            mdates.HourLocator(byhour=range(0, 24, min(every, 24)) if every < 24 else [0])
        )
        ax.xaxis.set_minor_locator(mdates.HourLocator(byhour=range(0, 24, hours)))
    elif unit == "day":
        ax.xaxis.set_minor_locator(mdates.DayLocator())
    else:
        ax.xaxis.set_minor_locator(mdates.WeekdayLocator(byweekday=mdates.MO))
    ax.tick_params(axis="x", which="minor", length=3)
    bar = fig.colorbar(mesh, ax=ax, shrink=0.85, pad=0.01)
    bar.set_label("blocked share")
    bar.set_ticks([0, 0.5, 1], labels=["0 %", "50 %", "100 %"])
    if np.ma.getmaskarray(values).any():  # a legend of what occurs
        ax.legend(
            handles=[
                Patch(facecolor=_NO_DATA, hatch="///", edgecolor="white", label="no conclusive measurement")
            ],
            loc="upper left",
            bbox_to_anchor=(0.0, -0.3 if step < pd.Timedelta(days=1) else -0.2),
            fontsize=8,
            frameon=False,
        )
    _mark_simulated(fig, simulated)
    return fig


def save(fig: Figure, path: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write ``path`` with each suffix in ``formats``; returns the files written."""
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = base.with_suffix(f".{fmt}")
        fig.savefig(target, dpi=150, metadata={"Date": None} if fmt == "svg" else None)
        written.append(target)
    return written


__all__ = [
    "METHOD_COLOURS",
    "METHOD_WORDS",
    "SHARE_COLOURS",
    "blocked_share",
    "heatmap",
    "network_label",
    "save",
    "timeline",
]

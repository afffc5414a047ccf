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
import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis.chart_dates import date_axis
from analysis.episodes import bare_domain
from analysis.i18n import gettext_
from analysis.networks import network_label as _network_label
from analysis.report_text import N_, duration

#: Colour per blocking method (Okabe-Ito palette).
METHOD_COLOURS: dict[str, str] = {
    "dns": "#D55E00",
    "tcp_ip": "#0072B2",
    "tls": "#CC79A7",
    "http-failure": "#E69F00",
    "http-diff": "#009E73",
}
#: The legend's words per method, in English; :func:`method_word` translates them.
METHOD_WORDS: dict[str, str] = {
    "dns": N_("DNS tampering"),
    "tcp_ip": N_("IP blocking"),
    "tls": N_("TLS/SNI interference"),
    "http-failure": N_("HTTP connection cut"),
    "http-diff": N_("blockpage / altered page"),
}
_UNKNOWN = "#777777"
_NO_DATA = "#D9D9D9"
#: Blocked share: sky blue (0 %, measured and accessible) to vermillion (100 %),
#: through yellow; none of it close to white or to the no-data grey.
SHARE_COLOURS = LinearSegmentedColormap.from_list("kuzot_share", ["#56B4E9", "#F0E442", "#D55E00"])
_SIMULATED = "#B00020"


def method_word(method: str | None, lang: str = "en") -> str:
    """The legend's name of a blocking method in ``lang``."""
    return gettext_(lang, METHOD_WORDS.get(method or "", N_("method unknown")))


def network_label(asn: object, names: dict[int, str] | None = None, lang: str = "en") -> str:
    """``Name (ASn)``: the name given in ``names``, else the packaged table's."""
    if asn is None or pd.isna(asn):
        return gettext_(lang, "unknown network")
    # mypy: asn is a pandas scalar (int or float), typed object
    number = int(asn)  # type: ignore[call-overload]
    return _network_label(number, (names or {}).get(number))


def _labeller(labels: dict[int | None, str] | None, names: dict[int, str] | None, lang: str = "en"):
    def label(asn: object) -> str:
        key = None if asn is None or pd.isna(asn) else int(asn)  # type: ignore[call-overload]  # asn: a pandas scalar, int or float
        if labels and key in labels:
            return labels[key]
        return network_label(key, names, lang)

    return label


def _mark_simulated(fig: Figure, simulated: Sequence[str] | None, lang: str = "en") -> None:
    if not simulated:
        return
    fig.text(
        0.5,
        0.5,
        gettext_(lang, "SIMULATED DATA"),
        ha="center",
        va="center",
        rotation=12,
        fontsize=44,
        color=_SIMULATED,
        alpha=0.11,
        weight="bold",
        zorder=0,
    )
    fig.suptitle(
        gettext_(lang, "SIMULATED / LAB DATA — not a real network (see the report's notice)"),
        color=_SIMULATED,
        fontsize=10,
        weight="bold",
    )


def _span_of(mine: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    times = pd.to_datetime(mine["measured_at"], utc=True).dropna()
    if times.empty:
        return None
    start, end = times.min(), times.max()
    if end - start < pd.Timedelta(hours=2):
        start, end = start - pd.Timedelta(hours=1), end + pd.Timedelta(hours=1)
    pad = (end - start) * 0.03
    return start - pad, end + pad


def _rows_of(frame: pd.DataFrame, key: int | None) -> pd.DataFrame:
    """The rows of one network (``None``: the rows without an AS number)."""
    return frame[frame["probe_asn"].isna()] if key is None else frame[frame["probe_asn"] == key]


def _episode_words(ep: pd.Series, lang: str) -> str:
    """The bracket in the report's own words ("at least 12 hours", "between 59 and 62 days")."""
    high = ep["duration_days_max"]
    words = duration(
        float(ep["duration_days_min"]),
        None if pd.isna(high) else float(high),
        lang,
        ongoing=bool(ep["ongoing"]),
    )
    return words + gettext_(lang, ", ongoing →") if ep["ongoing"] else words


def _draw_episode(ax, y: float, ep: pd.Series, span: tuple[pd.Timestamp, pd.Timestamp], lang: str) -> None:
    """One episode: its bracket from the last accessible to the first accessible
    measurement around it, its certain part solid over it, its duration in words."""
    colour = METHOD_COLOURS.get(ep["blocking"], _UNKNOWN)
    first, last = ep["first_blocked"], ep["last_blocked"]
    lo = ep["last_accessible_before"] if pd.notna(ep["last_accessible_before"]) else first
    hi = ep["first_accessible_after"] if pd.notna(ep["first_accessible_after"]) else last
    ax.hlines(y, lo, hi, color=colour, linewidth=1.4, zorder=2)
    ax.vlines([lo, hi], y - 0.22, y + 0.22, color=colour, linewidth=1.4, zorder=2)
    minimum = (span[1] - span[0]) * 0.004  # the certain part is at least a visible sliver
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
    words = _episode_words(ep, lang)
    ax.annotate(words, (first, y + 0.24), xytext=(0, 2), textcoords="offset points", fontsize=8, va="bottom")


def _draw_networks(
    ax, keys: list[int | None], mine: pd.DataFrame, eps: pd.DataFrame, span, lang: str
) -> tuple[list[str | None], bool]:
    """One row per network, top first: its measurements as ticks, its episodes; returns
    the methods drawn (in order of appearance) and whether any episode was confirmed."""
    times = pd.to_datetime(mine["measured_at"], utc=True)
    seen: list[str | None] = []
    confirmed = False
    for row, key in enumerate(keys):
        y = len(keys) - 1 - row
        at = mine["probe_asn"].isna() if key is None else mine["probe_asn"] == key
        ticks = times[at.fillna(False).to_numpy()].dropna()
        ax.plot(ticks, [y - 0.36] * len(ticks), "|", color="#444444", markersize=5, alpha=0.5)
        for _, ep in _rows_of(eps, key).iterrows():
            method = ep["blocking"] if ep["blocking"] in METHOD_COLOURS else None
            if method not in seen:
                seen.append(method)
            confirmed = confirmed or bool(ep["confirmed"])
            _draw_episode(ax, y, ep, span, lang)
    return seen, confirmed


def _episode_legend(seen: list[str | None], confirmed: bool, lang: str) -> list[object]:
    handles: list[object] = [
        Patch(color=METHOD_COLOURS.get(m or "", _UNKNOWN), label=method_word(m, lang)) for m in seen
    ]
    if seen:
        words = gettext_(lang, "earliest start / latest end")
        handles.append(Line2D([], [], color="#444444", marker="|", markersize=10, label=words))
    if confirmed:
        words = gettext_(lang, "confirmed by a fingerprint")
        handles.append(Patch(facecolor="white", edgecolor="black", label=words))
    words = gettext_(lang, "one measurement")
    handles.append(Line2D([], [], color="#444444", marker="|", linestyle="none", alpha=0.5, label=words))
    return handles


def _when(value: object) -> pd.Timestamp | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value, tz="UTC")


def _draw_orders(ax, orders: pd.DataFrame | None, domain: str, span, lang: str) -> list[object]:
    """Each order about ``domain``: its ordered period shaded, the day it was issued as a
    dashed line, its withdrawal dotted (only what falls inside the chart); returns the
    legend entries for what was drawn."""
    if orders is None or not len(orders):
        return []
    start, end = span
    drawn: set[str] = set()
    for _, order in orders[[domain in list(d) for d in orders["domains"]]].iterrows():
        issued = _when(order["issued_on"])
        if issued is None:
            continue
        stop = _when(order["ordered_end"])
        if stop is not None and stop > start and issued < end:
            ax.axvspan(max(issued, start), min(stop, end), color="#F0E442", alpha=0.22, linewidth=0, zorder=0)
            drawn.add("shaded")
        if start <= issued <= end:
            ax.axvline(issued, color="black", linestyle="--", linewidth=1)
            words = gettext_(lang, "order {order}").format(order=order["order_id"])
            ax.annotate(words, (issued, -0.62), xytext=(3, 0), textcoords="offset points", fontsize=8)
            drawn.add("issued")
        withdrawn = _when(order["withdrawn_on"])
        if withdrawn is not None and start <= withdrawn <= end:
            ax.axvline(withdrawn, color="#555555", linestyle=":", linewidth=1.2)
            drawn.add("withdrawn")
    handles: list[object] = []
    if "issued" in drawn:
        handles.append(Line2D([], [], color="black", linestyle="--", label=gettext_(lang, "order issued")))
    if "shaded" in drawn:
        handles.append(Patch(color="#F0E442", alpha=0.4, label=gettext_(lang, "ordered period")))
    if "withdrawn" in drawn:
        words = gettext_(lang, "order withdrawn")
        handles.append(Line2D([], [], color="#555555", linestyle=":", label=words))
    return handles


def timeline(
    domain: str,
    episodes: pd.DataFrame,
    verdicts: pd.DataFrame,
    orders: pd.DataFrame | None = None,
    *,
    names: dict[int, str] | None = None,
    labels: dict[int | None, str] | None = None,
    simulated: Sequence[str] | None = None,
    lang: str = "en",
) -> Figure:
    """Episodes of one domain, one row per network that measured it, every word in
    ``lang`` (en, ru or ky: the report's language)."""
    domain = bare_domain(domain)
    label = _labeller(labels, names, lang)
    mine = verdicts[verdicts["domain"].map(bare_domain) == domain]
    eps = episodes[episodes["domain"] == domain] if len(episodes) else episodes
    keys = sorted(
        {None if pd.isna(a) else int(a) for a in mine["probe_asn"]}, key=lambda a: (a is None, a or 0)
    )
    fig = Figure(figsize=(11, 2.4 + 0.75 * max(1, len(keys))), layout="constrained")
    ax = fig.subplots()
    title = gettext_(lang, "{domain}: when and how each network blocked it").format(domain=domain)
    ax.set_title(title, loc="left", fontsize=12, weight="bold")
    span = _span_of(mine)
    if span is None:
        ax.text(0.5, 0.5, gettext_(lang, "no measurements"), transform=ax.transAxes, ha="center")
        ax.set_axis_off()
        _mark_simulated(fig, simulated, lang)
        return fig
    seen, confirmed = _draw_networks(ax, keys, mine, eps, span, lang)
    handles = [*_episode_legend(seen, confirmed, lang), *_draw_orders(ax, orders, domain, span, lang)]
    ax.set_xlim(*span)
    ax.set_yticks(range(len(keys)), [label(k) for k in reversed(keys)])
    ax.set_ylim(-0.7, max(len(keys), 1) - 0.1)
    ax.set_ylabel(gettext_(lang, "Network"))
    date_axis(ax, *span, lang)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    _mark_simulated(fig, simulated, lang)
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


#: The heatmap title's words for each cell width of ``_BINS``.
_PER: dict[str, str] = {
    "hour": N_("per hour"),
    "2 hours": N_("per 2 hours"),
    "3 hours": N_("per 3 hours"),
    "6 hours": N_("per 6 hours"),
    "12 hours": N_("per 12 hours"),
    "day": N_("per day"),
    "week": N_("per week"),
}


def _draw_share(ax, share: pd.DataFrame, step: pd.Timedelta):
    """The cells, as wide as ``step``, over a hatched grey that shows where no
    conclusive measurement was made; returns the mesh and its (masked) values."""
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
    return mesh, values, edges


def _cell_ticks(ax, cells: int, step: pd.Timedelta, unit: str) -> None:
    """Ticks on cell edges: a tick never falls inside a cell."""
    if step < pd.Timedelta(days=1):
        hours = int(step / pd.Timedelta(hours=1))
        every = hours * max(1, -(-cells // 8))
        ax.xaxis.set_major_locator(
            mdates.HourLocator(byhour=range(0, 24, min(every, 24)) if every < 24 else [0])
        )
        ax.xaxis.set_minor_locator(mdates.HourLocator(byhour=range(0, 24, hours)))
    elif unit == "day":
        ax.xaxis.set_minor_locator(mdates.DayLocator())
    else:
        ax.xaxis.set_minor_locator(mdates.WeekdayLocator(byweekday=mdates.MO))
    ax.tick_params(axis="x", which="minor", length=3)


def _share_key(fig: Figure, ax, mesh, values, step: pd.Timedelta, lang: str) -> None:
    """The colour bar, and the no-data hatching in a legend when some cell has it."""
    bar = fig.colorbar(mesh, ax=ax, shrink=0.85, pad=0.01)
    bar.set_label(gettext_(lang, "blocked share"))
    bar.set_ticks([0, 0.5, 1], labels=["0 %", "50 %", "100 %"])
    if np.ma.getmaskarray(values).any():  # a legend of what occurs
        words = gettext_(lang, "no conclusive measurement")
        ax.legend(
            handles=[Patch(facecolor=_NO_DATA, hatch="///", edgecolor="white", label=words)],
            loc="upper left",
            bbox_to_anchor=(0.0, -0.3 if step < pd.Timedelta(days=1) else -0.2),
            fontsize=8,
            frameon=False,
        )


def heatmap(
    verdicts: pd.DataFrame,
    domain: str | None = None,
    *,
    names: dict[int, str] | None = None,
    labels: dict[int | None, str] | None = None,
    simulated: Sequence[str] | None = None,
    lang: str = "en",
) -> Figure:
    """The blocked share per cell of time and network, every word in ``lang``."""
    label = _labeller(labels, names, lang)
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
    title = gettext_(lang, "share of conclusive measurements that were blocked, {per} and network")
    title = title.format(per=gettext_(lang, _PER[unit]))
    if domain:
        title = gettext_(lang, "{domain}: {title}").format(domain=bare_domain(domain), title=title)
    ax.set_title(title, loc="left", fontsize=12, weight="bold")
    if share.empty:
        ax.text(0.5, 0.5, gettext_(lang, "no conclusive measurements"), transform=ax.transAxes, ha="center")
        ax.set_axis_off()
        _mark_simulated(fig, simulated, lang)
        return fig
    mesh, values, edges = _draw_share(ax, share, step)
    ax.set_yticks(range(share.shape[1]), [label(a) for a in share.columns])
    ax.set_ylim(share.shape[1] - 0.5, -0.5)
    ax.set_ylabel(gettext_(lang, "Network"))
    ax.xaxis_date()
    date_axis(ax, edges[0], edges[-1], lang)
    _cell_ticks(ax, len(share), step, unit)
    _share_key(fig, ax, mesh, values, step, lang)
    _mark_simulated(fig, simulated, lang)
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
    "method_word",
    "network_label",
    "save",
    "timeline",
]

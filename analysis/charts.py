"""Charts a reader understands at a glance: a timeline of episodes per network, and a
heatmap of the blocked share by day and network.

Figures are built with matplotlib's object API, never pyplot: no global state, no
window, safe in threads and in servers, and no backend forced on a notebook user.

Design choices, for readers rather than analysts: one row per network, time left to
right; the certain part of an episode drawn solid and its uncertainty bracket pale; a
colour per blocking method, with the legend in words; order dates as vertical lines
with the ordered window shaded; measurement density as ticks under each row, so a gap
in the data is never mistaken for the end of a block.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.dates as mdates
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from analysis.episodes import bare_domain

#: Colour per blocking method (colour-blind safe, from the Okabe-Ito palette).
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
_UNKNOWN = "#999999"


def network_label(asn: object, names: dict[int, str] | None = None) -> str:
    if asn is None or pd.isna(asn):
        return "unknown network"
    asn = int(asn)  # type: ignore[call-overload]
    name = (names or {}).get(asn)
    return f"AS{asn} ({name})" if name else f"AS{asn}"


def timeline(
    domain: str,
    episodes: pd.DataFrame,
    verdicts: pd.DataFrame,
    orders: pd.DataFrame | None = None,
    *,
    names: dict[int, str] | None = None,
) -> Figure:
    """Episodes of one domain, one row per network that measured it."""
    domain = bare_domain(domain)
    mine = verdicts[verdicts["domain"].map(bare_domain) == domain]
    eps = episodes[episodes["domain"] == domain] if len(episodes) else episodes
    asns = sorted({int(a) for a in mine["probe_asn"].dropna().unique()})
    height = 1.6 + 0.7 * max(1, len(asns))
    fig = Figure(figsize=(11, height), layout="constrained")
    ax = fig.subplots()
    times = pd.to_datetime(mine["measured_at"], utc=True)
    for row, asn in enumerate(asns):
        y = len(asns) - 1 - row
        ticks = times[mine["probe_asn"] == asn]
        ax.plot(ticks, [y - 0.38] * len(ticks), "|", color="#555555", markersize=4, alpha=0.35)
        for _, ep in eps[eps["probe_asn"] == asn].iterrows():
            colour = METHOD_COLOURS.get(ep["blocking"], _UNKNOWN)
            lo = (
                ep["last_accessible_before"]
                if pd.notna(ep["last_accessible_before"])
                else ep["first_blocked"]
            )
            hi = (
                ep["first_accessible_after"] if pd.notna(ep["first_accessible_after"]) else ep["last_blocked"]
            )
            ax.barh(y, hi - lo, left=lo, height=0.5, color=colour, alpha=0.3, linewidth=0, zorder=2)
            ax.barh(
                y,
                max(ep["last_blocked"] - ep["first_blocked"], pd.Timedelta(hours=6)),
                left=ep["first_blocked"],
                height=0.5,
                color=colour,
                edgecolor="black" if ep["confirmed"] else colour,
                linewidth=0.6,
                zorder=3,
            )
            ax.annotate(
                _duration_words(ep),
                (ep["first_blocked"], y + 0.28),
                xytext=(0, 2),
                textcoords="offset points",
                fontsize=7,
                va="bottom",
            )
            if ep["ongoing"]:
                ax.annotate(
                    "ongoing →",
                    (ep["last_blocked"], y),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                )
    handles = [Patch(color=c, label=METHOD_WORDS[m]) for m, c in METHOD_COLOURS.items()]
    handles.append(Patch(color="#777777", alpha=0.3, label="uncertainty of start/end"))
    handles.append(Patch(color="#555555", alpha=0.35, label="measurements (one tick each)"))
    if orders is not None and len(orders):
        relevant = orders[[domain in list(d) for d in orders["domains"]]]
        for _, order in relevant.iterrows():
            if order["issued_on"] is None or pd.isna(order["issued_on"]):
                continue
            start = pd.Timestamp(order["issued_on"], tz="UTC")
            ax.axvline(start, color="black", linestyle="--", linewidth=1)
            ax.annotate(
                f"order {order['order_id']}",
                (start, len(asns) - 0.45),
                xytext=(3, 0),
                textcoords="offset points",
                fontsize=7,
                rotation=0,
            )
            end = order["ordered_end"]
            if end is not None and not pd.isna(end):
                ax.axvspan(
                    start, pd.Timestamp(end, tz="UTC"), color="#F0E442", alpha=0.25, linewidth=0, zorder=0
                )
            withdrawn = order["withdrawn_on"]
            if withdrawn is not None and not pd.isna(withdrawn):
                ax.axvline(pd.Timestamp(withdrawn, tz="UTC"), color="grey", linestyle=":", linewidth=1)
        handles.append(Patch(color="#F0E442", alpha=0.4, label="ordered period"))
    ax.set_yticks(range(len(asns)), [network_label(a, names) for a in reversed(asns)])
    ax.set_ylim(-0.8, max(len(asns), 1) - 0.2)
    ax.xaxis.set_major_locator(mdates.AutoDateLocator())
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.set_title(f"{domain}: when and how each network blocked it")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    if not asns:
        ax.text(0.5, 0.5, "no measurements", transform=ax.transAxes, ha="center")
    return fig


def _duration_words(ep: pd.Series) -> str:
    low, high = ep["duration_days_min"], ep["duration_days_max"]
    if ep["ongoing"] or high is None or pd.isna(high):
        return f"at least {low:.0f} days"
    if round(low) == round(high):
        return f"{low:.0f} days"
    return f"{low:.0f}–{high:.0f} days"


def blocked_share(verdicts: pd.DataFrame, domain: str | None = None) -> pd.DataFrame:
    """Share of conclusive verdicts that say blocked, by UTC day (rows) and network
    (columns); days a network did not measure conclusively are missing, not zero."""
    data = verdicts
    if domain is not None:
        data = data[data["domain"].map(bare_domain) == bare_domain(domain)]
    data = data[data["status"].isin(["blocked", "accessible"])]
    if data.empty:
        return pd.DataFrame()
    day = pd.to_datetime(data["measured_at"], utc=True).dt.floor("D")
    blocked = (data["status"] == "blocked").astype(float)
    table = blocked.groupby([day, data["probe_asn"]]).mean().unstack("probe_asn")
    full = pd.date_range(table.index.min(), table.index.max(), freq="D")
    return table.reindex(full)


def heatmap(
    verdicts: pd.DataFrame, domain: str | None = None, *, names: dict[int, str] | None = None
) -> Figure:
    share = blocked_share(verdicts, domain)
    fig = Figure(figsize=(11, 1.6 + 0.5 * max(1, share.shape[1])), layout="constrained")
    ax = fig.subplots()
    if share.empty:
        ax.text(0.5, 0.5, "no conclusive measurements", transform=ax.transAxes, ha="center")
        ax.set_axis_off()
        return fig
    days = mdates.date2num(share.index.tz_localize(None).to_pydatetime())
    image = ax.imshow(
        share.T.to_numpy(dtype=float),
        aspect="auto",
        interpolation="nearest",
        cmap="Reds",
        vmin=0,
        vmax=1,
        extent=(days[0], days[-1] + 1, share.shape[1] - 0.5, -0.5),
    )
    ax.set_yticks(range(share.shape[1]), [network_label(a, names) for a in share.columns])
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    fig.colorbar(image, ax=ax, label="share of measurements blocked", shrink=0.8)
    title = f"{bare_domain(domain)}: " if domain else ""
    ax.set_title(f"{title}blocked share by day and network (white: no conclusive measurement)")
    return fig


def save(fig: Figure, path: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write ``path`` with each suffix in ``formats``; returns the files written."""
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = base.with_suffix(f".{fmt}")
        fig.savefig(target, dpi=120, metadata={"Date": None} if fmt == "svg" else None)
        written.append(target)
    return written


__all__ = ["METHOD_COLOURS", "METHOD_WORDS", "blocked_share", "heatmap", "network_label", "save", "timeline"]

"""The charts read without explanation: fitted axes, dates with years, a legend of what occurs, no-data unlike 0 %."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import matplotlib.colors as mcolors
import pandas as pd
import pytest

from analysis import charts
from analysis.episodes import find_episodes
from analysis.fingerprints import load_fingerprints
from analysis.orders import load_orders
from analysis.synthetic import EXAMPLE_ORDERS_CSV, make_measurement
from analysis.verdicts import judge_all, verdicts_frame

DAY = datetime(2022, 10, 26, tzinfo=UTC)


@pytest.fixture(scope="module")
def one_day():
    """A lab day: ISP 1 blocks by DNS from 10:00, ISP 2 never, ISP 3 measures only in the morning."""
    ms = []
    for h in range(0, 24, 2):
        ms.append(
            make_measurement(
                "dns" if h >= 10 else "accessible",
                url="https://www.azattyk.org/",
                domain="www.azattyk.org",
                at=DAY + timedelta(hours=h),
                probe_asn=64601,
            )
        )
        ms.append(
            make_measurement(
                "accessible",
                url="https://www.azattyk.org/",
                domain="www.azattyk.org",
                at=DAY + timedelta(hours=h, minutes=1),
                probe_asn=64602,
            )
        )
        if h < 8:
            ms.append(
                make_measurement(
                    "accessible",
                    url="https://www.azattyk.org/",
                    domain="www.azattyk.org",
                    at=DAY + timedelta(hours=h, minutes=2),
                    probe_asn=64603,
                )
            )
    verdicts = verdicts_frame(judge_all(ms, fingerprints=load_fingerprints()))
    return verdicts, find_episodes(verdicts)


def test_timeline_fits_the_data_and_lists_only_what_occurs(one_day, tmp_path):
    """If an order runs for 60 days but the data covers one, then the x-axis covers the day, dates carry the year, and the legend has only DNS."""
    verdicts, episodes = one_day
    orders_csv = tmp_path / "orders.csv"
    orders_csv.write_text(EXAMPLE_ORDERS_CSV)
    labels = {64601: "ISP 1 (lab) (AS64601)", 64602: "ISP 2 (lab) (AS64602)", 64603: "ISP 3 (lab) (AS64603)"}
    fig = charts.timeline("azattyk.org", episodes, verdicts, load_orders(orders_csv), labels=labels)
    ax = fig.axes[0]
    import matplotlib.dates as mdates

    left, right = (mdates.num2date(x) for x in ax.get_xlim())
    assert left >= DAY - timedelta(hours=2) and right <= DAY + timedelta(hours=24)
    fig.canvas.draw()  # type: ignore[attr-defined]
    ticks = " ".join(t.get_text() for t in ax.get_xticklabels())
    assert "2022" in ticks
    assert ax.get_xlabel() and ax.get_ylabel() == "Network" and ax.get_title(loc="left")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "DNS tampering" in legend and "TLS/SNI interference" not in legend
    assert [t.get_text() for t in ax.get_yticklabels()][::-1] == list(labels.values()), "top row first"
    notes = [t.get_text() for t in ax.texts]
    assert any(n.startswith("at least 12 hours") or n.startswith("at least 11 hours") for n in notes), notes


def test_heatmap_cells_follow_the_cadence_and_no_data_differs_from_zero(one_day):
    """If measurements come every two hours, then cells are two hours wide, and a 0 % cell is neither white nor the no-data grey."""
    verdicts, _ = one_day
    share = charts.blocked_share(verdicts, "azattyk.org", freq=None)
    assert share.index[1] - share.index[0] == pd.Timedelta(hours=2)
    assert share[64603].isna().sum() > 0 and (share[64602] == 0).all()
    fig = charts.heatmap(verdicts, "azattyk.org")
    ax = fig.axes[0]
    assert "per 2 hours" in ax.get_title(loc="left")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["no conclusive measurement"]
    zero = mcolors.to_rgb(charts.SHARE_COLOURS(0.0))
    assert sum(zero) < 2.6, "0 % is a colour, not white"
    assert zero != mcolors.to_rgb(charts._NO_DATA)


def test_charts_of_simulated_data_say_so(one_day):
    """If the data is simulated, then both figures carry the words SIMULATED DATA."""
    verdicts, episodes = one_day
    for fig in (
        charts.timeline("azattyk.org", episodes, verdicts, simulated=["x"]),
        charts.heatmap(verdicts, "azattyk.org", simulated=["x"]),
    ):
        assert any("SIMULATED DATA" in t.get_text() for t in fig.texts)


def test_charts_survive_measurements_without_an_asn(one_day):
    """If no measurement has an AS number, then both charts draw an "unknown network" row instead of failing."""
    verdicts, _ = one_day
    blind = verdicts.assign(probe_asn=pd.array([None] * len(verdicts), dtype="Int64"))
    fig = charts.timeline("azattyk.org", find_episodes(blind), blind)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["unknown network"]
    heat = charts.heatmap(blind, "azattyk.org")
    assert [t.get_text() for t in heat.axes[0].get_yticklabels()] == ["unknown network"]


@pytest.mark.parametrize(
    ("lang", "network", "method", "year"),
    [("ru", "Сеть", "подмена DNS", "26 окт. 2022"), ("ky", "Тармак", "DNS алмаштыруу", "2022-ж. 26-окт.")],
)
def test_charts_speak_the_reports_language(one_day, tmp_path, lang, network, method, year):
    """If a chart is drawn in Russian or Kyrgyz, then its title, axes, legend, durations and dates are in that language, from the catalogs and Babel."""
    verdicts, episodes = one_day
    orders_csv = tmp_path / "orders.csv"
    orders_csv.write_text(EXAMPLE_ORDERS_CSV)
    fig = charts.timeline("azattyk.org", episodes, verdicts, load_orders(orders_csv), lang=lang, simulated=["x"])
    fig.canvas.draw()  # type: ignore[attr-defined]
    ax = fig.axes[0]
    assert ax.get_ylabel() == network and "UTC" in ax.get_xlabel() and "Date" not in ax.get_xlabel()
    assert "azattyk.org" in ax.get_title(loc="left") and "when" not in ax.get_title(loc="left")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert method in legend, legend
    ticks = " ".join(t.get_text() for t in ax.get_xticklabels()).replace("\u202f", " ")
    assert year in ticks, ticks
    notes = " ".join(t.get_text() for t in ax.texts)
    assert "hours" not in notes and "at least" not in notes, notes
    assert not any("SIMULATED" in t.get_text() for t in fig.texts)
    heat = charts.heatmap(verdicts, "azattyk.org", lang=lang)
    title = heat.axes[0].get_title(loc="left")
    assert title.startswith("azattyk.org: ") and "2" in title and "per" not in title, title
    assert heat.axes[0].get_ylabel() == network

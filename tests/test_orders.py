"""Orders: the file format, calendar months, and how each network enforced each order."""

from __future__ import annotations

import json
from datetime import date

import pytest

from analysis.bundled import orders_file
from analysis.episodes import find_episodes
from analysis.fingerprints import load_fingerprints
from analysis.orders import (
    ORDER_COLUMNS,
    OrdersFileError,
    add_duration,
    correlate,
    load_orders,
    orders_frame,
    parse_orders,
    unexplained_episodes,
)
from analysis.synthetic import EXAMPLE_ORDERS_CSV, example_history
from analysis.verdicts import judge_all, verdicts_frame
from tests.conftest import kuzot

HEADER = ",".join(ORDER_COLUMNS)


def test_the_projects_orders_file_loads_with_the_known_orders():
    orders = load_orders(orders_file()).set_index("order_id")
    azattyk = orders.loc["kg-2022-10-26-azattyk"]
    assert azattyk["issued_on"] == date(2022, 10, 26)
    assert azattyk["ordered_end"] == date(2022, 12, 26)  # two calendar months: 61 days
    assert "azattyk.org" in azattyk["domains"]
    assert orders.loc["kg-2022-06-15-respublica", "issued_on"] == date(2022, 6, 15)
    assert orders.loc["kg-2022-08-25-24kg", "issued_on"] == date(2022, 8, 25)
    assert all(url.startswith("http") for url in orders["source_url"])


def test_months_are_calendar_months():
    assert add_duration(date(2022, 10, 26), 60) == date(2022, 12, 26)
    assert add_duration(date(2023, 12, 31), 60) == date(2024, 2, 29)
    assert add_duration(date(2022, 1, 1), 45) == date(2022, 2, 15)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("o1,2022-13-01,M,law,a.kg,60,,,https://x.org,", "issued_on '2022-13-01' is not a date"),
        ("o1,2022-01-01,M,law,a.kg,sixty,,,https://x.org,", "duration_days 'sixty'"),
        ("o1,2022-01-01,M,law,,60,,,https://x.org,", "domains is empty"),
        ("o1,2022-01-01,M,law,https://a.kg/,60,,,https://x.org,", "is not a domain name"),
        ("o1,2022-01-01,M,law,a.kg,60,,,https://x.org", "expected 10 columns, found 9"),
        ("o1,2022-01-01,M,law,a.kg,60,2021-01-01,,https://x.org,", "before issued_on"),
        ("o1,2022-01-01,M,law,a.kg,60,,,ftp://x.org,", "source_url"),
    ],
)
def test_a_malformed_row_is_named_by_line(line, message):
    text = f"{HEADER}\nok,2022-01-01,M,law,b.kg,,,,https://x.org,fine\n{line}\n"
    with pytest.raises(OrdersFileError, match=message) as info:
        parse_orders(text, name="orders.csv")
    assert str(info.value).startswith("orders.csv:3:")


def test_bad_header_and_duplicates():
    with pytest.raises(OrdersFileError, match=r"orders\.csv:1: the header"):
        parse_orders("id,date\n", name="orders.csv")
    with pytest.raises(OrdersFileError, match="appears twice"):
        parse_orders(f"{HEADER}\na,,M,l,a.kg,,,,,\na,,M,l,b.kg,,,,,\n")


@pytest.fixture(scope="module")
def example():
    verdicts = verdicts_frame(judge_all(example_history(), fingerprints=load_fingerprints()))
    episodes = find_episodes(verdicts)
    orders = orders_frame(parse_orders(EXAMPLE_ORDERS_CSV))
    return verdicts, episodes, orders


def test_correlation_statuses_match_the_story(example):
    verdicts, episodes, orders = example
    table = correlate(orders, episodes, verdicts).set_index(["order_id", "domain", "probe_asn"])
    status = table["status"].to_dict()
    assert status[("ex-azattyk", "azattyk.org", 64601)] == "enforced"
    assert status[("ex-azattyk", "azattyk.org", 64602)] == "not_enforced"
    assert status[("ex-azattyk", "azattyk.org", 64603)] == "enforced"
    assert status[("ex-24kg", "24.kg", 64601)] == "enforced_after_withdrawal"
    assert status[("ex-24kg", "24.kg", 64602)] == "not_enforced"
    assert all(status[("ex-kloop", "kloop.kg", asn)] == "not_enforced" for asn in (64601, 64602, 64603))
    assert table.loc[("ex-azattyk", "rus.azattyk.org")]["status"].tolist() == ["no_data"]
    a = table.loc[("ex-azattyk", "azattyk.org", 64601)]
    assert 1 <= a["enforcement_lag_days"] <= 2
    assert a["ordered_days"] == 61
    assert a["blocked_days_min"] <= 59.6 <= a["blocked_days_max"]
    c = table.loc[("ex-azattyk", "azattyk.org", 64603)]
    assert 11 <= c["days_past_order_end"] <= 13  # kept blocking twelve days past the order's end
    w = table.loc[("ex-24kg", "24.kg", 64601)]
    assert 3 <= w["days_after_withdrawal"] <= 6
    assert len(a["episode_ids"]) == 1


def test_unexplained_blocks_are_listed(example):
    _verdicts, episodes, orders = example
    unexplained = unexplained_episodes(orders, episodes)
    assert unexplained["domain"].tolist() == ["azattyk.gitlab.io"]
    assert bool(unexplained.loc[0, "ongoing"])


def test_undated_and_superseded_orders_explain_nothing(example):
    verdicts, episodes, _orders = example
    text = (
        f"{HEADER}\nundated,,M,l,azattyk.org,,,,,\n"
        "old,2020-01-01,M,l,24.kg,,,,,\nnewer,2021-01-01,M,l,24.kg,,,,,\n"
    )
    orders = orders_frame(parse_orders(text))
    table = correlate(orders, episodes, verdicts)
    assert set(table[table["order_id"] == "undated"]["status"]) == {"no_data"}
    assert set(table[table["order_id"] == "old"]["status"]) == {"no_data"}
    assert "enforced" in set(table[table["order_id"] == "newer"]["status"])
    assert {"azattyk.org"} <= set(unexplained_episodes(orders, episodes)["domain"])


def test_cli_episodes_and_orders(history_db):
    result = kuzot("episodes", "--db", history_db["db"], "--format", "json")
    assert result.returncode == 0, result.stderr
    episodes = json.loads(result.stdout)
    keys = {
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
    }
    assert episodes and all(keys <= set(e) for e in episodes)
    azattyk = [e for e in episodes if e["domain"] == "azattyk.org" and e["probe_asn"] == 64601]
    assert len(azattyk) == 1 and azattyk[0]["blocking"] == "dns"
    assert azattyk[0]["first_blocked"].startswith("2022-10-2")

    only = kuzot(
        "episodes",
        "--db",
        history_db["db"],
        "--domain",
        "www.azattyk.org",
        "--asn",
        "AS64603",
        "--format",
        "csv",
    )
    assert only.returncode == 0, only.stderr
    lines = only.stdout.strip().splitlines()
    assert lines[0].startswith("domain,probe_asn,blocking") and len(lines) == 2 and "tls" in lines[1]

    table = kuzot(
        "orders", "--db", history_db["db"], "--orders", str(history_db["orders"]), "--format", "table"
    )
    assert table.returncode == 0, table.stderr
    assert "enforced_after_withdrawal" in table.stdout and "not_enforced" in table.stdout

    unexplained = kuzot(
        "orders",
        "--db",
        history_db["db"],
        "--orders",
        str(history_db["orders"]),
        "--unexplained",
        "--format",
        "json",
    )
    assert [e["domain"] for e in json.loads(unexplained.stdout)] == ["azattyk.gitlab.io"]


def test_cli_bad_orders_file_exits_2_naming_the_line(history_db, tmp_path):
    bad = tmp_path / "orders.csv"
    bad.write_text(f"{HEADER}\nx,2022-02-30,M,l,a.kg,,,,,\n")
    result = kuzot("orders", "--db", history_db["db"], "--orders", str(bad))
    assert result.returncode == 2
    assert f"{bad}:2:" in result.stderr and "not a date" in result.stderr
    missing = kuzot("orders", "--db", history_db["db"], "--orders", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_cli_charts_are_written_and_not_trivial(history_db, tmp_path):
    out = tmp_path / "charts" / "azattyk-timeline"
    result = kuzot(
        "chart",
        "timeline",
        "--db",
        history_db["db"],
        "--domain",
        "azattyk.org",
        "--orders",
        str(history_db["orders"]),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    png, svg = out.with_suffix(".png"), out.with_suffix(".svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert "<svg" in svg.read_text()[:2000] and "AS64601" in svg.read_text()
    heat = kuzot("chart", "heatmap", "--db", history_db["db"], "--out", str(tmp_path / "heat"))
    assert heat.returncode == 0, heat.stderr
    assert (tmp_path / "heat.png").stat().st_size > 10_000
    no_domain = kuzot("chart", "timeline", "--db", history_db["db"], "--out", str(tmp_path / "x"))
    assert no_domain.returncode == 2 and "--domain" in no_domain.stderr


def test_png_has_more_than_one_colour(history_db, tmp_path):
    """A chart that rendered is not a blank canvas: many distinct colours."""
    from matplotlib import image

    out = tmp_path / "t"
    kuzot(
        "chart",
        "timeline",
        "--db",
        history_db["db"],
        "--domain",
        "azattyk.org",
        "--out",
        str(out),
        "--image-format",
        "png",
    )
    pixels = image.imread(out.with_suffix(".png"))
    colours = {tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::50].round(2).tolist()}
    assert len(colours) > 10
    assert not out.with_suffix(".svg").exists()


def test_no_episodes_at_all_gives_an_empty_table_with_its_columns(example):
    """A database with no blocking (all accessible, say) still has an empty unexplained
    table with the episode columns, so a report over it renders instead of failing."""
    _verdicts, episodes, orders = example
    none = episodes.iloc[0:0]
    unexplained = unexplained_episodes(orders, none)
    assert len(unexplained) == 0 and list(unexplained.columns) == list(episodes.columns)

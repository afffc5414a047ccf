"""The Explorer's incremental refresh: new verdicts folded into the snapshot give the pages a full rebuild gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from analysis.episodes import find_episodes
from analysis.orders import orders_frame, parse_orders
from analysis.synthetic import EXAMPLE_ORDERS_CSV, example_history
from probe.store import Store
from probe.web import queries
from probe.web.cache import JudgingProvider, Snapshot, _index, fold
from probe.web.source import Source

NOW = datetime(2023, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    directory = tmp_path_factory.mktemp("refresh")
    db = f"sqlite:///{directory / 'k.db'}"
    store = Store.open(db)
    store.save_measurements(example_history(every=timedelta(days=3)))
    store.close()
    source = Source(db)
    try:
        verdicts, _ = JudgingProvider(source).verdicts_since(None)
    finally:
        source.close()
    return verdicts, orders_frame(parse_orders(EXAMPLE_ORDERS_CSV))


def _built(verdicts: pd.DataFrame, orders: pd.DataFrame) -> Snapshot:
    return _index(1, verdicts, find_episodes(verdicts), orders, None)


def _pages(snap: Snapshot) -> list:
    domains = sorted({d for d, _ in snap.series})
    episodes = queries.episodes_list(snap, limit=500)
    return [
        queries.overview(snap, now=NOW, limit=500),
        episodes,
        [queries.site(snap, d) for d in domains],
        [queries.site_verdicts(snap, d, limit=500) for d in domains],
        [queries.episode(snap, e["episode_id"], limit=500) for e in episodes["episodes"]],
        [queries.order(snap, o["order_id"]) for o in queries.orders_list(snap)["orders"]],
    ]


def test_folding_new_verdicts_gives_the_pages_a_rebuild_gives(judged):
    """If the later half of a history is folded into a snapshot of the earlier half, then every page says what a snapshot built from everything says, and only the touched series were rebuilt."""
    verdicts, orders = judged
    cut = verdicts["measured_at"].quantile(0.6)
    early, late = verdicts[verdicts["measured_at"] < cut], verdicts[verdicts["measured_at"] >= cut]
    # One network's late measurements: the other networks' series must stay where they were.
    one = late[late["probe_asn"] == late["probe_asn"].iloc[0]]
    partial = fold(_built(early, orders), one, None)
    assert partial.version == 2
    assert _pages(partial) == _pages(_built(pd.concat([early, one]), orders))
    untouched = [k for k in partial.series if k[1] != one["probe_asn"].iloc[0]]
    first = _built(early, orders)
    assert untouched and all(partial.series[k] == first.series[k] for k in untouched)
    whole = fold(partial, late.drop(one.index), None)
    assert _pages(whole) == _pages(_built(verdicts, orders))
    assert whole.measurements == len(verdicts)


def test_refolding_the_same_verdicts_compacts_and_changes_nothing(judged):
    """If the same measurements are judged again and folded in repeatedly, then nothing counts twice, and once the left-behind rows outnumber the live ones the snapshot is compacted."""
    verdicts, orders = judged
    snap = _built(verdicts, orders)
    expected = _pages(snap)
    again = verdicts[verdicts["probe_asn"] == verdicts["probe_asn"].iloc[0]]
    dead = []
    for _ in range(6):
        snap = fold(snap, again, None)
        dead.append(snap.dead)
        assert snap.measurements == len(verdicts)
        assert _pages(snap) == expected
    assert max(dead) > 0 and 0 in dead[1:]
    assert len(snap.verdicts) <= 2 * len(verdicts) + len(again)


def test_module_sizes_stay_small():
    """If the Explorer's modules are measured, then none is over 500 lines."""
    for path in (Path(__file__).resolve().parents[1] / "probe" / "web").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 500, path.name

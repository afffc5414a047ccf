"""Verdicts cached per rules version and fingerprints: judged once, read back after."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import analysis.verdict_cache as cache
from analysis.fingerprints import load_fingerprints
from analysis.verdicts import judge_all, verdicts_frame
from probe.formats.ooni import measurement_from_ooni
from probe.store import Store
from tests.test_ooni_format import dns_blocked_line, nxdomain_line, ooni_line


def _store(db: str, lines: list[dict]) -> list:
    store = Store.open(db)
    measurements = [measurement_from_ooni(x) for x in lines]
    store.save_measurements(measurements, source="ooni")
    store.close()
    return measurements


def test_second_read_comes_from_the_cache_and_only_new_measurements_are_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If verdicts are read twice with one new measurement between, then the second read judges only that one and equals judging everything."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    fps = load_fingerprints()
    first_lines = [ooni_line(), dns_blocked_line()]
    _store(db, first_lines)
    judged: list[int] = []

    def counting(items, **kw):
        items = list(items)
        judged.append(sum(1 for m in items if m.role != "canary"))
        return judge_all(items, **kw)

    monkeypatch.setattr(cache, "judge_all", counting)
    first = cache.cached_verdicts(db, fingerprints=fps)
    assert sum(judged) == 2 and len(first) == 2
    _store(db, [nxdomain_line()])
    second = cache.cached_verdicts(db, fingerprints=fps)
    assert sum(judged) == 3
    measurements = [measurement_from_ooni(x) for x in [*first_lines, nxdomain_line()]]
    expected = verdicts_frame(judge_all(measurements, fingerprints=fps)).sort_values("measurement_id")
    got = second.sort_values("measurement_id")
    for column in ("measurement_id", "status", "blocking", "rule_id", "reason", "confirmed", "rules_version"):
        assert list(got[column]) == list(expected[column]), column
    assert [list(x) for x in got["observation_ids"]] == [list(x) for x in expected["observation_ids"]]
    assert list(got["measured_at"]) == list(expected["measured_at"])
    third = cache.cached_verdicts(db, fingerprints=fps, domain="blocked.example.org")
    assert sum(judged) == 3 and list(third["status"]) == list(
        expected[expected["domain"] == "blocked.example.org"]["status"]
    )



def test_new_rules_version_judges_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the rules version changes, then every measurement is judged again under it and the old rows stay until pruned."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    fps = load_fingerprints()
    _store(db, [ooni_line(), dns_blocked_line()])
    cache.cached_verdicts(db, fingerprints=fps)
    monkeypatch.setattr(cache, "RULES_VERSION", "9999.1.1")
    calls: list[int] = []
    real = cache.judge_all
    monkeypatch.setattr(cache, "judge_all", lambda items, **kw: calls.append(1) or real(items, **kw))
    cache.cached_verdicts(db, fingerprints=fps)
    assert calls == [1]
    assert cache.prune(db) == 2


def test_parallel_judging_gives_the_same_verdicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If many records are judged in worker processes, then the verdicts equal judging in one process."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    fps = load_fingerprints()
    lines = [ooni_line(), dns_blocked_line(), nxdomain_line()]
    _store(db, lines)
    monkeypatch.setattr(cache, "JUDGE_CHUNK", 1)
    monkeypatch.setattr(cache, "PARALLEL_ABOVE", 2)
    got = cache.cached_verdicts(db, fingerprints=fps, workers=2)
    expected = verdicts_frame(judge_all([measurement_from_ooni(x) for x in lines], fingerprints=fps))
    assert sorted(zip(got["measurement_id"], got["rule_id"], strict=True)) == sorted(
        zip(expected["measurement_id"], expected["rule_id"], strict=True)
    )


def _history() -> list:
    from datetime import UTC, date, datetime, timedelta

    from analysis.synthetic import BlockTruth, HistorySpec, generate_history

    start = datetime(2022, 10, 1, tzinfo=UTC)
    spec = HistorySpec(
        start=start,
        end=start + timedelta(days=6),
        asns={8449: "ElCat", 12997: "Kyrgyztelecom"},
        domains=["azattyk.org", "kloop.kg"],
        blocks=[BlockTruth("azattyk.org", 8449, start + timedelta(days=2), None)],
        offline_days={12997: [date(2022, 10, 4)]},
        seed=5,
    )
    return list(generate_history(spec))


def test_streamed_frame_equals_judging_everything_and_a_warm_read_judges_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a history with canaries and offline days is read cold and then warm, then both frames equal judging everything in memory and the warm read judges nothing."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    fps = load_fingerprints()
    measurements = _history()
    store = Store.open(db)
    store.save_measurements(measurements, source="lab")
    store.close()
    expected = verdicts_frame(judge_all(measurements, fingerprints=fps))
    expected = expected.sort_values(["measured_at", "measurement_id"], kind="mergesort").reset_index(drop=True)
    assert "probe_offline" in set(expected["status"])
    monkeypatch.setattr(cache, "JUDGE_CHUNK", 7)  # many chunks, each a whole run
    cold = cache.cached_verdicts(db, fingerprints=fps)
    judged: list[int] = []
    monkeypatch.setattr(cache, "judge_all", lambda items, **kw: judged.append(len(list(items))) or [])
    warm = cache.cached_verdicts(db, fingerprints=fps)
    assert judged == []
    for got in (cold, warm):
        pd.testing.assert_frame_equal(got, expected)


def test_the_frame_is_compact_and_holds_the_same_values(tmp_path: Path) -> None:
    """If verdicts are read from the cache, then the few-valued columns are categoricals, the ids Arrow strings when pyarrow is installed, and the values those of plain columns."""
    import importlib.util

    from analysis.verdicts.verdict import CATEGORY_COLUMNS, id_dtype

    db = f"sqlite:///{tmp_path / 'k.db'}"
    fps = load_fingerprints()
    measurements = _history()
    store = Store.open(db)
    store.save_measurements(measurements, source="lab")
    store.close()
    frame = cache.cached_verdicts(db, fingerprints=fps)
    for name in CATEGORY_COLUMNS:
        assert isinstance(frame[name].dtype, pd.CategoricalDtype), name
    storage = "pyarrow" if importlib.util.find_spec("pyarrow") else "python"
    assert frame["measurement_id"].dtype == id_dtype() and id_dtype().storage == storage
    by_id = {m.id: m for m in measurements}
    row = frame.iloc[0]
    assert isinstance(row["measurement_id"], str) and row["domain"] == by_id[row["measurement_id"]].domain
    assert frame["status"].astype(str).isin(["accessible", "blocked", "down", "probe_offline", "inconclusive"]).all()
    assert frame["blocking"].isna().sum() == (~frame["status"].eq("blocked")).sum()


def test_without_pyarrow_the_ids_are_plain_strings() -> None:
    """If pyarrow is not installed, then verdict frames still work, their ids pandas' own strings."""
    import subprocess
    import sys

    # A fresh interpreter in which pyarrow cannot be imported, before pandas looks for it.
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from analysis.episodes import find_episodes\n"
        "from analysis.fingerprints import load_fingerprints\n"
        "from analysis.verdicts import judge_all, verdicts_frame\n"
        "from tests.test_verdict_cache import _history\n"
        "frame = verdicts_frame(judge_all(_history(), fingerprints=load_fingerprints()))\n"
        "print(frame['measurement_id'].dtype.storage, frame['status'].dtype, len(find_episodes(frame)))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["python", "category", "1"]


def test_a_read_only_database_hands_back_the_verdicts_it_could_not_cache(tmp_path: Path) -> None:
    """If the database cannot take the verdicts (opened read-only), then judge_stored returns every one, equal to judging the records directly."""
    path = tmp_path / "ro.db"
    measurements = _store(f"sqlite:///{path}", [ooni_line(), dns_blocked_line(), nxdomain_line()])
    fps = load_fingerprints()
    judged, unstored = cache.judge_stored(f"sqlite:///file:{path}?mode=ro&uri=true", fingerprints=fps)
    expected = judge_all(measurements, fingerprints=fps)
    assert judged == 3
    key = lambda v: v.measurement_id  # noqa: E731
    assert sorted(unstored, key=key) == sorted(expected, key=key)


def test_the_cache_is_written_and_read_on_either_backend(new_db) -> None:
    """If verdicts are judged on SQLite or PostgreSQL, then they are cached there (a second read judges nothing) and equal judging the records directly."""
    from probe.store.readers import open_engine

    db = new_db()
    fps = load_fingerprints()
    measurements = _store(db, [ooni_line(), dns_blocked_line(), nxdomain_line()])
    first = cache.cached_verdicts(db, fingerprints=fps)
    expected = verdicts_frame(judge_all(measurements, fingerprints=fps)).sort_values("measurement_id")
    got = first.sort_values("measurement_id")
    for column in ("measurement_id", "status", "blocking", "rule_id"):
        assert list(got[column]) == list(expected[column]), column
    engine = open_engine(db)
    try:
        with engine.connect() as conn:
            cached = conn.exec_driver_sql("SELECT count(*) FROM verdict_cache").scalar()
    finally:
        engine.dispose()
    assert cached == len(expected)


@pytest.mark.parametrize("batch", [1, 3, 5000])
def test_reading_in_pages_smaller_than_a_run_judges_the_same(tmp_path: Path, batch: int) -> None:
    """If the records to judge are read a page at a time (each page its own short read,
    so that SQLite can checkpoint its log while verdicts are written), with pages
    smaller than a run, then every measurement, with or without a run, is judged once,
    each run whole with its canaries, as in memory."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    fps = load_fingerprints()
    history = _history()
    loose = [measurement_from_ooni(x) for x in (ooni_line(), dns_blocked_line(), nxdomain_line())]
    assert all(m.run_id is None for m in loose) and all(m.run_id for m in history)
    store = Store.open(db)
    store.save_measurements(history, source="lab")
    store.save_measurements(loose, source="ooni")
    store.close()
    expected = verdicts_frame(judge_all([*history, *loose], fingerprints=fps))
    expected = expected.sort_values("measurement_id").reset_index(drop=True)
    judged, unstored = cache.judge_stored(db, fingerprints=fps, batch=batch)
    assert judged == len(expected) and unstored == []
    got = cache.cached_verdicts(db, fingerprints=fps).sort_values("measurement_id").reset_index(drop=True)
    for column in ("measurement_id", "status", "blocking", "rule_id", "reason"):
        assert list(got[column]) == list(expected[column]), column

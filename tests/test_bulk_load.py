"""A large import defers the observation indexes and always gets them back, even when killed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from probe.ooni_archive import importer as importer_module
from probe.ooni_archive.importer import Importer
from probe.store import Store
from probe.store.bulk_load import BulkLoad, deferred_indexes
from tests.test_ooni_format import ooni_line

NAMES = {index.name for index in deferred_indexes()}


def _indexes(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def _lines(path: Path, n: int) -> Path:
    with path.open("w") as out:
        for i in range(n):
            out.write(
                json.dumps(
                    ooni_line(f"https://site{i}.kg/", start=f"2022-10-27 06:{i // 60:02d}:{i % 60:02d}")
                )
            )
            out.write("\n")
    return path


def test_the_four_indexes_are_the_observation_tables_measurement_id() -> None:
    """If the deferred indexes are listed, then they are the measurement_id index of each observation table."""
    assert {f"ix_{t}_observations_measurement_id" for t in ("dns", "tcp", "tls", "http")} == NAMES


def test_a_large_import_defers_then_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If an import passes the threshold, then the indexes are gone while it stores and back, complete, when it ends."""
    monkeypatch.setattr(importer_module, "DEFER_INDEXES_AFTER", 1)
    db = tmp_path / "k.db"
    store = Store.open(f"sqlite:///{db}")
    seen_during: list[set[str]] = []
    reopened: list[set[str]] = []
    synchronous: list[int] = []

    def pragma() -> int:
        with store.engine.connect() as connection:
            return int(connection.exec_driver_sql("PRAGMA synchronous").scalar() or 0)

    def progress(lines: int, stored: int) -> None:
        seen_during.append(_indexes(db))
        synchronous.append(pragma())
        Store.open(f"sqlite:///{db}").close()  # another open while the load runs
        reopened.append(_indexes(db))

    path = _lines(tmp_path / "in.jsonl", 30)
    try:
        with Importer(store, workers=1, on_progress=progress) as importer:
            outcome = importer.import_file(path)
            importer.import_file(_lines(tmp_path / "more.jsonl", 40))
        synchronous.append(pragma())
    finally:
        store.close()
    assert outcome.stored == 30
    assert seen_during and not (NAMES & seen_during[0]), "the first flush deferred the indexes"
    assert not (NAMES & reopened[0]), "an open during the load left them to the loader"
    assert _indexes(db) >= NAMES
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        plan = " ".join(
            str(r)
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM dns_observations WHERE measurement_id = 'x'"
            )
        )
        assert "ix_dns_observations_measurement_id" in plan
        assert conn.execute("SELECT count(DISTINCT measurement_id) FROM dns_observations").fetchone() == (40,)
    assert synchronous[0] == 1 and synchronous[-1] == 2, "NORMAL while loading, FULL again after"


def test_a_small_import_keeps_its_indexes(tmp_path: Path) -> None:
    """If an import stays under the threshold, then the indexes are never dropped."""
    db = tmp_path / "k.db"
    store = Store.open(f"sqlite:///{db}")
    during: list[set[str]] = []
    try:
        with Importer(store, workers=1, on_progress=lambda *_: during.append(_indexes(db))) as importer:
            assert importer.import_file(_lines(tmp_path / "in.jsonl", 5)).stored == 5
    finally:
        store.close()
    assert during and all(seen >= NAMES for seen in during)


_KILLED_LOADER = """
import os, signal, sys
from probe.store import Store
from probe.store.bulk_load import BulkLoad
store = Store.open(sys.argv[1])
load = BulkLoad(store.engine)  # held: the lock lives as long as it
assert load.defer()
print("deferred", flush=True)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.readline()
"""


def _loader(db: Path, mode: str) -> tuple[list[str], dict[str, str]]:
    """A new database, and the command (with its environment) of a loader process on it."""
    Store.open(f"sqlite:///{db}").close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return [sys.executable, "-c", _KILLED_LOADER, f"sqlite:///{db}", mode], env


def test_a_killed_import_leaves_the_rebuild_to_the_next_open(tmp_path: Path) -> None:
    """If a loader is killed with its indexes deferred, then the next Store.open builds them again."""
    db = tmp_path / "k.db"
    command, env = _loader(db, "kill")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == -signal.SIGKILL and "deferred" in done.stdout, done.stderr
    assert not (NAMES & _indexes(db))
    Store.open(f"sqlite:///{db}").close()
    assert _indexes(db) >= NAMES


def test_an_open_waits_for_a_living_loader(tmp_path: Path) -> None:
    """If another process is loading with its indexes deferred, then an open leaves them to it."""
    db = tmp_path / "k.db"
    command, env = _loader(db, "wait")
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "deferred"
        Store.open(f"sqlite:///{db}").close()
        assert not (NAMES & _indexes(db))
    finally:
        proc.kill()
        proc.wait(timeout=30)
    Store.open(f"sqlite:///{db}").close()
    assert _indexes(db) >= NAMES


def test_postgres_or_memory_does_not_defer() -> None:
    """If the store is not a SQLite file, then a bulk load has nothing to defer."""
    store = Store.open("sqlite:///:memory:")
    try:
        load = BulkLoad(store.engine)
        assert load.defer() is False and not load.deferred
        load.finish()
    finally:
        store.close()


def test_a_failed_rebuild_is_left_to_the_next_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If building the indexes fails as a load ends (a full disk), then finishing does not raise and the next open builds them."""
    from sqlalchemy.exc import OperationalError

    from probe.store import bulk_load

    db = tmp_path / "k.db"
    store = Store.open(f"sqlite:///{db}")
    load = BulkLoad(store.engine)
    assert load.defer()

    def full_disk(*_: object) -> None:
        raise OperationalError("CREATE INDEX", {}, Exception("database or disk is full"))

    monkeypatch.setattr(bulk_load, "_build", full_disk)
    load.finish()
    store.close()
    assert not load.deferred and not (NAMES & _indexes(db))
    monkeypatch.undo()
    Store.open(f"sqlite:///{db}").close()
    assert _indexes(db) >= NAMES

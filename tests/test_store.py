"""The store: idempotent saves, reading back, and a full disk reported, not crashed."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from probe.failures import Failure
from probe.records import DnsAnswer, DnsObservation, HttpObservation, Measurement, Run, utc_now
from probe.store import Store, StoreError


def make_measurement(**changes: object) -> Measurement:
    m = Measurement(
        id=str(uuid.uuid4()),
        url="https://24.kg/",
        domain="24.kg",
        started_at=utc_now(),
        probe_asn=12345,
        dns=[
            DnsObservation(
                id="dns/0",
                hostname="24.kg",
                query_type="A",
                resolver="127.0.0.53:53",
                transport="udp",
                started=0.0,
                finished=0.01,
                rcode="NOERROR",
                answers=[DnsAnswer("A", "127.1.2.3", 300)],
            )
        ],
        http=[
            HttpObservation(
                id="http/0",
                url="https://24.kg/",
                ip="127.1.2.3",
                started=0.1,
                finished=0.2,
                failure=Failure.CONNECTION_RESET,
                body_sample=b"\x00\xffbinary",
            )
        ],
    )
    for key, value in changes.items():
        setattr(m, key, value)
    return m


def test_save_is_idempotent_and_round_trips(tmp_path: Path) -> None:
    """If the same measurement is saved twice, then it is stored once and reads back identical."""
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    m = make_measurement()
    assert store.save_measurement(m) is True
    assert store.save_measurement(m) is False
    assert store.count_measurements() == 1
    assert list(store.iter_measurements()) == [m]


def test_schema_is_created_by_migrations(tmp_path: Path) -> None:
    """If a new database is opened, then Alembic creates every table and records its revision."""
    Store.open(f"sqlite:///{tmp_path / 'k.db'}").close()
    with sqlite3.connect(tmp_path / "k.db") as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        assert {"runs", "measurements", "dns_observations", "tcp_observations", "tls_observations"} <= tables
        assert conn.execute("select version_num from alembic_version").fetchone()[0]
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_runs_hold_no_probe_address(tmp_path: Path) -> None:
    """If a run is recorded, then its row has resolver addresses but no field for the probe's IP."""
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    store.begin_run(Run(id="r1", started_at=utc_now(), resolvers=["127.0.0.53:53"], probe_asn=1))
    store.finish_run("r1", "finished")
    (run,) = store.runs()
    assert run.status == "finished" and run.finished_at is not None
    with sqlite3.connect(tmp_path / "k.db") as conn:
        columns = {r[1] for r in conn.execute("pragma table_info(runs)")}
    assert not {c for c in columns if "ip" in c.split("_")}


def test_full_disk_is_a_clear_error_and_keeps_earlier_data(tmp_path: Path) -> None:
    """If the database cannot grow (disk full), then saving raises StoreError and earlier rows survive."""
    path = tmp_path / "k.db"
    store = Store.open(f"sqlite:///{path}")
    first = make_measurement()
    store.save_measurement(first)
    store.close()
    # Cap the file at its current size: SQLite then fails exactly as on a full disk.
    from sqlalchemy import event

    store = Store.open(f"sqlite:///{path}")

    @event.listens_for(store.engine, "connect")
    def _cap(dbapi_connection: object, _record: object) -> None:
        cur = dbapi_connection.cursor()  # type: ignore[attr-defined]
        pages = cur.execute("pragma page_count").fetchone()[0]
        cur.execute(f"pragma max_page_count={pages}")
        cur.close()

    store.engine.dispose()
    big = make_measurement()
    big.http[0].body_sample = b"x" * 200_000
    with pytest.raises(StoreError, match="full"):
        store.save_measurement(big)
    store.close()
    assert [m.id for m in Store.open(f"sqlite:///{path}").iter_measurements()] == [first.id]

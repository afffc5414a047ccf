"""The store: idempotent saves, reading back, and a full disk reported, not crashed."""

from __future__ import annotations

import os
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
    big.http[0].body_sample = os.urandom(200_000)  # records are compressed: incompressible
    with pytest.raises(StoreError, match="full"):
        store.save_measurement(big)
    store.close()
    assert [m.id for m in Store.open(f"sqlite:///{path}").iter_measurements()] == [first.id]


def test_writer_commits_in_batches_and_reports_only_what_is_committed(tmp_path: Path) -> None:
    """If ten measurements reach the run's writer at once, then they are committed in batches of at most four and each is reported done only when already stored."""
    import trio

    from probe.signing import SigningKey
    from probe.store.writer import Finished, MeasurementWriter

    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    sent = [make_measurement() for _ in range(10)]
    reported: list[str] = []

    async def committed(item: Finished) -> None:
        assert item.measurement.id in store.measurement_ids()
        reported.append(item.measurement.id)

    writer = MeasurementWriter(
        store, on_committed=committed, sign_hash=SigningKey.generate().sign_hash, max_delay=60, max_items=4
    )

    async def main() -> None:
        send, receive = writer.open_channel()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run, receive)
            async with send:
                for m in sent:
                    await send.send(Finished(m, 100))

    trio.run(main)
    assert reported == [m.id for m in sent]
    assert writer.commits == 3
    stored = list(store.iter_measurements())
    assert sorted(m.id for m in stored) == sorted(m.id for m in sent)
    with sqlite3.connect(tmp_path / "k.db") as conn:
        assert conn.execute("select count(*) from measurements where signature is null").fetchone()[0] == 0
        assert conn.execute("select sum(bytes_used) from measurements").fetchone()[0] == 1000


def test_writer_cancelled_still_commits_what_had_finished(tmp_path: Path) -> None:
    """If the run is cancelled while finished measurements wait for their batch, then the writer commits them before it ends."""
    import trio

    from probe.store.writer import Finished, MeasurementWriter

    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    sent = [make_measurement() for _ in range(3)]
    writer = MeasurementWriter(store, max_delay=600, max_items=100)

    async def main() -> None:
        send, receive = writer.open_channel()
        with trio.move_on_after(0.5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer.run, receive)
                for m in sent:
                    await send.send(Finished(m))
                await trio.sleep_forever()

    trio.run(main)
    assert store.measurement_ids() == {m.id for m in sent}


def test_one_writer_keeps_each_callers_rules(tmp_path: Path) -> None:
    """If an id comes again with changed content, then an upload is refused (409's BatchConflict) while a run or an import keeps the stored one."""
    from probe.store.database import BatchConflict, prepare_item

    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    m = make_measurement()
    assert store.save_prepared([prepare_item(m)], source="kuzot", changed="keep") == [True]
    m.annotations["changed"] = "yes"
    assert store.save_prepared([prepare_item(m)], source="ooni", changed="keep", chunk=1) == [False]
    with pytest.raises(BatchConflict) as refused:
        store.save_prepared([prepare_item(make_measurement()), prepare_item(m)], source="upload")
    assert [p[:2] for p in refused.value.problems] == [(1, "record.id")]
    assert store.count_measurements() == 1

"""Records compressed at rest: byte-identical reads, old rows readable, the migration.

On SQLite and PostgreSQL (the ``backend`` fixture), since the stored column differs
(SQLite keeps its TEXT column, holding text and blobs; PostgreSQL's is ``bytea``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, text

from analysis.evidence import write_evidence
from probe.store import Store, readers
from probe.store.engine import upgrade_schema
from probe.store.models import MeasurementRow
from probe.store.record_codec import RecordError, decode_record, encode_record
from probe.store.rows import prepare_item
from tests.test_store import make_measurement


def test_encoding_is_lossless_and_compact() -> None:
    """If a record is encoded, then it decodes to the same text, and a large one shrinks."""
    record = make_measurement(annotations={"h": "x-header: value; " * 200}).canonical_json().decode()
    stored = encode_record(record)
    assert decode_record(stored) == record and decode_record(memoryview(stored)) == record
    assert len(stored) < len(record) / 3
    assert decode_record(record) == record and decode_record(record.encode()) == record
    with pytest.raises(RecordError):
        decode_record(b"\x01not zlib")
    with pytest.raises(RecordError):
        decode_record(b"\x09?")


def test_stored_records_read_byte_identical(new_db: Callable[[], str], backend: str) -> None:
    """If measurements are saved, then every reader hands back the canonical text, byte for byte, stored compressed."""
    url = new_db()
    store = Store.open(url)
    ms = [make_measurement() for _ in range(3)]
    try:
        store.save_measurements(ms)
        assert sorted(store.iter_measurements(), key=lambda m: m.id) == sorted(ms, key=lambda m: m.id)
    finally:
        store.close()
    expected = {m.id: m.canonical_json().decode() for m in ms}
    assert sorted(readers.iter_records(url)) == sorted(expected.values())
    envelopes = list(readers.iter_envelopes(url, list(expected), ("id", "record"), chunk=10))
    assert {row.id: row.record for row in envelopes} == expected
    engine = create_engine(url)
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT record FROM measurements")).scalars().all()
    engine.dispose()
    assert all(bytes(value)[:1] == b"\x01" for value in raw)


def test_old_uncompressed_rows_still_read(new_db: Callable[[], str], backend: str, tmp_path: Path) -> None:
    """If a database written before migration 0005 is opened, then it is upgraded and its old records read as before, beside new compressed ones."""
    url = new_db()
    engine = create_engine(url)
    upgrade_schema(engine, "0004")
    old = make_measurement()
    record = old.canonical_json().decode()
    row = prepare_item(old).row
    with engine.begin() as conn:
        stored_at = {"source": "kuzot", "stored_at": old.started_at}
        conn.execute(insert(MeasurementRow.__table__), [{**row, **stored_at}])
        # As written before 0005: the record's text itself (the type's encoding bypassed).
        conn.execute(text("UPDATE measurements SET record = :r WHERE id = :id"), {"r": record, "id": old.id})
        assert conn.execute(text("SELECT record FROM measurements")).scalar() == record
    engine.dispose()
    store = Store.open(url)  # upgrades to head
    new = make_measurement()
    try:
        store.save_measurement(new)
        assert sorted(store.iter_measurements(), key=lambda m: m.id) == sorted([old, new], key=lambda m: m.id)
    finally:
        store.close()
    assert sorted(readers.iter_records(url)) == sorted([record, new.canonical_json().decode()])
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0005"
    engine.dispose()
    lines = write_evidence(url, [old.id, new.id], tmp_path).read_bytes().splitlines()
    assert any(record.encode() in line for line in lines)

"""The one place a measurement's canonical record is encoded for storage and decoded back.

Why compressed at rest: an imported OONI measurement keeps about 4 KB of canonical JSON
(mostly the response and control headers of large sites), which with its index rows
went over the 4 KB per measurement target (issue 17).  JSON of that kind deflates to a
third or less, and deflate is lossless: :func:`decode_record` gives back exactly the
text that was hashed and signed, so content hashes, signatures, exports, uploads and
the Explorer see the same bytes as before.  Every stored record is compressed, a
probe's own and an upload received by the collector alike: one format, one code path,
and a volunteer's disk gains as much as the archive.

The stored value (column ``measurements.record``, binary) is one of:

- ``b"\\x01"`` followed by a zlib stream of the record's UTF-8 text (written now);
- the record's UTF-8 text itself, as migration 0005 left PostgreSQL's older rows
  (a record is a JSON object, so it starts with ``{``, never with ``\\x01``);
- a ``str``: SQLite's rows from before migration 0005, kept as they were.

Why zlib: it is in the standard library (nothing added to a volunteer's install), costs
tens of microseconds to compress a 4 KB record and about 10 to decompress it, and takes
OONI Explorer's real records from 4,265 to about 1,370 bytes on average.
"""

from __future__ import annotations

import zlib
from typing import Any

from sqlalchemy import LargeBinary
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import TypeDecorator

#: The first byte of a zlib-compressed record (room for other codecs later).
ZLIB = b"\x01"
#: zlib's level (the decoder reads any): on imported records 3 costs about 23 us for a 2 KB
#: record and 45 us for a 4 KB one, 6 (the default) a third more for 2-4 % fewer bytes.
LEVEL = 3


class RecordError(ValueError):
    """A stored record that cannot be decoded (damaged, or of an unknown format)."""


def encode_record(record: str) -> bytes:
    """The stored form of a canonical record (see the module docstring)."""
    return ZLIB + zlib.compress(record.encode(), LEVEL)


def decode_record(value: bytes | memoryview | str) -> str:
    """The canonical record, byte for byte as it was encoded, from any stored form."""
    if isinstance(value, str):
        return value
    data = bytes(value)
    if data[:1] == ZLIB:
        try:
            return zlib.decompress(data[1:]).decode()
        except (zlib.error, UnicodeDecodeError) as exc:
            raise RecordError(f"a stored record is damaged: {exc}") from exc
    if data[:1] == b"{":
        return data.decode()
    raise RecordError(f"a stored record has an unknown format (first byte {data[:1]!r})")


class StoredRecord(TypeDecorator[str]):
    """The column type of ``measurements.record``: text in Python, compressed in the
    database.  Writing accepts the text or an already encoded value (the rows built in
    worker processes, :func:`probe.store.rows.prepare_item`, are encoded there)."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        return encode_record(value)

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else decode_record(value)


@compiles(StoredRecord, "sqlite")
def _sqlite_declaration(_type: StoredRecord, _compiler: Any, **_kw: Any) -> str:
    """``TEXT``, as migration 0001 declared the column before records were compressed:
    a database created from the models (probe/store/engine.py) must match one that the
    migrations built.  SQLite keeps a bytes value as a BLOB under either declaration."""
    return "TEXT"


#: For raw SQL (``text()``) reading the column: ``query.columns(**RECORD_TYPES)``.
RECORD_TYPES: dict[str, Any] = {"record": StoredRecord}

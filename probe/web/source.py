"""The Explorer's only door to the database: read-only, existing databases only.

Why a read-only connection rather than care: the Explorer may face the public, and a
connection that cannot write is the one guarantee that no request (or bug) changes the
evidence.  SQLite is opened with ``mode=ro``; PostgreSQL sessions start with
``default_transaction_read_only``.  Nothing is created or migrated: a missing file or a
database without Kuzot's tables is an error the user can act on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from probe.errors import InputError


class SourceError(InputError):
    """The database cannot be opened for reading; the message says why."""


def read_only_url(url: str) -> str:
    """The same database as ``url``, opened so that it cannot be written."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise SourceError(f"not a database URL: {url!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            raise SourceError(f"{url}: give the path of an existing SQLite file")
        path = Path(database).expanduser().resolve()
        if not path.is_file():
            raise SourceError(f"{url}: no such database file (the Explorer never creates one)")
        return f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true"
    if parsed.get_backend_name() == "postgresql":
        given = parsed.query.get("options", "")
        given = " ".join(given) if isinstance(given, tuple) else given
        options = f"{given} -c default_transaction_read_only=on".strip()
        return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)
    raise SourceError(f"{url}: only SQLite and PostgreSQL databases are supported")


@dataclass(frozen=True)
class StoredRecord:
    """One measurement as stored: the canonical record and its signature envelope."""

    id: str
    record: dict[str, Any]
    content_hash: str
    signature: str | None
    key_id: str | None
    public_key: str | None
    source: str
    stored_at: Any


class Source:
    """A read-only database (SQLite file or PostgreSQL) holding Kuzot's tables."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.read_url = read_only_url(url)
        try:
            self.engine: Engine = create_engine(self.read_url, pool_pre_ping=True)
            tables = set(inspect(self.engine).get_table_names())
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot open {url} for reading: {exc.__class__.__name__}: {exc}") from exc
        if "measurements" not in tables:
            self.engine.dispose()
            raise SourceError(f"{url} is not a Kuzot database (no measurements table)")
        self.tables = tables
        self.sqlite = self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        self.engine.dispose()

    def record(self, measurement_id: str) -> StoredRecord | None:
        query = text(
            "SELECT id, record, content_hash, signature, key_id, public_key, source, stored_at "
            "FROM measurements WHERE id = :id"
        )
        with self.engine.connect() as conn:
            row = conn.execute(query, {"id": measurement_id}).first()
        if row is None:
            return None
        return StoredRecord(
            id=row.id,
            record=json.loads(row.record),
            content_hash=row.content_hash,
            signature=row.signature,
            key_id=row.key_id,
            public_key=row.public_key,
            source=row.source,
            stored_at=row.stored_at,
        )

    def marker(self) -> Any:
        """Something that changes when measurements arrive, cheap to read every few
        seconds on a large table: SQLite's largest rowid (the store only appends);
        PostgreSQL's count of row changes from its statistics views."""
        with self.engine.connect() as conn:
            if self.sqlite:
                return conn.execute(text("SELECT MAX(rowid) FROM measurements")).scalar()
            row = conn.execute(
                text(
                    "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
                    "WHERE relid = to_regclass('measurements')"
                )
            ).first()
            if row is not None and row[0] is not None:
                return int(row[0])
            return tuple(
                conn.execute(text("SELECT MAX(stored_at), COUNT(*) FROM measurements")).first() or ()
            )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Recent runs with the bytes they used (the volunteer page)."""
        if "runs" not in self.tables:
            return []
        query = text(
            "SELECT r.id, r.started_at, r.finished_at, r.status, r.probe_asn, r.targets_total, "
            "COALESCE(SUM(m.bytes_used), 0) AS bytes_used, COUNT(m.id) AS measurements, "
            "SUM(CASE WHEN m.uploaded_at IS NULL THEN 1 ELSE 0 END) AS unsent "
            "FROM runs r LEFT JOIN measurements m ON m.run_id = r.id "
            "GROUP BY r.id, r.started_at, r.finished_at, r.status, r.probe_asn, r.targets_total "
            "ORDER BY r.started_at DESC LIMIT :limit"
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query, {"limit": limit})]

    def unsent(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(text("SELECT COUNT(*) FROM measurements WHERE uploaded_at IS NULL")).scalar()
        return int(value or 0)

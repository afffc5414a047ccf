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

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from probe.errors import InputError
from probe.store import explorer_reads


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
            tables = explorer_reads.table_names(self.engine)
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
        row = explorer_reads.measurement(self.engine, measurement_id)
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
        seconds on a large table (:func:`probe.store.explorer_reads.change_marker`)."""
        return explorer_reads.change_marker(self.engine, self.sqlite)

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Recent runs with the bytes they used (the volunteer page)."""
        if "runs" not in self.tables:
            return []
        return explorer_reads.recent_runs(self.engine, limit)

    def unsent(self) -> int:
        return explorer_reads.unsent_count(self.engine)

"""Which OONI archive files (by version) a database already imported.

Why in the database rather than beside the cache: the question is "does *this*
database hold that file's measurements", and one cache may feed several databases.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from probe.records import utc_now
from probe.store.database import Store
from probe.store.models import OoniFileRow


def imported_versions(store: Store) -> dict[str, str]:
    """path -> ETag of every file imported so far."""
    with Session(store.engine) as session:
        return {path: etag for path, etag in session.execute(select(OoniFileRow.path, OoniFileRow.etag))}


def record_import(
    store: Store,
    path: str,
    etag: str,
    size: int,
    *,
    measurements: int,
    stored: int,
    skipped: int,
    error: str | None,
) -> None:
    """Note (or update) that this version of ``path`` was read to its end."""
    with Session(store.engine) as session, session.begin():
        row = session.get(OoniFileRow, path)
        if row is None:
            row = OoniFileRow(path=path)
            session.add(row)
        row.etag, row.size = etag, size
        row.measurements, row.stored, row.skipped = measurements, stored, skipped
        row.error, row.imported_at = error, utc_now()

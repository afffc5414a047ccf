"""Loading many measurements into SQLite at once: the observation indexes are built at the end.

Why: a measurement's id is random (uuid5), so each observation row's entry in the
``measurement_id`` index of its table lands on a random page.  Once those indexes
outgrow the page cache, every transaction rewrites most of their pages (into the WAL,
then again at the checkpoint), and an import of a million OONI measurements fell from
2,100/s to 1,600/s on the way.  Built once at the end, by a sort, each costs a second
or two per million rows.  The measurements table keeps its own indexes: its primary
key is what finds duplicates, and the others serve the verdicts.

Why it cannot leave a database without them: while they are deferred, the loading
process holds an exclusive lock on the file ``<database>-bulk-load.lock``.  The lock
dies with the process, however it ends, and :func:`rebuild_abandoned` (called by every
``Store.open``) rebuilds the indexes of a database whose loader is gone.  The only cost
of a killed import is that rebuild, at the next open.

While a load runs, its connections also use a larger page cache, rarer checkpoints and
``synchronous=NORMAL``: in WAL mode a commit then survives a killed process but maybe
not a power cut, which an import (run again, it stores each id once) can afford.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, Index, event
from sqlalchemy.exc import SQLAlchemyError

from probe.store.engine import sqlite_file
from probe.store.models import Base

try:
    import fcntl
except ImportError:  # Windows: no deferring (imports there keep their indexes)
    fcntl = None  # type: ignore[assignment]

#: The tables whose ``measurement_id`` index waits for the end of a load.
TABLES = ("dns_observations", "tcp_observations", "tls_observations", "http_observations")
#: Page cache of a loading connection (KiB): holds the pages a transaction dirties.
CACHE_KIB = 262_144
#: WAL pages between checkpoints while loading (SQLite's default is 1,000).
CHECKPOINT_PAGES = 8_000


def deferred_indexes() -> list[Index]:
    """The indexes a load may defer, as the models declare them."""
    found = []
    for name in TABLES:
        for index in Base.metadata.tables[name].indexes:
            if [c.name for c in index.columns] == ["measurement_id"]:
                found.append(index)
    return found


def _lock_path(database: Path) -> Path:
    return database.with_name(database.name + "-bulk-load.lock")


def _try_lock(database: Path) -> IO[bytes] | None:
    """The lock file, held exclusively, or ``None`` when another process holds it."""
    if fcntl is None:
        return None
    handle = open(_lock_path(database), "a+b")  # noqa: SIM115 - held across calls
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _release(handle: IO[bytes]) -> None:
    assert fcntl is not None
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()


def _missing(engine: Engine) -> list[Index]:
    with engine.connect() as connection:
        present = {row[0] for row in connection.exec_driver_sql("SELECT name FROM sqlite_master")}
    # One namespace for tables and indexes: an index is missing when its table is there.
    return [
        i
        for i in deferred_indexes()
        if i.name not in present and i.table is not None and i.table.name in present
    ]


def _build(engine: Engine, indexes: list[Index]) -> None:
    with engine.begin() as connection:
        for index in indexes:
            index.create(connection, checkfirst=True)


def rebuild_abandoned(engine: Engine) -> bool:
    """Rebuild the indexes a killed load left deferred; True when there were some.

    Leaves them alone while their loader still runs (it builds them when it ends), and
    never fails an open: without them the database is only slower."""
    database = sqlite_file(engine.url)
    # No lock file: no load ever deferred anything here (the usual open, not one query).
    if database is None or fcntl is None or not _lock_path(database).exists():
        return False
    try:
        if not _missing(engine):
            return False
        handle = _try_lock(database)
        if handle is None:
            return False  # a load is running
        try:
            missing = _missing(engine)
            if missing:
                _build(engine, missing)
            return bool(missing)
        finally:
            _release(handle)
    except (SQLAlchemyError, OSError):
        return False


def _loading_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    cursor.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class BulkLoad:
    """One load into one store's engine: loading pragmas from the start, the deferred
    indexes dropped by :meth:`defer` (once the load is known to be large) and built
    again by :meth:`finish`.  A no-op on PostgreSQL (COPY and its own index upkeep)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.database = sqlite_file(engine.url)
        self._lock: IO[bytes] | None = None
        self._pragmas = False
        if self.database is not None and not event.contains(engine, "connect", _loading_pragmas):
            event.listen(engine, "connect", _loading_pragmas)
            self._pragmas = True
            engine.dispose()  # pooled connections were opened without them

    @property
    def deferred(self) -> bool:
        return self._lock is not None

    def stored_rows(self) -> int:
        """About how many measurements the database holds (the largest rowid: no scan)."""
        if self.database is None:
            return 0
        with self.engine.connect() as connection:
            value = connection.exec_driver_sql("SELECT max(rowid) FROM measurements").scalar()
        return int(value or 0)

    def defer(self) -> bool:
        """Drop the deferred indexes, holding the lock that says so; False when another
        load holds it, or on a database that does not defer."""
        if self.deferred or self.database is None:
            return self.deferred
        self._lock = _try_lock(self.database)
        if self._lock is None:
            return False
        with self.engine.begin() as connection:
            for index in deferred_indexes():
                index.drop(connection, checkfirst=True)
        return True

    def finish(self) -> None:
        """Build what was deferred, release the lock, restore the usual pragmas.

        A build that fails (a full disk) is left to the next open rather than raised:
        this runs as an import ends, often because of an error that must stay the one
        the user sees, and everything imported is already committed."""
        try:
            if self._lock is not None:
                with contextlib.suppress(SQLAlchemyError, OSError):
                    _build(self.engine, deferred_indexes())
        finally:
            if self._lock is not None:
                _release(self._lock)
                self._lock = None
            if self._pragmas:
                event.remove(self.engine, "connect", _loading_pragmas)
                self._pragmas = False
                self.engine.dispose()

"""A run's database opened in a thread while its first measurements are in flight.

Why: importing SQLAlchemy and the models and opening the database is about 0.4 s of
CPU, and on the parent's critical path it was most of a ``--workers`` run's start:
the children sat ready while the parent imported.  A new run needs nothing from its
database before its first commit, so ``kuzot run`` (for a new run with no byte cap
and no upload, whose database passed :func:`looks_usable`) hands the run this instead
of an open :class:`probe.store.Store`; the run starts measuring, opens it beside the
measuring, and writes its run row before the first measurement is committed.  If
opening fails after all, the run ends with that error and commits nothing: the
measurements in flight are the only loss, and nothing had reported them done.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from probe.store.database import Store


class DeferredStore:
    """The database at ``url``, opened by the first :meth:`open` (blocking: the run
    calls it in a worker thread, with the run row's write, under one lock)."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.store: Store | None = None

    def open(self) -> Store:
        if self.store is None:
            from probe.store.database import Store

            self.store = Store.open(self.url)
        return self.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def looks_usable(url: str) -> bool:
    """Whether a database may be opened late: a SQLite file that the standard library's
    sqlite3 reads as a database, or that can be created.  Anything else (another
    engine, a file that is not a database, a folder that does not exist or cannot be
    written) is opened before measuring, as before, so that its error comes first."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return False
    path = Path(url[len(prefix) :])
    if str(path) in ("", ":memory:"):
        return False
    if path.exists():
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error:
            return False
        try:
            conn.execute("pragma schema_version").fetchone()
        except sqlite3.Error:
            return False
        finally:
            conn.close()
        return os.access(path, os.R_OK | os.W_OK)
    parent = path.parent if str(path.parent) else Path(".")
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)

"""Opening a database: its URL, its engine (SQLite pragmas) and its schema kept current.

Why apart from the reading and writing: every command opens a database, and whether
the schema needs Alembic at all decides a noticeable share of a short run's start-up.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from probe.bundled import bundled_path
from probe.errors import SetupError

MIGRATIONS = bundled_path("store", "migrations")


class StoreError(SetupError, RuntimeError):
    """The database cannot be used (full disk, unreadable file, bad URL); says what to do."""


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite URL names (``None`` for other databases, in-memory ones and
    URLs that do not parse)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # create_store_engine reports the bad URL
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names when it does not exist (``None`` for other databases,
    in-memory ones and files that are there)."""
    path = sqlite_file(url)
    return None if path is None or path.exists() else path


def create_store_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # 16 KiB pages (a no-op on an existing database): a stored record is about
            # 2 KB, and with 4 KiB pages only one fits a page, which doubles the file.
            cursor.execute("PRAGMA page_size=16384")
            # WAL: readers never block the writer, and a commit survives a kill.
            # synchronous=FULL: and a power cut too (NORMAL may lose the last commits
            # when the machine dies); one fsync per batch of the run's writer costs little next to
            # the seconds a measurement takes (README's promise, docs/hostile-input.md).
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    connect_args: dict[str, Any] = {}
    if make_url(url).get_driver_name() == "psycopg":
        # No server-side prepared statements: psycopg prepares a query it has run five
        # times, and PostgreSQL then keeps the generic plan it made while the table was
        # small.  The collector's look-up of a batch's ids kept a sequential scan that
        # way and slowed down with every row stored (70 ms a batch at 28,000 rows; 0.3 ms
        # planned afresh).  Planning each statement costs far less than that.
        connect_args["prepare_threshold"] = None
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


_REVISION_LINE = re.compile(
    r"""^(down_revision|revision)\s*(?::[^=]*)?=\s*(?:None|["']([\w-]+)["'])\s*$""", re.MULTILINE
)


def _script_head() -> str | None:
    """The one head revision of the bundled migrations, read from their files; ``None``
    when that is not plain (Alembic then decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in Path(MIGRATIONS, "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(path.read_text("utf-8")))
        if "revision" not in found or not found["revision"]:
            return None
        revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _database_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except SQLAlchemyError:
        return None  # no table yet: a new database
    return rows[0][0] if len(rows) == 1 else None


def _create_current_sqlite(engine: Engine, head: str) -> bool:
    """Give a new, empty SQLite database the current schema straight from the models and
    stamp it ``head``; ``False`` (nothing done) when the file already holds tables.

    Why: a volunteer's first run, a lab and every test open a new database, and Alembic's
    import and its five migrations cost about a quarter of a second of a run's start-up.
    The models and the migrations give the same schema, statement for statement
    (tests/test_store_schema.py holds them to it).  One ``BEGIN IMMEDIATE`` transaction:
    a process killed half-way leaves an empty file, and a second process opening the same
    new file waits, then finds the tables and leaves them alone."""
    from sqlalchemy.schema import CreateIndex, CreateTable

    from probe.store.models import Base

    raw = engine.raw_connection()
    connection: Any = raw.driver_connection
    isolation = connection.isolation_level
    connection.isolation_level = None  # our own BEGIN/COMMIT, not the driver's
    try:
        connection.execute("BEGIN IMMEDIATE")
        if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone():
            return False
        for table in Base.metadata.sorted_tables:
            connection.execute(str(CreateTable(table).compile(dialect=engine.dialect)))
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                connection.execute(str(CreateIndex(index).compile(dialect=engine.dialect)))
        connection.execute(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
        connection.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (head,))
        connection.execute("COMMIT")
        return True
    finally:
        if connection.in_transaction:  # the file held tables, or a statement failed
            connection.execute("ROLLBACK")
        connection.isolation_level = isolation
        raw.close()


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    head = _script_head() if revision == "head" else None
    if head is not None:
        current = _database_revision(engine)
        if current == head:
            # Current already: skip Alembic, whose import and script scan cost more than
            # a short run's measuring work on a small machine.
            return
        if current is None and engine.dialect.name == "sqlite" and _create_current_sqlite(engine, head):
            return
    migrate_with_alembic(engine, revision)


def migrate_with_alembic(engine: Engine, revision: str) -> None:
    """Alembic's own upgrade to ``revision``, from whatever revision the database is stamped with."""
    # Imported here: Alembic costs a noticeable share of start-up and is needed only
    # when the schema is behind.
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def write_error(exc: OperationalError) -> StoreError:
    if "full" in str(exc).lower():
        return StoreError(
            "the disk holding the database is full: free some space and run again "
            "(everything measured so far is kept)"
        )
    return StoreError(f"cannot write to the database: {exc.orig}")

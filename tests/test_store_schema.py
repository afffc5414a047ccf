"""A new SQLite database gets its schema from the models, an older one from Alembic's
migrations: both must end up the same, statement for statement."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import trio
from alembic import command
from alembic.config import Config

from probe.store import Store
from probe.store.engine import MIGRATIONS, create_store_engine, migrate_with_alembic, upgrade_schema


def _migrate(url: str) -> None:
    """Alembic's own way, as ``upgrade_schema`` took it before new files had a fast path."""
    engine = create_store_engine(url)
    migrate_with_alembic(engine, "head")
    engine.dispose()


def _schema(path: Path) -> dict[str, object]:
    with sqlite3.connect(path) as connection:
        statements = {
            name: re.sub(r"\( ", "(", re.sub(r" \)", ")", " ".join((sql or "").split())))
            for name, sql in connection.execute(
                "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            )
        }
        version = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        page_size = connection.execute("PRAGMA page_size").fetchone()
    return {"statements": statements, "version": version, "page_size": page_size}


def test_new_database_matches_the_migrated_one(tmp_path: Path) -> None:
    """If a new SQLite file is opened, then its tables, indexes, page size and Alembic revision are the migrations' own."""
    Store.open(f"sqlite:///{tmp_path / 'new.db'}").close()
    _migrate(f"sqlite:///{tmp_path / 'migrated.db'}")
    assert _schema(tmp_path / "new.db") == _schema(tmp_path / "migrated.db")


def test_new_database_takes_later_migrations(tmp_path: Path) -> None:
    """If a database made from the models is taken down and up again by Alembic, then it ends where a migrated one does."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    Store.open(url).close()
    engine = create_store_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")  # Alembic reads the stamp and steps down
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").all() == [("0004",)]
    engine.dispose()
    _migrate(url)
    _migrate(f"sqlite:///{tmp_path / 'migrated.db'}")
    assert _schema(tmp_path / "new.db") == _schema(tmp_path / "migrated.db")


def test_file_with_tables_but_no_revision_is_left_to_alembic(tmp_path: Path) -> None:
    """If a file already holds a table of its own, then the models never write into it (Alembic decides)."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    engine = create_store_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    engine.dispose()
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM notes").fetchone() == (0,)
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("0005",)]


def test_two_first_opens_at_once_make_one_schema(tmp_path: Path) -> None:
    """If two threads open the same new file at once, then both succeed and the file holds one schema, stamped once."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"

    async def both() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(trio.to_thread.run_sync, lambda: Store.open(url).close())

    trio.run(both)
    _migrate(f"sqlite:///{tmp_path / 'migrated.db'}")
    assert _schema(tmp_path / "shared.db") == _schema(tmp_path / "migrated.db")

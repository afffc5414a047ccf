"""``kuzot db``: bring a database's schema up to date, or say which revision it has."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from probe.cli._common import CommandError, add_db_option, add_json_option, emit
from probe.i18n import gettext as _

if TYPE_CHECKING:
    from sqlalchemy import Engine


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("db", help="database schema: upgrade (Alembic migrations), current")
    sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = sub.add_parser("upgrade", help="apply every migration not yet applied")
    add_db_option(upgrade)
    upgrade.add_argument("--revision", default="head", help="migrate up to this revision (default head)")
    add_json_option(upgrade)
    upgrade.set_defaults(handler=handle_upgrade)
    current = sub.add_parser("current", help="print the schema revision the database is at")
    add_db_option(current)
    add_json_option(current)
    current.set_defaults(handler=handle_current)


def _revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def handle_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from probe.store.database import create_store_engine, default_db_url, upgrade_schema

    url = args.db or default_db_url()
    try:
        engine = create_store_engine(url)
        try:
            before = _revision(engine)
            upgrade_schema(engine, args.revision)
            after = _revision(engine)
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError) as exc:
        raise CommandError(_("cannot upgrade {url}: {error}").format(url=url, error=exc)) from exc
    if before == after:
        text = _("Already at revision {revision}.").format(revision=after)
    else:
        text = _("Upgraded from {before} to revision {after}.").format(
            before=before or _("an empty database"), after=after
        )
    # No URL in the JSON: it may hold a password.
    emit(args, {"before": before, "after": after, "changed": before != after}, text)
    return 0


def handle_current(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from probe.store.database import create_store_engine, default_db_url

    url = args.db or default_db_url()
    try:
        engine = create_store_engine(url)
        try:
            revision = _revision(engine)
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError) as exc:
        raise CommandError(_("cannot read {url}: {error}").format(url=url, error=exc)) from exc
    emit(args, {"revision": revision}, revision or _("empty (run `kuzot db upgrade`)"))
    return 0

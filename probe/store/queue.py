"""The upload queue: a measurement waits while its ``uploaded_at`` is NULL.

Why here and not in the uploader: the queue is the ``measurements`` table itself, and
the schema is known in one package (``probe.store``); the uploader decides what to
send and when, this module only reads and marks rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from probe.records import utc_now
from probe.store.models import MeasurementRow

if TYPE_CHECKING:
    from probe.store.database import Store

#: The columns a batch item is built from (the envelope around the canonical record).
_ITEM_COLUMNS = (
    MeasurementRow.id,
    MeasurementRow.record,
    MeasurementRow.content_hash,
    MeasurementRow.signature,
    MeasurementRow.key_id,
    MeasurementRow.public_key,
)


def queued_count(store: Store) -> int:
    """How many measurements wait to be uploaded."""
    with Session(store.engine) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(MeasurementRow).where(MeasurementRow.uploaded_at.is_(None))
            )
            or 0
        )


def queued_ids(store: Store) -> list[str]:
    """The ids waiting to be uploaded, oldest stored first."""
    with Session(store.engine) as session:
        return list(
            session.scalars(
                select(MeasurementRow.id)
                .where(MeasurementRow.uploaded_at.is_(None))
                .order_by(MeasurementRow.stored_at, MeasurementRow.id)
            )
        )


def queued_rows(store: Store, ids: Sequence[str]) -> dict[str, Any]:
    """{id: row} of those ``ids`` still queued (id, record, content_hash, signature,
    key_id, public_key); one query, so pass a few hundred ids at a time."""
    with Session(store.engine) as session:
        return {
            row.id: row
            for row in session.execute(
                select(*_ITEM_COLUMNS).where(MeasurementRow.id.in_(ids), MeasurementRow.uploaded_at.is_(None))
            )
        }


def mark_uploaded(store: Store, ids: Sequence[str]) -> None:
    """Take ``ids`` off the queue (the collector has answered for each), in one transaction."""
    if not ids:
        return
    now = utc_now()
    with Session(store.engine) as session, session.begin():
        for start in range(0, len(ids), 500):
            session.execute(
                update(MeasurementRow)
                .where(MeasurementRow.id.in_(ids[start : start + 500]))
                .values(uploaded_at=now)
            )


def target_counts_by_run(store: Store) -> dict[str | None, int]:
    """{run id: target measurements stored for it} (``kuzot status``)."""
    with Session(store.engine) as session:
        return {
            run_id: int(count)
            for run_id, count in session.execute(
                select(MeasurementRow.run_id, func.count())
                .where(MeasurementRow.role == "target")
                .group_by(MeasurementRow.run_id)
            ).all()
        }

"""Registered probes as the collector stores them: an opaque id and a token's hash.

Why apart from :mod:`probe.server.collector.tokens`: that module decides what a token
is and how it is hashed; this one is the only place that knows the ``probes`` table.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from probe.store.models import ProbeRow

if TYPE_CHECKING:
    from probe.store.database import Store


def add_probe(store: Store, probe_id: str, token_hash: str, created_at: datetime) -> None:
    """Store a newly registered probe."""
    with Session(store.engine) as session, session.begin():
        session.add(ProbeRow(id=probe_id, token_hash=token_hash, created_at=created_at))


def probe_id_for_token_hash(store: Store, token_hash: str) -> str | None:
    """The id of the probe registered with this token hash, or None."""
    with Session(store.engine) as session:
        return session.scalar(select(ProbeRow.id).where(ProbeRow.token_hash == token_hash))

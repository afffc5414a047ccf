"""Storage: SQLAlchemy models, sessions and the measurement repository.

The names are loaded on first use: importing SQLAlchemy and the models is about 0.4 s
of CPU, which ``kuzot run`` spends in a thread once it has started measuring (see
:mod:`probe.volunteer.session`), not before; ``probe.store.writer`` and the other
modules that need no database code can be imported without it.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from probe.store.database import Store, StoreError, default_db_url

__all__ = ["Store", "StoreError", "default_db_url"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from probe.store import database

        return getattr(database, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Storage: SQLAlchemy models, sessions and the measurement repository."""

from probe.store.database import Store, StoreError, default_db_url

__all__ = ["Store", "StoreError", "default_db_url"]

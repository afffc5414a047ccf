"""Sending this probe's measurements to a collector.

``uploader`` works through the queue in the database once (``kuzot upload``, and the
upload at the end of a run); ``live`` uploads in the background while a run measures.
The collector's side is :mod:`probe.server.collector`.  The uploader's public names are
importable from here, where they have always been (``from probe.upload import upload``).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from probe.upload.uploader import (
        DEFAULT_BATCH_BYTES,
        DEFAULT_BATCH_ITEMS,
        TOKEN_FILE,
        Uploader,
        UploadError,
        UploadResult,
        collector_base,
        load_token,
        mark_uploaded,
        queued_count,
        save_token,
        upload,
        upload_database,
    )

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_BATCH_ITEMS",
    "TOKEN_FILE",
    "UploadError",
    "UploadResult",
    "Uploader",
    "collector_base",
    "load_token",
    "mark_uploaded",
    "queued_count",
    "save_token",
    "upload",
    "upload_database",
]


def __getattr__(name: str) -> Any:
    """The uploader's names, imported on first use: ``probe.upload.pacing`` (the CLI's
    option defaults) must not pull in the uploader, the store and SQLAlchemy."""
    if name in __all__:
        from probe.upload import uploader

        return getattr(uploader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

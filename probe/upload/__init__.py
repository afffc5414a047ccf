"""Sending this probe's measurements to a collector.

``uploader`` works through the queue in the database once (``kuzot upload``, and the
upload at the end of a run); ``live`` uploads in the background while a run measures.
The collector's side is :mod:`probe.server.collector`.  The uploader's public names are
importable from here, where they have always been (``from probe.upload import upload``).
"""

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

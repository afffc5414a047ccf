"""Listing and downloading OONI's archive over S3, anonymously, resumably, within a rate.

Why boto3 with unsigned requests: the bucket is public, and a well-kept client gets
listing pagination, retries and range requests right; we sign nothing and hold no
credentials.  ``endpoint_url`` points the same code at any S3-compatible server (a
mirror, or the tests' local server).

A download goes to ``<file>.part`` next to its place in the cache, with a small
``.part.json`` saying which object version (ETag, size) it belongs to.  After a kill
the next run asks for the rest only (an HTTP range, conditional on the same ETag);
if the object changed meanwhile, the part is thrown away and fetched again.  The
finished file is checked (size always; MD5 against the ETag when the ETag is a plain
MD5, i.e. not a multipart upload) before it is renamed into place, so a file in the
cache is always a complete copy of one version of the object.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from probe.errors import SetupError
from probe.ooni_archive.layout import ArchiveFile, Prefix, parse_key

#: Environment variable naming a non-AWS S3-compatible server (``--endpoint-url``).
ENDPOINT_ENV = "KUZOT_OONI_S3_ENDPOINT"
#: The region OONI's bucket is in; anonymous requests still need one to be addressed.
REGION = "eu-central-1"
CHUNK = 256 * 1024


class ArchiveError(SetupError, RuntimeError):
    """The archive cannot be reached or read; says what to do."""


def missing_boto3() -> ArchiveError:
    return ArchiveError("kuzot ooni sync needs boto3: pip install 'kuzot[ooni]'")


def make_client(endpoint_url: str | None = None) -> Any:
    """An S3 client that sends unsigned (anonymous) requests."""
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
    except ImportError:
        raise missing_boto3() from None
    config = Config(
        signature_version=UNSIGNED,
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=20,
        read_timeout=60,
        s3={"addressing_style": "path"} if endpoint_url else {},
    )
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=endpoint_url or os.environ.get(ENDPOINT_ENV) or None,
        config=config,
    )


def client_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def list_files(client: Any, prefix: Prefix) -> Iterator[ArchiveFile]:
    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.prefix):
            for obj in page.get("Contents", []):
                entry = parse_key(prefix.bucket, obj["Key"], int(obj["Size"]), str(obj.get("ETag", "")))
                if entry is not None:
                    yield entry
    except client_errors() as exc:
        raise ArchiveError(f"cannot list s3://{prefix.bucket}/{prefix.prefix}: {exc}") from exc


class RateLimit:
    """At most ``bytes_per_second`` over the whole sync (a token bucket of one second)."""

    def __init__(self, bytes_per_second: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = bytes_per_second
        self.clock = clock
        self.start = clock()
        self.spent = 0

    def take(self, amount: int) -> None:
        if not self.rate:
            return
        self.spent += amount
        ahead = self.spent / self.rate - (self.clock() - self.start)
        if ahead > 0:
            time.sleep(ahead)


def _plain_md5(etag: str) -> bool:
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag.lower())


class Verification(ArchiveError):
    """A download does not match the object it claims to be."""


def _hash_file(path: Path) -> Any:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest


def _part_paths(target: Path) -> tuple[Path, Path]:
    """The partial download and its note of which object version it belongs to."""
    return target.with_name(target.name + ".part"), target.with_name(target.name + ".part.json")


def _discard_part(part: Path, meta: Path) -> None:
    """Throw a part away with its note, so the next run starts the object afresh."""
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)


def _resume_offset(part: Path, meta: Path, entry: ArchiveFile) -> int:
    """How many bytes of ``part`` may be kept: all of them only if they belong to this version.

    A part noted for another ETag or size, or longer than the object, cannot be
    continued; it is dropped and the note rewritten for the version now wanted."""
    version = {"etag": entry.etag, "size": entry.size}
    offset = 0
    if part.exists() and meta.exists():
        try:
            same = json.loads(meta.read_text()) == version
        except (OSError, ValueError):
            same = False
        offset = part.stat().st_size if same else 0
        if offset > entry.size:
            offset = 0
    if offset == 0:
        part.unlink(missing_ok=True)
        meta.write_text(json.dumps(version))
    return offset


def _get_object(client: Any, entry: ArchiveFile, offset: int, part: Path, meta: Path) -> Any:
    """Ask for the object from ``offset`` on, only if it is still the version listed.

    A failed precondition means the object changed under us: the part is useless, so it
    is discarded and the error says to run again."""
    request: dict[str, Any] = {"Bucket": entry.bucket, "Key": entry.key}
    if entry.etag:
        request["IfMatch"] = f'"{entry.etag}"'
    if offset:
        request["Range"] = f"bytes={offset}-"
    try:
        return client.get_object(**request)
    except client_errors() as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "412"):
            _discard_part(part, meta)
            raise ArchiveError(f"s3://{entry.bucket}/{entry.key} changed while syncing; run again") from exc
        raise ArchiveError(f"cannot fetch s3://{entry.bucket}/{entry.key}: {exc}") from exc


def _append_body(
    body: Any,
    part: Path,
    digest: Any,
    entry: ArchiveFile,
    *,
    limit: RateLimit,
    progress: Callable[[int], None],
) -> None:
    """Stream ``body`` onto the end of ``part``, hashing and pacing as it goes.

    The part is fsynced so that what a later run resumes from is really on disk; a
    connection that breaks off is an :class:`ArchiveError` (the part is kept to resume),
    any other OS error (a full disk) propagates as it is."""
    broke_off = f"download of s3://{entry.bucket}/{entry.key} broke off"
    try:
        with open(part, "ab") as out:
            while True:
                block = body.read(CHUNK)
                if not block:
                    break
                out.write(block)
                digest.update(block)
                progress(len(block))
                limit.take(len(block))
            out.flush()
            os.fsync(out.fileno())
    except client_errors() as exc:
        raise ArchiveError(f"{broke_off}: {exc}") from exc
    except OSError as exc:
        if isinstance(exc, ConnectionError | TimeoutError):
            raise ArchiveError(f"{broke_off}: {exc}") from exc
        raise
    finally:
        body.close()


def _verify_part(part: Path, meta: Path, entry: ArchiveFile, digest: Any) -> None:
    """Refuse a part that is not a complete copy of the object.

    Too short is kept (the next run resumes it); too long or the wrong content cannot
    be repaired by resuming, so it is discarded."""
    size = part.stat().st_size
    if size != entry.size:
        if size > entry.size:
            _discard_part(part, meta)
        raise Verification(
            f"s3://{entry.bucket}/{entry.key}: got {size} bytes of {entry.size}; run again to resume"
        )
    if _plain_md5(entry.etag) and digest.hexdigest() != entry.etag.lower():
        _discard_part(part, meta)
        raise Verification(f"s3://{entry.bucket}/{entry.key}: content does not match its ETag; run again")


def download(
    client: Any,
    entry: ArchiveFile,
    target: Path,
    *,
    limit: RateLimit,
    progress: Callable[[int], None] = lambda n: None,
) -> bool:
    """Fetch ``entry`` to ``target``; returns whether a part was resumed.

    Raises :class:`ArchiveError` (the part is kept when it may still be good).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part, meta = _part_paths(target)
    offset = _resume_offset(part, meta, entry)
    digest = _hash_file(part) if offset else hashlib.md5(usedforsecurity=False)
    if offset < entry.size or entry.size == 0:
        response = _get_object(client, entry, offset, part, meta)
        _append_body(response["Body"], part, digest, entry, limit=limit, progress=progress)
    _verify_part(part, meta, entry, digest)
    os.replace(part, target)
    meta.unlink(missing_ok=True)
    return offset > 0

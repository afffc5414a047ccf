"""The evidence bundle inside a report: the signed measurements a report cites, and a
manifest of every file's SHA-256.

Why a bundle: a journalist who publishes "kloop.kg was blocked on AS12345 on 3 March"
must be able to show, months later, the exact measurements behind the sentence, and
anyone must be able to check that neither the measurements nor the report around them
changed.  Each evidence line carries the stored canonical record with its content hash
and ed25519 signature, so ``kuzot verify`` (or ``sha256sum`` and any ed25519 tool) can
check it with nothing but the directory: no database, no network, no trust in us.

Layout (paths relative to the report directory)::

    evidence/measurements.jsonl   one signed measurement a line, by (started_at, id)
    evidence/MANIFEST.sha256      ``sha256sum`` lines for every other file; written last

Reading uses plain SQL on the ``measurements`` table, as :mod:`analysis.data`, because
the analysis layer must not depend on the probe's store.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, column, create_engine, select, table

from probe.errors import ReportError
from probe.records import canonical_json

#: Where evidence lives inside a report directory.  ``probe.verify`` repeats these
#: (the probe may not import analysis); tests/test_evidence.py keeps them equal.
EVIDENCE_DIR = "evidence"
MANIFEST_NAME = "MANIFEST.sha256"

#: Ids per ``IN (...)`` query: far below SQLite's and PostgreSQL's parameter limits,
#: and large enough that a million measurements take a few thousand queries.
CHUNK = 500

_measurements = table(
    "measurements",
    column("id"),
    column("source"),
    column("started_at"),
    column("content_hash"),
    column("signature"),
    column("key_id"),
    column("public_key"),
    column("record"),
)

#: The envelope fields of an evidence line, in the order they are written; ``record``
#: follows them, last, so a reader's eye finds the identifying fields first.
_ENVELOPE = ("id", "source", "content_hash", "signature", "key_id", "public_key")


class EvidenceError(ReportError):
    """The evidence cannot be written as asked (unknown measurement ids, odd file names)."""


def _chunks(items: list[str]) -> Iterator[list[str]]:
    size = CHUNK  # read at call time, so a test can shrink it to cross chunk boundaries
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _order(conn: Connection, ids: list[str]) -> list[str]:
    """The requested ids sorted by (started_at, id), as the database sorts them.

    Only the keys are held in memory, never the records: the sort has to see every id
    before the first line can be written, and a key is a few dozen bytes."""
    keys: list[tuple[Any, str]] = []
    for chunk in _chunks(ids):
        query = select(_measurements.c.started_at, _measurements.c.id).where(_measurements.c.id.in_(chunk))
        keys.extend((started_at, mid) for started_at, mid in conn.execute(query))
    missing = set(ids) - {mid for _, mid in keys}
    if missing:
        shown = ", ".join(sorted(missing)[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise EvidenceError(f"{len(missing)} measurement(s) not in the database: {shown}{more}")
    keys.sort()
    return [mid for _, mid in keys]


def _evidence_line(row: Any) -> bytes:
    """One JSON line.  The record is spliced in as canonical JSON, byte for byte what
    the content hash covers, so whoever extracts it hashes exactly the signed bytes."""
    record = canonical_json(json.loads(row.record))
    envelope = {name: getattr(row, name) for name in _ENVELOPE}
    head = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
    return head[:-1].encode() + b',"record":' + record + b"}\n"


def write_evidence(
    db_url: str, measurement_ids: Iterable[str], out_dir: Path, name: str = "measurements.jsonl"
) -> Path:
    """Write ``out_dir/evidence/<name>``: the given measurements, signed envelope and
    stored record, one a line, sorted by (started_at, id).

    Records are read a chunk at a time and written as they come, so memory holds one
    chunk of records (and the ids) however many measurements a report cites.  The file
    appears only when complete (it is written beside and renamed), so a failed export
    never leaves half a file for the manifest to bless.  Every id must exist: a report
    citing a measurement it cannot produce is a bug to catch here, not in front of a
    reader."""
    if "/" in name or "\\" in name or name.startswith(".") or not name.endswith(".jsonl"):
        # kuzot verify checks evidence/*.jsonl; any other name would escape the check.
        raise EvidenceError(f"evidence file name {name!r} must be a plain file name ending in .jsonl")
    ids = sorted(set(measurement_ids))
    directory = Path(out_dir) / EVIDENCE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    partial = directory / f".{name}.partial"
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn, open(partial, "wb") as out:
            ordered = _order(conn, ids)
            wanted = [_measurements.c[field] for field in (*_ENVELOPE, "record")]
            for chunk in _chunks(ordered):
                rows = {
                    row.id: row for row in conn.execute(select(*wanted).where(_measurements.c.id.in_(chunk)))
                }
                for mid in chunk:
                    out.write(_evidence_line(rows[mid]))
            out.flush()
            os.fsync(out.fileno())
        partial.replace(target)
    finally:
        engine.dispose()
        partial.unlink(missing_ok=True)
    return target


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _bundle_files(out_dir: Path, manifest: Path) -> list[str]:
    """Every regular file under ``out_dir`` except the manifest, as sorted POSIX paths."""
    found: list[str] = []
    for root, dirs, files in os.walk(out_dir):
        dirs.sort()
        for filename in files:
            path = Path(root) / filename
            if path == manifest:
                continue
            rel = path.relative_to(out_dir).as_posix()
            if path.is_symlink() or not path.is_file():
                raise EvidenceError(f"{rel} is not a regular file; a report bundle holds only plain files")
            if any(ch in rel for ch in "\\\n\r") or not rel.isprintable():
                # sha256sum would escape such names and older versions misread them.
                raise EvidenceError(f"{rel!r}: file names in a report must be printable, without backslashes")
            found.append(rel)
    return sorted(found)


def write_manifest(out_dir: Path) -> Path:
    """Write ``out_dir/evidence/MANIFEST.sha256`` covering every other file in the report.

    The format is ``sha256sum``'s (``<hex>  <path>``, paths relative to ``out_dir``), so
    ``cd DIR && sha256sum -c evidence/MANIFEST.sha256`` checks a report without Kuzot.
    Call it last: any file written after it is reported by ``kuzot verify`` as added."""
    out_dir = Path(out_dir)
    manifest = out_dir / EVIDENCE_DIR / MANIFEST_NAME
    manifest.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{_sha256_file(out_dir / rel)}  {rel}\n" for rel in _bundle_files(out_dir, manifest)]
    partial = manifest.with_name(f".{MANIFEST_NAME}.partial")
    partial.write_text("".join(lines), encoding="utf-8")
    partial.replace(manifest)
    return manifest

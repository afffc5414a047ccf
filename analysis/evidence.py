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

Reading goes through :mod:`probe.store.readers`, as :mod:`analysis.data` does: the one
piece of the probe's store the analysis layer may import, so the schema stays known in
one package.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import probe.store.readers as readers
from probe.errors import ReportError
from probe.records import canonical_json

#: Where evidence lives inside a report directory.  ``probe.verify`` repeats these
#: (the probe may not import analysis); tests/test_evidence.py keeps them equal.
EVIDENCE_DIR = "evidence"
MANIFEST_NAME = "MANIFEST.sha256"

#: Ids per ``IN (...)`` query: far below SQLite's and PostgreSQL's parameter limits,
#: and large enough that a million measurements take a few thousand queries.
CHUNK = 500

#: The envelope fields of an evidence line, in the order they are written; ``record``
#: follows them, last, so a reader's eye finds the identifying fields first.
_ENVELOPE = ("id", "source", "content_hash", "signature", "key_id", "public_key")


class EvidenceError(ReportError):
    """The evidence cannot be written as asked (unknown measurement ids, odd file names)."""


def _order(db_url: str, ids: list[str]) -> list[str]:
    """The requested ids sorted by (started_at, id), as the database sorts them.

    Only the keys are held in memory, never the records: the sort has to see every id
    before the first line can be written, and a key is a few dozen bytes."""
    ordered, missing = readers.time_order(db_url, ids, chunk=CHUNK)
    if missing:
        shown = ", ".join(sorted(missing)[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise EvidenceError(f"{len(missing)} measurement(s) not in the database: {shown}{more}")
    return ordered


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
    try:
        ordered = _order(db_url, ids)
        with open(partial, "wb") as out:
            for row in readers.iter_envelopes(db_url, ordered, (*_ENVELOPE, "record"), chunk=CHUNK):
                out.write(_evidence_line(row))
            out.flush()
            os.fsync(out.fileno())
        partial.replace(target)
    finally:
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

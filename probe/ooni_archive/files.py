"""The measurements inside one file of OONI's archive, whatever its kind, as raw lines.

Why raw lines: parsing is the expensive part of an import and happens in worker
processes; reading here only decompresses and splits.  Kinds: JSON Lines (gzipped or
not), postcans (``.tar.gz`` of ``.post`` files: ``{"format": "json", "content": ...}``,
the measurement uid being the file's name), the old ``.json.lz4`` and ``.tar.lz4`` cans
(with the optional ``lz4`` package), and single ``.json`` documents.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

from probe.ooni_archive.layout import extension

#: What reading a damaged file can raise: a gzip stream cut short, a broken tar.
DAMAGE = (EOFError, gzip.BadGzipFile, tarfile.TarError, OSError, ValueError)


class Damaged(Exception):
    """A file ended early or is corrupt after ``lines`` good lines; says where."""

    def __init__(self, message: str, lines: int) -> None:
        super().__init__(message)
        self.lines = lines


def _lz4():
    try:
        import lz4.frame
    except ImportError:
        raise Damaged(
            "reading the old lz4 cans needs the lz4 package: pip install 'kuzot[ooni]'", 0
        ) from None
    return lz4.frame


def _lines(stream: io.BufferedIOBase) -> Iterator[tuple[int, bytes]]:
    for number, raw in enumerate(stream, start=1):
        if raw.strip():
            yield number, raw


def _post(data: bytes, uid: str) -> bytes | None:
    """The measurement of one postcan entry, with its uid put in as OONI's tools do."""
    from probe.formats.ooni import loads

    try:
        post = loads(data)
    except ValueError:
        return data  # let the line parser say why
    if (
        not isinstance(post, dict)
        or post.get("format") != "json"
        or not isinstance(post.get("content"), dict)
    ):
        return None
    content = post["content"]
    content.setdefault("measurement_uid", uid)
    import json

    return json.dumps(content, ensure_ascii=False).encode()


def _tar(handle: io.BufferedIOBase | None, *, fileobj=None) -> Iterator[tuple[int, bytes]]:
    with tarfile.open(fileobj=fileobj or handle, mode="r|*") as tar:
        for number, member in enumerate(tar, start=1):
            extracted = tar.extractfile(member)
            if extracted is None:
                continue
            data = extracted.read()
            name = member.name.rsplit("/", 1)[-1]
            if name.endswith(".post"):
                one = _post(data, name[: -len(".post")])
                if one is not None:
                    yield number, one
            elif name.endswith(".json"):
                for line, raw in _lines(io.BytesIO(data)):
                    yield number * 1_000_000 + line, raw


def measurement_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line or entry number, raw JSON) for every measurement in ``path``.

    Raises :class:`Damaged` when the file ends early or is corrupt; what was yielded
    before it is good and may be kept.
    """
    ext = extension(path.name) or ""
    count = 0
    try:
        with open(path, "rb") as handle:
            if ext == "tar.gz":
                source = _tar(handle)
            elif ext == "tar.lz4":
                source = _tar(None, fileobj=_lz4().open(handle, mode="rb"))
            elif ext == "json.lz4":
                source = _lines(_lz4().open(handle, mode="rb"))
            elif handle.peek(2)[:2] == b"\x1f\x8b":
                source = _lines(gzip.GzipFile(fileobj=handle))
            else:
                source = _lines(handle)
            for item in source:
                count += 1
                yield item
    except Damaged:
        raise
    except DAMAGE as exc:
        raise Damaged(
            f"{path}: damaged after {count} measurement(s) ({exc.__class__.__name__}: {exc})", count
        ) from exc


def local_files(root: Path) -> list[Path]:
    """Every readable measurement file under ``root`` (an ``oonidata sync`` folder, our
    own cache, or any tree of OONI files), in name order."""
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and extension(p.name) is not None and not p.name.endswith((".part", ".part.json"))
    )

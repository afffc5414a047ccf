"""A response body read within its caps: decoded incrementally, hashed, sampled and
titled as it arrives (the why of each cap is in :mod:`probe.steps.http`'s docstring).
"""

from __future__ import annotations

import hashlib
import html
import re
import zlib

import httpx

from probe.settings import MAX_BODY_BYTES

#: How much of the body the record keeps.
BODY_SAMPLE_BYTES = 64 * 1024

#: The longest title recorded, in characters.
MAX_TITLE = 200

#: Characters a title may not keep: C0 controls (whitespace is collapsed before), DEL
#: and lone surrogates (a "utf-7" page can decode to one).
_UNSTORABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


class Body:
    """The decoded bytes of one response as they arrive, up to a limit."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.length = 0
        self.sample = bytearray()
        self.digest = hashlib.sha256()
        self.truncated = False

    @property
    def room(self) -> int:
        return self.max_bytes - self.length

    def add(self, chunk: bytes) -> bool:
        """Take ``chunk``; ``True`` once the limit is reached and reading should stop."""
        room = self.room
        if len(chunk) > room:
            chunk = chunk[:room]
            self.truncated = True
        self.length += len(chunk)
        self.digest.update(chunk)
        if len(self.sample) < BODY_SAMPLE_BYTES:
            self.sample += chunk[: BODY_SAMPLE_BYTES - len(self.sample)]
        return self.truncated


class Decoder:
    """Undo one content coding incrementally, never producing more than asked.

    Why not httpx's decoders: they return everything a chunk inflates to, and 2 KB of
    ``gzip, gzip`` inflate to a gigabyte.  zlib's ``max_length`` bounds each step; the
    input it did not consume waits in ``unconsumed_tail`` for the next call.  Bytes
    after the end of the compressed stream are ignored, as httpx does.
    """

    def __init__(self, coding: str | None) -> None:
        self.coding = coding
        self._wbits = {
            "gzip": zlib.MAX_WBITS | 16,
            "x-gzip": zlib.MAX_WBITS | 16,
            "deflate": zlib.MAX_WBITS,
        }.get(coding or "")
        self._zlib = zlib.decompressobj(self._wbits) if self._wbits is not None else None
        self._started = False

    def decode(self, data: bytes, limit: int) -> bytes:
        """Up to ``limit + 1`` decoded bytes of ``data`` (one more than the caller has
        room for, so that it can tell the body was longer)."""
        if self._zlib is None:
            return data
        out = bytearray()
        try:
            while data and len(out) <= limit and not self._zlib.eof:
                try:
                    out += self._zlib.decompress(data, limit + 1 - len(out))
                except zlib.error:
                    if self.coding != "deflate" or self._started:
                        raise
                    # "deflate" is meant to be zlib-wrapped; some servers send it raw.
                    self._wbits = -zlib.MAX_WBITS
                    self._zlib = zlib.decompressobj(self._wbits)
                    out += self._zlib.decompress(data, limit + 1 - len(out))
                self._started = True
                data = self._zlib.unconsumed_tail
        except zlib.error as exc:
            raise httpx.DecodingError(f"cannot decode {self.coding} body: {exc}") from exc
        return bytes(out)


def content_codings(response: httpx.Response) -> list[str]:
    values = response.headers.get_list("content-encoding", split_commas=True)
    return [c for c in (v.strip().lower() for v in values) if c and c != "identity"]


def decoder_for(codings: list[str]) -> Decoder | None:
    """The decoder for a response's codings; ``None`` when its body stays as it came."""
    if not codings:
        return Decoder(None)
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return Decoder(codings[0])
    return None


def extract_title(sample: bytes, charset: str | None = None) -> str | None:
    """The first ``<title>`` of ``sample``: decoded leniently (the response's charset,
    else UTF-8, undecodable bytes replaced), entities resolved, whitespace collapsed,
    control characters and lone surrogates replaced by U+FFFD (PostgreSQL refuses NUL
    in text and no encoder takes a lone surrogate, so either would make the record
    unstorable somewhere), at most 200 characters; ``None`` without a complete title
    element."""
    match = _TITLE.search(sample)
    if match is None:
        return None
    raw = match.group(1)
    try:
        text = raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset name Python does not know
        text = raw.decode("utf-8", errors="replace")
    title = " ".join(html.unescape(text).split())
    return _UNSTORABLE.sub("\ufffd", title[:MAX_TITLE])


__all__ = [
    "BODY_SAMPLE_BYTES",
    "MAX_BODY_BYTES",
    "MAX_TITLE",
    "Body",
    "Decoder",
    "content_codings",
    "decoder_for",
    "extract_title",
]

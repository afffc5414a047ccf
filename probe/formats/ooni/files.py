"""Reading files of OONI measurements: JSON Lines or one JSON document, gzip or not.

Why apart from the mapping: a file is read a line at a time (so large files stream)
and a bad line is reported with its number and reason, never the end of the import.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; stay readable without it
    _orjson = None  # type: ignore[assignment]

from probe.formats.ooni.read import measurement_from_ooni
from probe.formats.ooni.spec import OoniFormatError
from probe.records import Measurement


@dataclass(frozen=True, slots=True)
class ReadResult:
    """One line of an input: its number and a measurement, or why it was skipped."""

    line: int
    measurement: Measurement | None = None
    error: OoniFormatError | None = None


#: What converting a hostile line can raise besides OoniFormatError.
_HOSTILE = (RecursionError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


def _convert(line: int, data: Any) -> ReadResult:
    try:
        return ReadResult(line, measurement=measurement_from_ooni(data))
    except OoniFormatError as exc:
        return ReadResult(line, error=exc)
    except _HOSTILE as exc:
        # A hostile or damaged line (nesting deeper than we can walk, a number no field
        # can hold): skipped with its reason, like any other bad line, never the end
        # of the import.
        reason = f"cannot be read ({exc.__class__.__name__}: {str(exc)[:200]})"
        return ReadResult(line, error=OoniFormatError(reason))


def loads(raw: bytes) -> Any:
    """Parse one line: orjson when installed (several times faster), else the standard
    library.  Both refuse what a measurement never holds (integers beyond 64 bits with
    orjson, beyond 4300 digits with json); the caller reports it as a bad line."""
    if _orjson is not None:
        try:
            return _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass  # orjson refuses lone surrogates, which the standard parser reads
    return json.loads(raw)


def parse_line(line: int, raw: bytes) -> ReadResult | None:
    """One line of JSON Lines as a measurement, or why it is skipped; None when blank."""
    return _parse_line(line, raw)


def _parse_line(line: int, raw: bytes) -> ReadResult | None:
    text = raw.strip()
    if not text:
        return None
    try:
        data = loads(text)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        # JSONDecodeError is a ValueError; so are over-long integers and (in orjson)
        # nesting too deep; the standard parser raises RecursionError for the latter.
        reason = str(exc)[:200]
        return ReadResult(line, error=OoniFormatError(f"not JSON ({exc.__class__.__name__}: {reason})"))
    return _convert(line, data)


def _is_json(raw: bytes) -> bool:
    try:
        loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return False
    return True


def read_ooni(stream: BinaryIO) -> Iterator[ReadResult]:
    """Every measurement in ``stream``: JSON Lines (one measurement a line, as OONI
    publishes them), or one JSON document (a measurement, or a list of them, as OONI
    Explorer downloads and test fixtures are).  Gzip is recognised by its magic bytes,
    whatever the name.  JSON Lines are read a line at a time, so large files stream."""
    # Any: a BinaryIO with peek() (a file opened "rb") or one wrapped to get it.
    buffered: Any = stream if hasattr(stream, "peek") else io.BufferedReader(stream)  # type: ignore[type-var, unused-ignore]
    source: Any = buffered
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        source = gzip.GzipFile(fileobj=buffered)
    number = 1
    raw = source.readline()
    while raw and not raw.strip():
        number += 1
        raw = source.readline()
    if raw and not _is_json(raw):
        # Not a line of JSON: a pretty-printed document, read whole; if it is not one
        # either, every line is reported on its own.
        whole = raw + source.read()
        try:
            document = json.loads(whole)
        except (ValueError, RecursionError, UnicodeDecodeError):
            for offset, line in enumerate(whole.splitlines()):
                result = _parse_line(number + offset, line)
                if result is not None:
                    yield result
            return
        for index, item in enumerate(document if isinstance(document, list) else [document], start=1):
            yield _convert(index, item)
        return
    while raw:
        result = _parse_line(number, raw)
        if result is not None:
            yield result
        raw = source.readline()
        number += 1


def read_ooni_path(path: str | Path) -> Iterator[ReadResult]:
    """:func:`read_ooni` over a file, or standard input for ``"-"``."""
    if str(path) == "-":
        yield from read_ooni(sys.stdin.buffer)
        return
    with open(path, "rb") as handle:
        yield from read_ooni(handle)

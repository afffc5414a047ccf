"""Check an uploaded batch before anything is stored, and say exactly what is wrong.

Why so strict: the collector is the archive other people cite.  A record that would
not read back, that would not fit a column (PostgreSQL refuses an over-long string
where SQLite silently keeps it, so the two backends would disagree), or whose
signature does not cover it, must be refused with a message the probe's author can act
on: the item's index and the path of the offending field.  Hostile input (a lone
surrogate, nesting thousands deep, a 5,000-digit number, a date that overflows when
turned into UTC) is refused the same way, never a 500.

Why the record is kept as sent: its canonical JSON is what the probe hashed and
signed.  Re-serialising it from parsed objects would drop fields a newer probe added
and break the signature, so the parsed form feeds only the SQL index.

:func:`validate_batch` is a pure function of bytes: the collector runs it in a pool of
worker processes, so parsing and ed25519 checks use every core and never the event loop.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from probe.records import FORMAT_VERSION, canonical_json
from probe.server.collector.schema import (
    BATCH_DECODER,
    ITEM_DECODER,
    PLAIN_DECODER,
    RECORD_DECODER,
    SORTED_ENCODER,
    ItemUpload,
)
from probe.signing import key_id_of, verify_envelope
from probe.store.database import PreparedItem, prepare_item

#: Envelope fields that belong to a signature.  An item carries all of them (key_id may
#: be left out; it is derived from the key) or none: half a signature is an error, not
#: an unsigned record.
SIGNATURE_FIELDS = ("signature", "key_id", "public_key")

#: Stop collecting problems after this many: one is enough to fix, a few help, a
#: thousand only make the answer large.
MAX_PROBLEMS = 20

#: Earliest and latest accepted ``started_at`` (UTC).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field of one item of a batch."""

    index: int
    field: str
    message: str

    def text(self) -> str:
        where = f"measurements[{self.index}]" + (f".{self.field}" if self.field else "")
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class Refusal:
    """The batch as a whole is unusable (not JSON, too many items)."""

    status: int
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


_KINDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "array": "a list",
    "object": "an object",
    "bool": "true or false",
    "null": "null",
}
_MESSAGE = re.compile(r"(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.S)


def _join(prefix: str, path: str) -> str:
    joined = f"{prefix}{path}"
    return joined.removeprefix(".")


def _kind_of(name: str) -> str:
    return _KINDS.get(name, name)


def _translate(error: msgspec.ValidationError, prefix: str) -> tuple[str, str]:
    """(field path, message in our words) from msgspec's error."""
    found = _MESSAGE.fullmatch(str(error))
    text = found["text"] if found else str(error)
    where = (found["path"] or "") if found else ""
    # An untyped part (a field this collector does not know) has no usable path.
    path = prefix if "[...]" in where else _join(prefix, where)
    if m := re.fullmatch(r"Object missing required field `(.+)`", text):
        return _join(path + ".", m[1]) if path else m[1], "is required"
    if m := re.fullmatch(r"Expected `([^`]+)`, got `([^`]+)`", text):
        want = m[1].replace(" | null", "")
        if m[2] == "null":
            return path, "must not be null"
        word = {"int": "an integer", "float": "a number", "str": "a string", "array": "a list"}.get(want)
        if want == "bool":
            return path, f"must be true or false, not {_kind_of(m[2])}"
        if word is None:
            word = "an object" if want not in _KINDS else _kind_of(want)
        return path, f"must be {word}, not {_kind_of(m[2])}"
    if m := re.fullmatch(r"Expected `str` of length <= (\d+)", text):
        return path, f"is longer than {m[1]} characters"
    if path.endswith("format_version") and re.fullmatch(r"Expected `int` <= \d+", text):
        return path, (
            f"format is newer than this collector reads ({FORMAT_VERSION}); the collector needs an upgrade"
        )
    if m := re.fullmatch(r"Expected `int` ([<>]=) (-?\d+)", text):
        return path, f"must be {'at least' if m[1] == '>=' else 'at most'} {m[2]}"
    if re.fullmatch(r"Expected `float` [<>]= .*", text):
        return path, "must be a finite number of seconds"
    if "datetime" in text:
        return path, "is not an ISO 8601 time (RFC 3339, e.g. 2022-10-27T08:00:00Z)"
    if text.startswith("Invalid enum value"):
        choices = "one of target, canary" if path.endswith("role") else "one of the allowed values"
        return path, f"must be {choices}"
    if "base64" in text:
        return path, "is not valid base64"
    if "Integer value out of range" in text:
        return path, "is a number too large to store (integers are at most 64 bits)"
    return path, text


def _first_surrogate(value: Any, path: str) -> str | None:
    """Where the first string holding a lone surrogate is (iteratively: any depth)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        current, where = stack.pop()
        if isinstance(current, str):
            try:
                current.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(current, dict):
            for key, item in reversed(list(current.items())):
                if not isinstance(key, str) or _first_surrogate(key, "") is not None:
                    return _join(where + ".", "<key>")
                stack.append((item, _join(where + ".", key)))
        elif isinstance(current, list):
            stack.extend((item, f"{where}[{i}]") for i, item in reversed(list(enumerate(current))))
    return None


def _undecodable(raw: bytes, prefix: str) -> tuple[str, str]:
    """Why msgspec could not even read these bytes, found with the standard parser."""
    try:
        value = json.loads(raw)
    except RecursionError:
        return prefix, "is nested too deeply"
    except UnicodeDecodeError:
        return prefix, "is not UTF-8 text"
    except ValueError as exc:
        return prefix, f"is not valid JSON ({str(exc)[:120]})"
    where = _first_surrogate(value, prefix)
    if where is not None:
        return where, "holds a lone surrogate (\\ud800-\\udfff), which is not text"
    return prefix, "is not valid JSON"


def _decode_error(exc: Exception, raw: bytes, prefix: str) -> tuple[str, str]:
    if isinstance(exc, msgspec.ValidationError):
        return _translate(exc, prefix)
    if isinstance(exc, RecursionError):
        return prefix, "is nested too deeply"
    return _undecodable(raw, prefix)


class _NotPythonsFloat(Exception):
    """A float written otherwise than Python's ``repr`` writes it: with an exponent
    msgspec writes differently (``1e16``, Python ``1e+16``), or one that msgspec writes
    without the exponent Python uses (``0.00005``, Python ``5e-05``).  Such records take
    Python's path."""


def _pythons_float(text: str) -> float:
    # Called by msgspec with each float's own text (never a string's), so this sees
    # exactly the numbers: a regular expression over the whole record cost more than
    # all the rest of the canonical check.  A record's floats are few (its times).
    value = float(text)
    if repr(value) != text:
        raise _NotPythonsFloat
    return value


#: The plain decoder, refusing (with :class:`_NotPythonsFloat`) any float that is not
#: written as Python writes it.
_PYTHONS_FLOAT_DECODER = msgspec.json.Decoder(float_hook=_pythons_float)


def _canonical(raw: bytes, prefix: str) -> bytes | tuple[str, str]:
    """The record's canonical JSON (what the probe hashed), or what is wrong.

    The uploader sends each record as its stored canonical bytes, so usually the raw
    bytes already are canonical: re-encoding with sorted keys and comparing proves it
    cheaply.  Otherwise (another client, floats written differently) Python's own
    ``canonical_json`` decides, exactly as the probe computed it."""
    pythons_floats = True
    try:
        try:
            plain = _PYTHONS_FLOAT_DECODER.decode(raw)
        except _NotPythonsFloat:
            pythons_floats = False
            plain = PLAIN_DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        return _decode_error(exc, raw, prefix)
    if pythons_floats:
        encoded = SORTED_ENCODER.encode(plain)
        if encoded == raw:
            return encoded
    try:
        return canonical_json(plain)
    except UnicodeEncodeError:
        return _first_surrogate(plain, prefix) or prefix, "holds a lone surrogate, which is not text"
    except (RecursionError, ValueError) as exc:
        return prefix, f"cannot be written as canonical JSON ({type(exc).__name__})"


def _semantics(record: Any, index: int) -> list[Problem]:
    """Rules the types alone do not express."""
    problems = []
    for name in ("id", "url", "domain"):
        if not getattr(record, name).strip():
            problems.append(Problem(index, f"record.{name}", "must not be empty"))
    cc = record.probe_cc
    if cc is not None and not (len(cc) == 2 and cc.isascii() and cc.isalpha()):
        problems.append(Problem(index, "record.probe_cc", "must be a two-letter country code"))
    started: datetime = record.started_at
    try:
        utc = started.replace(tzinfo=UTC) if started.tzinfo is None else started.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        problems.append(
            Problem(
                index,
                "record.started_at",
                f"must be a time between {EARLIEST.year} and {LATEST.year} (UTC), "
                f"not {started.isoformat()[:40]}",
            )
        )
    else:
        record.started_at = utc
    return problems


def _signature(index: int, item: ItemUpload, content_hash: str) -> dict[str, str] | list[Problem] | None:
    """The item's verified signature fields, None for an unsigned item, or what is wrong."""
    if item.signature is None and item.key_id is None and item.public_key is None:
        return None
    problems = [
        Problem(index, name, "is required when the item is signed (or leave out every signature field)")
        for name in ("signature", "public_key")
        if getattr(item, name) is None
    ]
    if problems:
        return problems
    envelope = {"content_hash": content_hash, "signature": item.signature, "public_key": item.public_key}
    if item.key_id is not None:
        envelope["key_id"] = item.key_id
    # The hash was just computed from these bytes: verify over it, not a re-hash.
    for why in verify_envelope(None, envelope, content_hash=content_hash):
        problems.append(Problem(index, "key_id" if why.startswith("key id") else "signature", why))
    if problems:
        return problems
    assert item.signature is not None and item.public_key is not None  # checked above
    return {
        "signature": item.signature,
        "public_key": item.public_key,
        "key_id": item.key_id or key_id_of(item.public_key),
    }


def check_item(index: int, raw: bytes, *, probe_id: str | None = None) -> PreparedItem | list[Problem]:
    """The item's rows ready to store, or what is wrong with it."""
    try:
        item = ITEM_DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        where, message = _decode_error(exc, raw, "")
        if where == "" and message.startswith("must be an object"):
            message = f"must be an object with a 'record', not {message.rsplit('not ', 1)[-1]}"
        return [Problem(index, where, message)]
    record_raw = bytes(item.record)
    try:
        record = RECORD_DECODER.decode(record_raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        return [Problem(index, *_decode_error(exc, record_raw, "record"))]
    problems = _semantics(record, index)
    if problems:
        return problems
    record_json = _canonical(record_raw, "record")
    if isinstance(record_json, tuple):
        return [Problem(index, *record_json)]
    content_hash = hashlib.sha256(record_json).hexdigest()
    claimed = item.content_hash
    if claimed is not None and claimed != content_hash:
        return [
            Problem(
                index,
                "content_hash",
                f"{claimed[:16]}… does not match the record, which hashes to {content_hash[:16]}… "
                "(sha256 of its canonical JSON: sorted keys, no spaces, UTF-8)",
            )
        ]
    signature = _signature(index, item, content_hash)
    if isinstance(signature, list):
        return signature
    return prepare_item(
        record,
        record=record_json.decode(),
        content_hash=content_hash,
        signature=signature,
        probe_asn=record.probe_asn,
        probe_id=probe_id,
        asn_source="record" if record.probe_asn is not None else None,
    )


def validate_batch(
    body: bytes, max_items: int, probe_id: str | None
) -> list[PreparedItem] | list[Problem] | Refusal:
    """Every item's rows, or every problem found (at most ``MAX_PROBLEMS``), or why the
    batch as a whole is refused."""
    try:
        batch = BATCH_DECODER.decode(body)
    except msgspec.ValidationError:
        return Refusal(
            422,
            "field 'measurements' is required and must be a list",
            {"field": "measurements", "index": None},
        )
    except RecursionError:
        return Refusal(
            400, "body is nested too deeply to be a batch of measurements", {"field": "measurements"}
        )
    except msgspec.DecodeError:
        where, message = _undecodable(body, "")
        if where and where != "measurements":
            match = re.match(r"measurements\[(\d+)\]\.?(.*)", where)
            if match:
                problem = Problem(int(match[1]), match[2], message)
                return [problem]
        if message.startswith("is not valid JSON"):
            return Refusal(400, f'body is not JSON; send {{"measurements": [...]}} ({message})')
        return Refusal(400, f"body {message}", {"field": where or None})
    items = batch.measurements
    if len(items) > max_items:
        return Refusal(
            413,
            f"batch of {len(items)} measurements; at most {max_items} per request",
            {"max_items": max_items},
        )
    prepared: list[PreparedItem] = []
    problems: list[Problem] = []
    for index, raw in enumerate(items):
        checked = check_item(index, bytes(raw), probe_id=probe_id)
        if isinstance(checked, PreparedItem):
            prepared.append(checked)
        else:
            problems.extend(checked)
            if len(problems) >= MAX_PROBLEMS:
                break
    return problems[:MAX_PROBLEMS] or prepared

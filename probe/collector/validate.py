"""Check one uploaded item before anything is stored, and say exactly what is wrong.

Why so strict: the collector is the archive other people cite.  A record that would
not read back (``Measurement.from_dict``), that would not fit a column (PostgreSQL
refuses an over-long string where SQLite silently keeps it, so the two backends would
disagree), or whose signature does not cover it, must be refused with a message the
probe's author can act on: the item's index and the path of the offending field.

Why the record is kept as sent: its canonical JSON is what the probe hashed and
signed.  Re-serialising it from the parsed dataclasses would drop fields a newer probe
added and break the signature, so the parsed form feeds only the SQL index.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import types
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass
from datetime import datetime
from typing import Any

from probe.failures import Failure
from probe.records import (
    FORMAT_VERSION,
    CertificateInfo,
    ControlObservations,
    DnsAnswer,
    DnsObservation,
    DnsResponse,
    HttpObservation,
    Measurement,
    TcpObservation,
    TlsObservation,
    canonical_json,
    parse_time,
)
from probe.signing import key_id_of, verify_envelope
from probe.store.database import BatchItem

#: Envelope fields that belong to a signature.  An item carries all of them (key_id may
#: be left out; it is derived from the key) or none: half a signature is an error, not
#: an unsigned record.
SIGNATURE_FIELDS = ("signature", "key_id", "public_key")

#: Stop collecting problems after this many: one is enough to fix, a few help, a
#: thousand only make the answer large.
MAX_PROBLEMS = 20

_INT32 = (0, 2**31 - 1)

#: String columns of the index, by record class and field: longer values are refused
#: here so that both backends accept exactly the same records.
_MAX_LENGTH: dict[type, dict[str, int]] = {
    Measurement: {"id": 64, "run_id": 36, "domain": 253, "role": 16, "category_code": 16, "probe_cc": 2},
    DnsObservation: {
        "id": 40,
        "hostname": 253,
        "query_type": 8,
        "resolver": 300,
        "transport": 10,
        "rcode": 16,
        "failure": 64,
    },
    TcpObservation: {"id": 40, "ip": 45, "failure": 64},
    TlsObservation: {
        "id": 40,
        "ip": 45,
        "server_name": 253,
        "purpose": 16,
        "version": 16,
        "cipher": 80,
        "failure": 64,
    },
    HttpObservation: {"id": 40, "ip": 45, "failure": 64, "body_sha256": 64},
    CertificateInfo: {"sha256": 64},
}

#: Integer columns of the index (PostgreSQL ``integer`` is 32-bit signed).
_INT_RANGE: dict[type, dict[str, tuple[int, int]]] = {
    Measurement: {"probe_asn": _INT32, "format_version": (1, FORMAT_VERSION)},
    TcpObservation: {"port": (0, 65535)},
    TlsObservation: {"port": (0, 65535)},
    HttpObservation: {"status_code": (0, 999), "body_length": _INT32},
}

_CHOICES: dict[type, dict[str, tuple[str, ...]]] = {
    Measurement: {"role": ("target", "canary")},
}

#: Fields a record must carry although the dataclass has a default for them: without
#: the format version a reader cannot know how to read the rest.
_ALSO_REQUIRED: dict[type, tuple[str, ...]] = {Measurement: ("format_version",)}

_HINTS: dict[type, dict[str, Any]] = {
    cls: typing.get_type_hints(cls)
    for cls in (
        Measurement,
        DnsAnswer,
        DnsResponse,
        DnsObservation,
        TcpObservation,
        CertificateInfo,
        TlsObservation,
        HttpObservation,
        ControlObservations,
    )
}


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field of one item of a batch."""

    index: int
    field: str
    message: str

    def text(self) -> str:
        return f"measurements[{self.index}].{self.field}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class _Problems(list[Problem]):
    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def add(self, field: str, message: str) -> None:
        if len(self) < MAX_PROBLEMS:
            self.append(Problem(self.index, field, message))

    @property
    def full(self) -> bool:
        return len(self) >= MAX_PROBLEMS


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _check_value(value: Any, tp: Any, path: str, problems: _Problems) -> None:
    if problems.full:
        return
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) not in args:
                problems.add(path, "must not be null")
            return
        inner = [a for a in args if a is not type(None)]
        _check_value(value, inner[0], path, problems)
        return
    if value is None:
        problems.add(path, "must not be null")
        return
    if origin is list:
        if not isinstance(value, list):
            problems.add(path, f"must be a list, not {_kind(value)}")
            return
        (inner,) = typing.get_args(tp)
        for i, item in enumerate(value):
            _check_value(item, inner, f"{path}[{i}]", problems)
        return
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list) or len(value) != len(args):
            problems.add(path, f"must be a list of {len(args)} items")
            return
        for i, (item, inner) in enumerate(zip(value, args, strict=True)):
            _check_value(item, inner, f"{path}[{i}]", problems)
        return
    if origin is dict:
        if not isinstance(value, dict):
            problems.add(path, f"must be an object, not {_kind(value)}")
            return
        for key, item in value.items():
            if not isinstance(item, str):
                problems.add(f"{path}.{key}", f"must be a string, not {_kind(item)}")
        return
    if isinstance(tp, type) and is_dataclass(tp):
        _check_object(value, tp, path, problems)
        return
    if tp is bool:
        if not isinstance(value, bool):
            problems.add(path, f"must be true or false, not {_kind(value)}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.add(path, f"must be an integer, not {_kind(value)}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.add(path, f"must be a number, not {_kind(value)}")
        elif not math.isfinite(value):
            problems.add(path, "must be a finite number")
    elif tp is str or tp is Failure:
        if not isinstance(value, str):
            problems.add(path, f"must be a string, not {_kind(value)}")
    elif tp is datetime:
        if not isinstance(value, str):
            problems.add(path, f"must be an ISO 8601 time string, not {_kind(value)}")
        else:
            try:
                parse_time(value)
            except ValueError:
                problems.add(path, f"{value[:40]!r} is not an ISO 8601 time")
    elif tp is bytes:
        if not isinstance(value, str):
            problems.add(path, f"must be a base64 string, not {_kind(value)}")
        else:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                problems.add(path, "is not valid base64")
    else:  # pragma: no cover - a new type in probe/records.py needs a rule here
        raise TypeError(f"no validation rule for {tp!r} at {path}")


def _check_object(value: Any, cls: type, path: str, problems: _Problems) -> None:
    if not isinstance(value, dict):
        problems.add(path, f"must be an object, not {_kind(value)}")
        return
    hints = _HINTS[cls]
    for f in fields(cls):
        required = (f.default is MISSING and f.default_factory is MISSING) or f.name in _ALSO_REQUIRED.get(
            cls, ()
        )
        if f.name not in value:
            if required:
                problems.add(f"{path}.{f.name}", "is required")
            continue
        item = value[f.name]
        where = f"{path}.{f.name}"
        before = len(problems)
        _check_value(item, hints[f.name], where, problems)
        if len(problems) > before or item is None:
            continue
        limit = _MAX_LENGTH.get(cls, {}).get(f.name)
        if limit is not None and isinstance(item, str) and len(item) > limit:
            problems.add(where, f"is longer than {limit} characters")
        bounds = _INT_RANGE.get(cls, {}).get(f.name)
        if bounds is not None and isinstance(item, int) and not bounds[0] <= item <= bounds[1]:
            if f.name == "format_version" and item > bounds[1]:
                problems.add(
                    where,
                    f"format {item} is newer than this collector reads ({FORMAT_VERSION}); "
                    "the collector needs an upgrade",
                )
            else:
                problems.add(where, f"must be between {bounds[0]} and {bounds[1]}")
        choices = _CHOICES.get(cls, {}).get(f.name)
        if choices is not None and item not in choices:
            problems.add(where, f"must be one of {', '.join(choices)}")


def _check_semantics(record: dict[str, Any], problems: _Problems) -> None:
    """Rules the types alone do not express."""
    for name in ("id", "url", "domain"):
        if isinstance(record.get(name), str) and not record[name].strip():
            problems.add(f"record.{name}", "must not be empty")
    cc = record.get("probe_cc")
    if isinstance(cc, str) and not (len(cc) == 2 and cc.isascii() and cc.isalpha()):
        problems.add("record.probe_cc", "must be a two-letter country code")


def check_item(index: int, item: Any, *, probe_id: str | None = None) -> BatchItem | list[Problem]:
    """The item ready to store, or every problem found with it (at most ``MAX_PROBLEMS``)."""
    problems = _Problems(index)
    if not isinstance(item, dict):
        problems.add("", f"must be an object with a 'record', not {_kind(item)}")
        return list(problems)
    record = item.get("record")
    if record is None:
        problems.add("record", "is required")
        return list(problems)
    _check_object(record, Measurement, "record", problems)
    for name in ("content_hash", *SIGNATURE_FIELDS):
        if item.get(name) is not None and not isinstance(item[name], str):
            problems.add(name, f"must be a string, not {_kind(item[name])}")
    if problems:
        return list(problems)
    _check_semantics(record, problems)
    if problems:
        return list(problems)
    try:
        measurement = Measurement.from_dict(record)
    except (TypeError, ValueError, KeyError) as exc:
        problems.add("record", f"does not read as a measurement ({exc})")
        return list(problems)

    record_json = canonical_json(record)
    content_hash = hashlib.sha256(record_json).hexdigest()
    envelope = {
        name: item[name] for name in ("content_hash", *SIGNATURE_FIELDS) if item.get(name) is not None
    }
    claimed = envelope.get("content_hash")
    if claimed is not None and claimed != content_hash:
        problems.add(
            "content_hash",
            f"{claimed[:16]}… does not match the record, which hashes to {content_hash[:16]}… "
            "(sha256 of its canonical JSON: sorted keys, no spaces, UTF-8)",
        )
        return list(problems)
    signature: dict[str, str] | None = None
    if any(name in envelope for name in SIGNATURE_FIELDS):
        for name in ("signature", "public_key"):
            if name not in envelope:
                problems.add(name, "is required when the item is signed (or leave out every signature field)")
        if problems:
            return list(problems)
        for why in verify_envelope(record, envelope):
            problems.add("key_id" if why.startswith("key id") else "signature", why)
        if problems:
            return list(problems)
        signature = {
            "signature": envelope["signature"],
            "public_key": envelope["public_key"],
            "key_id": envelope.get("key_id") or key_id_of(envelope["public_key"]),
        }
    return BatchItem(
        measurement=measurement,
        record=record_json.decode(),
        content_hash=content_hash,
        signature=signature,
        probe_asn=measurement.probe_asn,
        probe_id=probe_id,
        asn_source="record" if measurement.probe_asn is not None else None,
    )

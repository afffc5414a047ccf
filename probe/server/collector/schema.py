"""The upload schema: msgspec types generated from the record dataclasses.

Why generated: ``probe/records.py`` is the one definition of the archival format.  The
collector derives a msgspec Struct for every record class from its type hints, adding
only what the database needs (string lengths that fit the index columns, integer
ranges of 32-bit columns, the two roles), so a field added to the format is validated
without anyone remembering to write a rule.  msgspec then checks a whole record in
one C pass, naming the path of the first bad field, and refuses what a JSON parser in
Python would let through into the database (integers beyond 64 bits, nesting deeper
than the recursion limit).  The same types give the OpenAPI document its schema.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

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
)
from probe.store.models import (
    Base,
    DnsObservationRow,
    HttpObservationRow,
    MeasurementRow,
    TcpObservationRow,
    TlsObservationRow,
)

_INT32 = (0, 2**31 - 1)
#: Seconds: any finite offset a real clock gives; refuses 1e400 (which reads as infinity).
_SECONDS = Annotated[float, msgspec.Meta(ge=-1e12, le=1e12)]

#: Where each length-checked record field is stored: (model, {field: column}).
_COLUMNS: dict[type, tuple[type[Base], dict[str, str]]] = {
    Measurement: (
        MeasurementRow,
        {f: f for f in ("id", "run_id", "domain", "role", "category_code", "probe_cc")},
    ),
    DnsObservation: (
        DnsObservationRow,
        {
            "id": "obs_id",
            **{f: f for f in ("hostname", "query_type", "resolver", "transport", "rcode", "failure")},
        },
    ),
    TcpObservation: (TcpObservationRow, {"id": "obs_id", "ip": "ip", "failure": "failure"}),
    TlsObservation: (
        TlsObservationRow,
        {"id": "obs_id", **{f: f for f in ("ip", "server_name", "purpose", "version", "cipher", "failure")}},
    ),
    HttpObservation: (
        HttpObservationRow,
        {"id": "obs_id", "ip": "ip", "failure": "failure", "body_sha256": "body_sha256"},
    ),
    CertificateInfo: (TlsObservationRow, {"sha256": "leaf_sha256"}),
    # the control's failure has the observations' vocabulary, hence their column's width
    ControlObservations: (TcpObservationRow, {"failure": "failure"}),
}


def _column_length(model: type[Base], column: str) -> int:
    length = getattr(model.__table__.c[column].type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{model.__name__}.{column} has no length to check against")  # pragma: no cover
    return length


#: String columns of the index, by record class and field: longer values are refused
#: so that SQLite (which keeps anything) and PostgreSQL (which refuses) accept alike.
#: Read from the models, so a widened column widens what the collector accepts.
MAX_LENGTH: dict[type, dict[str, int]] = {
    cls: {field: _column_length(model, column) for field, column in fields.items()}
    for cls, (model, fields) in _COLUMNS.items()
}

#: Integer columns of the index (PostgreSQL ``integer`` is 32-bit signed).
INT_RANGE: dict[type, dict[str, tuple[int, int]]] = {
    Measurement: {"probe_asn": _INT32, "format_version": (1, FORMAT_VERSION)},
    TcpObservation: {"port": (0, 65535)},
    TlsObservation: {"port": (0, 65535)},
    HttpObservation: {"status_code": (0, 999), "body_length": _INT32},
}

_CHOICES: dict[type, dict[str, Any]] = {Measurement: {"role": Literal["target", "canary"]}}

#: Fields a record must carry although the dataclass has a default for them: without
#: the format version a reader cannot know how to read the rest.
_ALSO_REQUIRED: dict[type, tuple[str, ...]] = {Measurement: ("format_version",)}

_RECORD_CLASSES = (
    DnsAnswer,
    DnsResponse,
    DnsObservation,
    TcpObservation,
    CertificateInfo,
    TlsObservation,
    HttpObservation,
    ControlObservations,
    Measurement,
)

#: Methods the index builder calls on a record object, kept on the generated types.
_METHODS: dict[type, tuple[str, ...]] = {DnsObservation: ("addresses",), HttpObservation: ("header",)}


def _convert(tp: Any, structs: dict[type, type], owner: type, name: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [_convert(a, structs, owner, name) for a in typing.get_args(tp)]
        return typing.Union[tuple(args)]  # noqa: UP007 - built from a runtime tuple
    if origin is list:
        (inner,) = typing.get_args(tp)
        # mypy: a generic alias over a type built at run time, which a static checker cannot follow
        return list[_convert(inner, structs, owner, name)]  # type: ignore[misc]
    if origin is tuple:
        # mypy: as above, a run-time generic alias
        return tuple[tuple(_convert(a, structs, owner, name) for a in typing.get_args(tp))]  # type: ignore[misc]
    if origin is dict:
        return tp
    if tp in structs:
        return structs[tp]
    if tp is Failure:
        tp = str  # an unknown failure string from a newer probe stays readable
    if tp is float:
        return _SECONDS
    choice = _CHOICES.get(owner, {}).get(name)
    if choice is not None:
        return choice
    limit = MAX_LENGTH.get(owner, {}).get(name)
    if tp is str and limit is not None:
        return Annotated[str, msgspec.Meta(max_length=limit)]
    bounds = INT_RANGE.get(owner, {}).get(name)
    if tp is int and bounds is not None:
        return Annotated[int, msgspec.Meta(ge=bounds[0], le=bounds[1])]
    if tp in (str, int, bool, bytes, datetime, type(None)):
        return tp
    raise TypeError(f"no msgspec type for {tp!r} ({owner.__name__}.{name})")  # pragma: no cover


def _generate() -> dict[type, type]:
    structs: dict[type, type] = {}
    for cls in _RECORD_CLASSES:
        hints = typing.get_type_hints(cls)
        spec: list[tuple[Any, ...]] = []
        for f in dataclasses.fields(cls):
            tp = _convert(hints[f.name], structs, cls, f.name)
            required = f.name in _ALSO_REQUIRED.get(cls, ())
            if f.default is not dataclasses.MISSING and not required:
                spec.append((f.name, tp, f.default))
            elif f.default_factory is not dataclasses.MISSING:
                spec.append((f.name, tp, msgspec.field(default_factory=f.default_factory)))
            else:
                spec.append((f.name, tp))
        # Required fields first, as Python's signature rules want.
        spec.sort(key=lambda s: len(s) > 2)
        namespace = {name: getattr(cls, name) for name in _METHODS.get(cls, ())}
        struct = msgspec.defstruct(
            f"{cls.__name__}Upload", spec, namespace=namespace, module=__name__, kw_only=True
        )
        structs[cls] = struct
        globals()[struct.__name__] = struct  # picklable by name
    return structs


STRUCTS = _generate()
RecordUpload: type = STRUCTS[Measurement]


class ItemUpload(msgspec.Struct, kw_only=True):
    """One batch item: the record (kept as raw bytes: its canonical JSON is what was
    signed) and its envelope."""

    record: msgspec.Raw
    content_hash: str | None = None
    signature: str | None = None
    key_id: str | None = None
    public_key: str | None = None


class BatchUpload(msgspec.Struct):
    measurements: list[msgspec.Raw]


BATCH_DECODER = msgspec.json.Decoder(BatchUpload)
ITEM_DECODER = msgspec.json.Decoder(ItemUpload)
RECORD_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(RecordUpload)  # a type built at run time
PLAIN_DECODER = msgspec.json.Decoder()
SORTED_ENCODER = msgspec.json.Encoder(order="sorted")


def record_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """JSON Schema of a record: (the record's schema, the definitions it refers to),
    with references pointing into an OpenAPI ``components/schemas``."""
    (schema,), definitions = msgspec.json.schema_components(
        [RecordUpload], ref_template="#/components/schemas/{name}"
    )
    return schema, definitions

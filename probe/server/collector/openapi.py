"""The collector's OpenAPI 3.1 description, generated from its route table and types.

Why generated: every schema comes from a msgspec type (the measurement record's from
the very types that validate uploads, :mod:`probe.server.collector.schema`; the
answers' from the types below), and every path from :data:`OPERATIONS`, the table the
app builds its routes from, so the document cannot drift from what is served or
enforced.  The prose stays written by hand, in the table: it says what a generator
cannot (what "duplicate" promises, what is never stored, which limits this particular
server was started with).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from probe import __version__
from probe.server.collector.schema import record_schema

_REF = "#/components/schemas/{name}"


class Error(msgspec.Struct):
    """What went wrong, for a person."""

    error: str


class Problem(msgspec.Struct):
    index: int
    field: str
    message: str


class ValidationError(msgspec.Struct):
    """A refused batch: the first bad item, and every problem found."""

    error: str
    index: Annotated[int, msgspec.Meta(description="position of the first bad item")]
    field: Annotated[str, msgspec.Meta(description="path in that item, e.g. record.dns[0].started")]
    problems: list[Problem]


class Registration(msgspec.Struct):
    probe_id: str
    token: str


class Item(msgspec.Struct, kw_only=True):
    """One measurement and its envelope (``record`` is a ``MeasurementUpload``)."""

    record: Annotated[
        dict[str, Any],
        msgspec.Meta(
            description="A measurement as Measurement.to_dict() writes it (probe/records.py); "
            "fields this collector does not know are kept, not checked."
        ),
    ]
    content_hash: Annotated[
        str | None,
        msgspec.Meta(description="hex SHA-256 of the record's canonical JSON (sorted keys, no spaces)"),
    ] = None
    signature: Annotated[str | None, msgspec.Meta(description="base64 ed25519 signature")] = None
    key_id: str | None = None
    public_key: Annotated[str | None, msgspec.Meta(description="base64 raw ed25519 public key")] = None


class Batch(msgspec.Struct):
    measurements: list[Item]


class ItemResult(msgspec.Struct):
    id: str
    status: Literal["stored", "duplicate"]


class BatchResult(msgspec.Struct):
    results: list[ItemResult]
    stored: int
    duplicate: int


class Limits(msgspec.Struct):
    max_items: int
    max_bytes: int


class Health(msgspec.Struct):
    status: Literal["ok", "degraded"]
    service: str
    version: str
    database: str
    limits: Limits
    control: bool


class KeyProof(msgspec.Struct):
    public_key: Annotated[str, msgspec.Meta(description="base64, raw ed25519")]
    proof: Annotated[str, msgspec.Meta(description="base64 signature")]


class KeyBound(msgspec.Struct):
    key_id: str
    probe_id: str


class ControlRequest(msgspec.Struct):
    url: Annotated[str, msgspec.Meta(extra_json_schema={"format": "uri"})]


@dataclass(frozen=True)
class Operation:
    """One route: what the app serves at ``path`` and how the document describes it.
    Descriptions may name ``{max_items}`` and ``{max_bytes}``, this server's limits."""

    path: str
    method: str
    #: The collector's handler method serving it (``control`` routes: the helper's).
    handler: str
    operation_id: str
    summary: str
    description: str = ""
    request: type | None = None
    bearer: bool = False
    #: Status code -> (description, answer type or None).
    responses: dict[str, tuple[str, type | None]] = field(default_factory=dict)
    #: Served only with the control helper mounted (``kuzot serve --with-control``).
    control: bool = False


_DB_DOWN = ("Database unavailable; retry later.", Error)

#: Every route of the collector, in the document's order.
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "/api/v1/probes", "post", "probes", "registerProbe", "Register a probe",
        "Returns a new probe id and bearer token. Asks for nothing about the volunteer; the collector "
        "stores only the token's SHA-256. The request body is ignored.",
        responses={"201": ("Registered. Keep the token; it is shown once.", Registration), "503": _DB_DOWN},
    ),
    Operation(
        "/api/v1/measurements", "post", "measurements", "submitMeasurements",
        "Submit a batch of measurements",
        "Stores the whole batch in one transaction, or nothing of it. Idempotent by measurement id: an id "
        "stored before is answered 'duplicate' and not stored again, so a batch whose answer was lost can "
        "simply be sent again. Each record is kept verbatim (its canonical JSON is what the signature "
        "covers). Signed items carry signature and public_key (key_id optional); unsigned items carry none "
        "of the three. At most {max_items} items and {max_bytes} bytes per request.",
        request=Batch,
        bearer=True,
        responses={
            "200": ("Every item is now stored (newly or before).", BatchResult),
            "400": ("The body is not JSON. Nothing stored.", Error),
            "401": ("Missing or unknown bearer token. Nothing stored.", Error),
            "413": ("More than {max_items} items or {max_bytes} bytes. Nothing stored; send smaller batches.",
                    Error),
            "422": ("An item is malformed, violates the record schema, or its content hash or signature "
                    "does not match. Names the item index and field. Nothing stored.", ValidationError),
            "408": ("The body arrived too slowly. Nothing stored.", Error),
            "409": ("An item's id is already stored with a different content hash, or it is signed by a key "
                    "that belongs to another probe. Names the item. Nothing stored; send the other items "
                    "again without it.", ValidationError),
            "429": ("Too many batches from this probe; the Retry-After header says when to send again.",
                    Error),
            "503": ("The batch could not be stored. Nothing stored; retry later.", Error),
        },
    ),
    Operation(
        "/api/v1/keys", "post", "keys", "proveKey", "Prove this probe holds a signing key",
        "A signing key belongs to the probes that proved they hold it, or else to the first probe that "
        "uploaded with it; records signed by a key are refused (409) from any other probe. The proof is the "
        "key's ed25519 signature over 'kuzot-key-holder-v1:' followed by this probe's id, so it cannot be "
        "replayed for another registration.",
        request=KeyProof,
        bearer=True,
        responses={
            "200": ("Bound: records signed by this key are accepted from this probe.", KeyBound),
            "401": ("Missing or unknown bearer token.", Error),
            "422": ("Malformed request, or the proof does not verify.", Error),
            "503": _DB_DOWN,
        },
    ),
    Operation(
        "/api/v1/health", "get", "health", "health",
        "Liveness, database reachability and this server's batch limits",
        responses={"200": ("Serving.", Health), "503": ("Running, but the database is unreachable.", Health)},
    ),
    Operation(
        "/api/v1/openapi.json", "get", "openapi", "openapi", "This document",
        responses={"200": ("OpenAPI 3.1 description of the collector.", None)},
    ),
    Operation(
        "/api/v1/control", "post", "control", "controlMeasure",
        "Control measurement of one URL from the collector's network",
        "The control helper (kuzot control serve) mounted in the collector: measures the URL with the "
        "server's own resolver and answers the observations, ids prefixed 'control/', without body samples "
        "or certificate bytes.",
        request=ControlRequest,
        responses={
            "200": ("Control observations (dns, tcp, tls, http lists).", None),
            "400": ("Malformed request or URL.", Error),
            "403": ("The URL is on a private or loopback address.", Error),
            "413": ("Request body too large.", Error),
            "503": ("The helper is busy; retry later.", Error),
            "504": ("The measurement did not finish in time.", Error),
        },
        control=True,
    ),
    Operation(
        "/api/v1/control/health", "get", "control_health", "controlHealth", "Control helper liveness",
        responses={"200": ("Serving.", None)},
        control=True,
    ),
)  # fmt: skip

_TYPES = (Error, ValidationError, Registration, Item, Batch, BatchResult, Health, KeyProof, KeyBound,
          ControlRequest)  # fmt: skip


def _content(answer: type | None) -> dict[str, Any]:
    if answer is None:
        return {}
    return {"content": {"application/json": {"schema": {"$ref": _REF.format(name=answer.__name__)}}}}


def _operation(op: Operation, limits: dict[str, int]) -> dict[str, Any]:
    described: dict[str, Any] = {"summary": op.summary}
    if op.description:
        described["description"] = op.description.format(**limits)
    described["operationId"] = op.operation_id
    if op.bearer:
        described["security"] = [{"bearer": []}]
    if op.request is not None:
        described["requestBody"] = {"required": True, **_content(op.request)}
    described["responses"] = {
        status: {"description": text.format(**limits), **_content(answer)}
        for status, (text, answer) in op.responses.items()
    }
    return described


def _schemas(max_items: int) -> dict[str, Any]:
    _record, definitions = record_schema()
    _generated, answers = msgspec.json.schema_components(_TYPES, ref_template=_REF)
    item = answers["Item"]["properties"]["record"]
    item["$ref"] = _REF.format(name="MeasurementUpload")
    del item["type"]
    answers["Batch"]["properties"]["measurements"]["maxItems"] = max_items
    return {**definitions, **answers}


def openapi_document(*, max_items: int, max_bytes: int, control: bool) -> dict[str, Any]:
    """The description of this server, with the limits it was started with."""
    limits = {"max_items": max_items, "max_bytes": max_bytes}
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        if op.control and not control:
            continue
        paths.setdefault(op.path, {})[op.method] = _operation(op, limits)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kuzot collector",
            "version": __version__,
            "description": "Receives volunteers' signed website-blocking measurements. Never stores client "
            "IP addresses or anything else about the volunteer.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(max_items),
        },
    }

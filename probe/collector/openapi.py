"""The collector's OpenAPI 3.1 description, written by hand.

Why by hand: the interface is small and changes rarely, and a hand-written document
says what a generator cannot (what "duplicate" promises, what is never stored, which
limits this particular server was started with).  ``tests/test_collector.py`` checks
that every route the app serves is described here.
"""

from __future__ import annotations

from typing import Any

from probe import __version__


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_document(*, max_items: int, max_bytes: int, control: bool) -> dict[str, Any]:
    """The description of this server, with the limits it was started with."""
    paths: dict[str, Any] = {
        "/api/v1/probes": {
            "post": {
                "summary": "Register a probe",
                "description": "Returns a new probe id and bearer token. Asks for nothing about the "
                "volunteer; the collector stores only the token's SHA-256. The request body is ignored.",
                "operationId": "registerProbe",
                "responses": {
                    "201": {
                        "description": "Registered. Keep the token; it is shown once.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Registration"}}
                        },
                    },
                    "503": _error_response("Database unavailable; retry later."),
                },
            }
        },
        "/api/v1/measurements": {
            "post": {
                "summary": "Submit a batch of measurements",
                "description": (
                    "Stores the whole batch in one transaction, or nothing of it. Idempotent by "
                    "measurement id: an id stored before is answered 'duplicate' and not stored again, "
                    "so a batch whose answer was lost can simply be sent again. Each record is kept "
                    "verbatim (its canonical JSON is what the signature covers). Signed items carry "
                    "signature and public_key (key_id optional); unsigned items carry none of the "
                    f"three. At most {max_items} items and {max_bytes} bytes per request."
                ),
                "operationId": "submitMeasurements",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}},
                },
                "responses": {
                    "200": {
                        "description": "Every item is now stored (newly or before).",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/BatchResult"}}
                        },
                    },
                    "400": _error_response("The body is not JSON. Nothing stored."),
                    "401": _error_response("Missing or unknown bearer token. Nothing stored."),
                    "413": _error_response(
                        f"More than {max_items} items or {max_bytes} bytes. Nothing stored; send smaller "
                        "batches."
                    ),
                    "422": {
                        "description": "An item is malformed, violates the record schema, or its content "
                        "hash or signature does not match. Names the item index and field. Nothing stored.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ValidationError"}}
                        },
                    },
                    "503": _error_response("The batch could not be stored. Nothing stored; retry later."),
                },
            }
        },
        "/api/v1/health": {
            "get": {
                "summary": "Liveness, database reachability and this server's batch limits",
                "operationId": "health",
                "responses": {
                    "200": {
                        "description": "Serving.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
                    },
                    "503": {
                        "description": "Running, but the database is unreachable.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
                    },
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3.1 description of the collector."}},
            }
        },
    }
    if control:
        paths["/api/v1/control"] = {
            "post": {
                "summary": "Control measurement of one URL from the collector's network",
                "description": "The control helper (kuzot control serve) mounted in the collector: measures "
                "the URL with the server's own resolver and answers the observations, ids prefixed "
                "'control/', without body samples or certificate bytes.",
                "operationId": "controlMeasure",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["url"],
                                "properties": {"url": {"type": "string", "format": "uri"}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "Control observations (dns, tcp, tls, http lists)."},
                    "400": _error_response("Malformed request or URL."),
                    "403": _error_response("The URL is on a private or loopback address."),
                    "413": _error_response("Request body too large."),
                    "503": _error_response("The helper is busy; retry later."),
                    "504": _error_response("The measurement did not finish in time."),
                },
            }
        }
        paths["/api/v1/control/health"] = {
            "get": {
                "summary": "Control helper liveness",
                "operationId": "controlHealth",
                "responses": {"200": {"description": "Serving."}},
            }
        }
    string = {"type": "string"}
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
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": string}},
                "ValidationError": {
                    "type": "object",
                    "required": ["error", "index", "field", "problems"],
                    "properties": {
                        "error": string,
                        "index": {"type": "integer", "description": "position of the first bad item"},
                        "field": {
                            "type": "string",
                            "description": "path in that item, e.g. record.dns[0].started",
                        },
                        "problems": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "index": {"type": "integer"},
                                    "field": string,
                                    "message": string,
                                },
                            },
                        },
                    },
                },
                "Registration": {
                    "type": "object",
                    "required": ["probe_id", "token"],
                    "properties": {"probe_id": string, "token": string},
                },
                "Item": {
                    "type": "object",
                    "required": ["record"],
                    "properties": {
                        "record": {
                            "type": "object",
                            "description": "A measurement as Measurement.to_dict() writes it "
                            "(probe/records.py); required: id, url, domain, started_at, format_version.",
                        },
                        "content_hash": {
                            "type": "string",
                            "description": "hex SHA-256 of the record's canonical JSON "
                            "(sorted keys, no spaces)",
                        },
                        "signature": {"type": "string", "description": "base64 ed25519 signature"},
                        "key_id": string,
                        "public_key": {"type": "string", "description": "base64 raw ed25519 public key"},
                    },
                },
                "Batch": {
                    "type": "object",
                    "required": ["measurements"],
                    "properties": {
                        "measurements": {
                            "type": "array",
                            "maxItems": max_items,
                            "items": {"$ref": "#/components/schemas/Item"},
                        }
                    },
                },
                "BatchResult": {
                    "type": "object",
                    "required": ["results", "stored", "duplicate"],
                    "properties": {
                        "results": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "id": string,
                                    "status": {"type": "string", "enum": ["stored", "duplicate"]},
                                },
                            },
                        },
                        "stored": {"type": "integer"},
                        "duplicate": {"type": "integer"},
                    },
                },
                "Health": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string", "enum": ["ok", "degraded"]},
                        "service": string,
                        "version": string,
                        "database": string,
                        "limits": {
                            "type": "object",
                            "properties": {
                                "max_items": {"type": "integer"},
                                "max_bytes": {"type": "integer"},
                            },
                        },
                        "control": {"type": "boolean"},
                    },
                },
            },
        },
    }

"""A measurement's canonical JSON, written by msgspec in one C pass.

Why: :meth:`probe.records.Measurement.canonical_json` walks the dataclasses in Python
and hands a dict to :func:`json.dumps`; for an imported OONI measurement that was
about 40 % of its whole conversion.  msgspec writes the same bytes (keys and fields
sorted, no spaces, UTF-8, the same string escapes, enums by value, bytes as base64)
for everything a record holds except three things, handled here: ``started_at`` (the
record's one datetime, which :func:`probe.records.format_time` writes to the
microsecond with a ``Z``), numbers with an exponent (``1e16`` against Python's
``1e+16``) and non-finite floats (written ``null``).  A record with either of the last
two, or any that msgspec cannot write, takes the reference path, so the bytes are
always those of ``Measurement.canonical_json`` (tests compare both on real OONI data).
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from probe.records import ControlObservations, Measurement, format_time

_ENCODER = msgspec.json.Encoder(order="sorted")
#: A number written with an exponent (inside a string this may match too, which only
#: costs the reference path).
_EXPONENT = re.compile(rb"[:,\[]-?[0-9]+(?:\.[0-9]+)?[eE]")


def canonical_bytes(m: Measurement) -> bytes:
    """``m.canonical_json()``, fast (see the module docstring)."""
    if not _finite(m):
        return m.canonical_json()
    started = m.started_at
    try:
        m.started_at = format_time(started)  # type: ignore[assignment]  # restored below
        encoded = _ENCODER.encode(m)
    except (TypeError, ValueError, UnicodeEncodeError, OverflowError):
        return m.canonical_json()
    finally:
        m.started_at = started
    if _EXPONENT.search(encoded):
        return m.canonical_json()
    return encoded


def canonical_record(m: Measurement) -> str:
    """The canonical record as stored (text)."""
    return canonical_bytes(m).decode()


def _finite(m: Measurement) -> bool:
    """Whether every float of the record is finite (the record's floats are its runtime
    and its observations' times)."""
    values = [m.runtime]
    groups: list[Measurement | ControlObservations] = [m] if m.control is None else [m, m.control]
    for g in groups:
        observations: list[Any] = [*g.dns, *g.tcp, *g.tls, *g.http]
        for obs in observations:
            values.append(obs.started)
            values.append(obs.finished)
        for d in g.dns:
            values.extend(r.received for r in d.extra_responses)
    return all(map(math.isfinite, values))

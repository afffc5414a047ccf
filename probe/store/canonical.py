"""A measurement's canonical JSON, written by msgspec in one C pass.

Why: :meth:`probe.records.Measurement.canonical_json` walks the dataclasses in Python
and hands a dict to :func:`json.dumps`; for an imported OONI measurement that was
about 40 % of its whole conversion.  msgspec writes the same bytes (keys and fields
sorted, no spaces, UTF-8, the same string escapes, enums by value, bytes as base64)
for everything a record holds except three things, handled here: ``started_at`` (the
record's one datetime, which :func:`probe.records.format_time` writes to the
microsecond with a ``Z``), floats Python writes with an exponent and non-finite floats
(written ``null``).  Python's ``repr`` uses an exponent below 1e-4 and from 1e16 on;
msgspec writes ``1e16`` for Python's ``1e+16`` and ``5e-9`` for ``5e-09``, and from 1e-5
up to 1e-4 no exponent at all (``0.00005`` for ``5e-05``).  A record with any of those,
or any that msgspec cannot write, takes the reference path, so the bytes are always
those of ``Measurement.canonical_json``, which a verifier recomputes from the parsed
record (tests compare both on real OONI data and on every decade of floats).

The band without an exponent was once missed: a DNS lookup that started 60 us into a
measurement was stored in msgspec's form, and ``kuzot verify`` then found its content
hash did not match the evidence.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from probe.records import ControlObservations, Measurement, format_time

_ENCODER = msgspec.json.Encoder(order="sorted")
#: A number msgspec writes otherwise than Python: with an exponent, or below 1e-4
#: without one, ``0.0000`` and more digits (inside a string this may match too, which
#: only costs the reference path).
_NOT_PYTHONS = re.compile(rb"[:,\[]-?(?:[0-9]+(?:\.[0-9]+)?[eE]|0\.0000)")


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
    if _NOT_PYTHONS.search(encoded):
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

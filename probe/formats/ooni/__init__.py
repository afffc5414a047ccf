"""OONI's Web Connectivity measurements, to and from our archival records.

Why: analysts already hold years of OONI measurements from Kyrgyzstan.  Imported as
:class:`~probe.records.Measurement` objects they are judged by the same rules as ours
(:mod:`analysis.verdicts`), so a ten-year series can be told in one vocabulary; and
exported in OONI's format, our measurements can be read by OONI's tools and by people
who know OONI's data.

Reading is lenient because OONI's format grew over a decade: ooniprobe-legacy and
Measurement Kit (``test_version`` 0.0.x-0.3.x), probe-engine (0.4.x) and the
"LTE" implementation (0.5.x) all write Web Connectivity a little differently.  Bodies
and header values are strings or ``{"format": "base64", "data": ...}`` (sometimes with
broken padding); headers come as ``headers_list`` pairs or a ``headers`` map; almost any
key may be missing or ``null``.  What cannot be read makes the whole line an
:class:`OoniFormatError` whose message says why, never an exception from deep inside.

Mapping (OONI -> ours; the export is the inverse):

- ``test_keys.queries`` -> ``dns`` (``getaddrinfo``/``system``/``go`` engines are our
  ``system`` transport; ``udp``, ``tcp``, ``dot``, ``doh`` keep their names, with
  ``resolver_address`` as the resolver); ``x_dns_duplicate_responses`` -> the
  matching query's ``extra_responses``.
- ``tcp_connect`` -> ``tcp``; ``tls_handshakes`` -> ``tls`` (peer certificates are
  base64 DER, summarised and fingerprinted as our TLS step does).
- ``requests`` -> ``http``.  OONI lists requests last-first; ours are in order.
- ``control`` + ``control_failure`` -> :class:`ControlObservations` (``control/dns/0``,
  ``control/tcp/N``, ``control/tls/N``, ``control/http/0``).
- Failure strings: OONI's current strings are ours; legacy ones are mapped
  (:func:`failure_from_ooni`) and the originals kept in the annotation
  ``ooni.original_failures``.

Kuzot-only facts (our measurement id, the exact body length and hash, a DNS-only
control, the verdict) travel in ``x_kuzot`` extension keys, as OONI itself adds
``x_*`` keys; OONI's tools ignore them and our importer reads them back, so an export
imported again gives equivalent observations.  What the format cannot carry at all:
several control resolvers (OONI's test helper has one answer), the control's redirect
chain (it reports the final response only), sub-second start times, and the
observation ids of a chain that was not numbered in order.

The probe's IP address is never written: ``probe_ip`` is ``127.0.0.1``, OONI's own
value for a scrubbed address.

The package: :mod:`~probe.formats.ooni.spec` (the format's constants and error),
:mod:`~probe.formats.ooni.failure_map` (OONI's failure strings and ours),
:mod:`~probe.formats.ooni.values` (lenient readers of OONI's values),
:mod:`~probe.formats.ooni.read` (OONI -> ours, with :mod:`~probe.formats.ooni.control`
for the test helper's answer), :mod:`~probe.formats.ooni.files`
(reading files and lines) and :mod:`~probe.formats.ooni.write` (ours -> OONI).
"""

from probe.formats.ooni.failure_map import failure_from_ooni, failure_to_ooni
from probe.formats.ooni.files import ReadResult, loads, parse_line, read_ooni, read_ooni_path
from probe.formats.ooni.read import measurement_from_ooni, measurement_id, scrubbed
from probe.formats.ooni.spec import (
    DATA_FORMAT_VERSION,
    EXPORT_TEST_VERSION,
    OONI_ID_NAMESPACE,
    OONI_TIME_FORMAT,
    SCRUBBED_PROBE_IP,
    TEST_NAME,
    UNKNOWN_RESOLVER_IP,
    X_KUZOT,
    OoniFormatError,
)
from probe.formats.ooni.values import join_endpoint
from probe.formats.ooni.write import dumps_line, measurement_to_ooni

__all__ = [
    "DATA_FORMAT_VERSION",
    "EXPORT_TEST_VERSION",
    "OONI_ID_NAMESPACE",
    "OONI_TIME_FORMAT",
    "SCRUBBED_PROBE_IP",
    "TEST_NAME",
    "UNKNOWN_RESOLVER_IP",
    "X_KUZOT",
    "OoniFormatError",
    "ReadResult",
    "dumps_line",
    "failure_from_ooni",
    "failure_to_ooni",
    "join_endpoint",
    "loads",
    "measurement_from_ooni",
    "measurement_id",
    "measurement_to_ooni",
    "parse_line",
    "read_ooni",
    "read_ooni_path",
    "scrubbed",
]

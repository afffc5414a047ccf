"""What OONI's format fixes: versions, names, the values we write for what we never
disclose, and the error for a line that is not a Web Connectivity measurement.
"""

from __future__ import annotations

import uuid

from probe.errors import InputError

#: OONI's base data format version, which every Web Connectivity measurement carries.
DATA_FORMAT_VERSION = "0.2.0"


TEST_NAME = "web_connectivity"


#: The version we claim on export.  Below 0.5 OONI's tools treat every observation as
#: part of the "classic" algorithm, which ours are (one fetch, no depth tags); 0.5
#: would make them look for ``depth=N``/``fetch_body`` tags we do not write.
EXPORT_TEST_VERSION = "0.4.3"


#: OONI's value for a scrubbed probe address; the only probe_ip we ever write.
SCRUBBED_PROBE_IP = "127.0.0.1"


#: OONI's value for a resolver address it does not know.
UNKNOWN_RESOLVER_IP = "127.0.0.2"


#: ``measurement_start_time`` and ``test_start_time``: UTC, to the second.
OONI_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


#: Names imported measurement ids (uuid5), so that importing a file twice stores each
#: measurement once.  Never change it: every imported id depends on it.
OONI_ID_NAMESPACE = uuid.UUID("15766698-5d67-4bca-849c-e9137525bc9b")


#: The extension key (in ``test_keys`` and inside some entries) for Kuzot-only facts.
X_KUZOT = "x_kuzot"


class OoniFormatError(InputError, ValueError):
    """One line that is not an importable Web Connectivity measurement; says why."""

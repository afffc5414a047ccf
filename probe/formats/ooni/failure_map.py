"""OONI's failure strings and ours: the same vocabulary, plus the legacy names OONI wrote.

Why a mapping and not a second vocabulary: :mod:`probe.failures` is the one
enumeration; what OONI wrote that is not exactly ours is mapped to the nearest failure,
and the importer keeps the original next to it.
"""

from __future__ import annotations

from typing import Any

from probe.failures import Failure

#: Strings OONI wrote that are not ours, mapped to the nearest failure we have.  Legacy
#: (ooniprobe-legacy, Measurement Kit) names come from OONI's df-007-errors spec.
_FAILURE_ALIASES: dict[str, Failure] = {
    "dns_servfail_error": Failure.DNS_SERVER_FAILURE,
    "dns_name_failure": Failure.DNS_SERVER_FAILURE,
    "dns_name_error": Failure.DNS_NXDOMAIN,
    "android_dns_cache_no_data": Failure.DNS_NXDOMAIN,  # how Android's getaddrinfo says NXDOMAIN
    "dns_lookup_error": Failure.DNS_SERVER_MISBEHAVING,  # legacy: any resolver error, NXDOMAIN or not
    "dns_bogon_error": Failure.DNS_BOGUS_RESPONSE,
    "dns_reply_with_wrong_query_id": Failure.DNS_BOGUS_RESPONSE,
    "dns_lookup_timeout_error": Failure.GENERIC_TIMEOUT,
    "connection_refused_error": Failure.CONNECTION_REFUSED,
    "connection_lost_error": Failure.CONNECTION_RESET,
    "network_reset": Failure.CONNECTION_RESET,
    "connection_done": Failure.EOF,
    "response_never_received": Failure.EOF,
    "deferred_timeout_error": Failure.GENERIC_TIMEOUT,
    "tcp_timed_out_error": Failure.GENERIC_TIMEOUT,
    "task_timed_out": Failure.GENERIC_TIMEOUT,
    "timed_out": Failure.GENERIC_TIMEOUT,
    "ssl_unknown_autority": Failure.SSL_UNKNOWN_AUTHORITY,  # sic, as in OONI's spec
    "http_invalid_redirect_url": Failure.HTTP_INVALID_REDIRECT,
}


#: Our failures whose OONI name differs (the export side of the aliases above).
_FAILURE_EXPORT_NAMES: dict[Failure, str] = {Failure.DNS_SERVER_FAILURE: "dns_servfail_error"}


#: OONI's names for exactly our failures: reading them loses nothing worth keeping.
_SAME_MEANING: dict[str, Failure] = {name: failure for failure, name in _FAILURE_EXPORT_NAMES.items()}


CERTIFICATE_FAILURES = frozenset(
    {Failure.SSL_UNKNOWN_AUTHORITY, Failure.SSL_INVALID_HOSTNAME, Failure.SSL_INVALID_CERTIFICATE}
)


def failure_from_ooni(value: Any, originals: set[str] | None = None) -> Failure | None:
    """Our failure for one OONI ``failure`` value; ``None`` for success.

    A string that is not exactly ours is added to ``originals`` (when given), so the
    importer can keep what OONI really wrote next to our reading of it.
    """
    if value is None or value == "":
        return None
    text = str(value)
    try:
        return Failure(text)
    except ValueError:
        pass
    if text in _SAME_MEANING:
        return _SAME_MEANING[text]
    if originals is not None:
        originals.add(text)
    if text in _FAILURE_ALIASES:
        return _FAILURE_ALIASES[text]
    if text.startswith("ssl_error"):
        # Measurement Kit wrote OpenSSL's message after the prefix.
        return (
            Failure.SSL_INVALID_CERTIFICATE
            if "certificate verify failed" in text
            else Failure.SSL_FAILED_HANDSHAKE
        )
    return Failure.UNKNOWN


def failure_to_ooni(failure: Failure | None) -> str | None:
    if failure is None:
        return None
    return _FAILURE_EXPORT_NAMES.get(failure, failure.value)


def tls_validated(failure: Failure | None, no_tls_verify: bool) -> bool | None:
    """Whether the chain validated: as our TLS step records it (``None`` when the
    handshake failed before a certificate could be judged)."""
    if failure is None:
        return None if no_tls_verify else True
    return False if failure in CERTIFICATE_FAILURES else None

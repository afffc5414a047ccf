"""The one failure vocabulary, and the one place where errors become failure strings.

Why one module: the failure strings are the public contract of the archival format.
Analysts group and count by them, and they must line up with OONI's vocabulary so that
our measurements and OONI's can be compared.  Every step calls :func:`classify_failure`
at its boundary instead of inventing strings, so a new kind of error is handled in
exactly one place.

Strings follow OONI probe-cli's ``netxlite`` failure names (``connection_reset``,
``generic_timeout_error``, ``dns_nxdomain_error``, ...).  Where we observe something
OONI does not name we add a string in the same style and document it here.
"""

from __future__ import annotations

import errno
import socket
import ssl
from enum import StrEnum


class Failure(StrEnum):
    """Every failure a measurement step can record."""

    # Generic
    GENERIC_TIMEOUT = "generic_timeout_error"
    EOF = "eof_error"
    INTERRUPTED = "interrupted"
    UNKNOWN = "unknown_failure"

    # TCP / sockets
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    CONNECTION_ABORTED = "connection_aborted"
    HOST_UNREACHABLE = "host_unreachable"
    NETWORK_UNREACHABLE = "network_unreachable"
    NETWORK_DOWN = "network_down"
    ADDRESS_NOT_AVAILABLE = "address_not_available"
    PERMISSION_DENIED = "permission_denied"

    # DNS
    DNS_NXDOMAIN = "dns_nxdomain_error"
    DNS_SERVER_FAILURE = "dns_server_failure"
    DNS_REFUSED = "dns_refused_error"
    DNS_NO_ANSWER = "dns_no_answer"
    DNS_TEMPORARY_FAILURE = "dns_temporary_failure"
    DNS_NON_RECOVERABLE = "dns_non_recoverable_failure"
    DNS_SERVER_MISBEHAVING = "dns_server_misbehaving"
    DNS_BOGUS_RESPONSE = "dns_bogus_response_error"

    # TLS
    SSL_INVALID_HOSTNAME = "ssl_invalid_hostname"
    SSL_UNKNOWN_AUTHORITY = "ssl_unknown_authority"
    SSL_INVALID_CERTIFICATE = "ssl_invalid_certificate"
    SSL_FAILED_HANDSHAKE = "ssl_failed_handshake"

    # HTTP
    HTTP_INVALID_RESPONSE = "http_invalid_response"
    HTTP_TOO_MANY_REDIRECTS = "http_too_many_redirects"
    HTTP_INVALID_REDIRECT = "http_invalid_redirect_location_host"
    #: Ours: a redirect from a public address to a non-global one (a LAN, loopback,
    #: carrier-grade NAT) is not followed, so that a hostile site cannot make the probe
    #: fetch, store and upload a page of the volunteer's own network (a router's, say).
    HTTP_REDIRECT_TO_PRIVATE = "http_redirect_to_private_address"

    # Control helper (kuzot control serve): it answered, but with a refusal, not observations.
    # The helper's own words go to ControlObservations.reason.
    CONTROL_REFUSED_PRIVATE_ADDRESS = "control_refused_private_address"
    CONTROL_OVERLOADED = "control_overloaded"
    CONTROL_BAD_REQUEST = "control_bad_request"
    CONTROL_HTTP_ERROR = "control_http_error"
    CONTROL_INVALID_RESPONSE = "control_invalid_response"


#: The failures that mean a certificate did not validate (the handshake itself
#: completed): a middlebox's certificate, or a redirected connection's.  One set for the
#: TLS step, the verdicts and the OONI mapping.
CERTIFICATE_FAILURES = frozenset(
    {Failure.SSL_UNKNOWN_AUTHORITY, Failure.SSL_INVALID_HOSTNAME, Failure.SSL_INVALID_CERTIFICATE}
)

# errno -> failure.  Only errnos that mean something on the path to a server.
_ERRNO_FAILURES: dict[int, Failure] = {
    errno.ECONNREFUSED: Failure.CONNECTION_REFUSED,
    errno.ECONNRESET: Failure.CONNECTION_RESET,
    errno.ECONNABORTED: Failure.CONNECTION_ABORTED,
    errno.EPIPE: Failure.CONNECTION_RESET,
    errno.EHOSTUNREACH: Failure.HOST_UNREACHABLE,
    errno.ENETUNREACH: Failure.NETWORK_UNREACHABLE,
    errno.ENETDOWN: Failure.NETWORK_DOWN,
    errno.ETIMEDOUT: Failure.GENERIC_TIMEOUT,
    errno.EADDRNOTAVAIL: Failure.ADDRESS_NOT_AVAILABLE,
    errno.EACCES: Failure.PERMISSION_DENIED,
    errno.EPERM: Failure.PERMISSION_DENIED,
}

# getaddrinfo's EAI_* codes -> failure, as OONI maps the system resolver's errors.
_GAI_FAILURES: dict[int, Failure] = {
    socket.EAI_NONAME: Failure.DNS_NXDOMAIN,
    socket.EAI_AGAIN: Failure.DNS_TEMPORARY_FAILURE,
    socket.EAI_FAIL: Failure.DNS_NON_RECOVERABLE,
}
for _name in ("EAI_NODATA", "EAI_ADDRFAMILY"):
    if hasattr(socket, _name):
        _GAI_FAILURES[getattr(socket, _name)] = Failure.DNS_NO_ANSWER

# OpenSSL X509_V_ERR_* codes -> failure.
_X509_HOSTNAME_MISMATCH = 62
_X509_UNKNOWN_AUTHORITY = {2, 18, 19, 20, 21, 27}
_X509_INVALID_CERTIFICATE = {9, 10, 13, 14, 23, 24, 26, 28}


def classify_ssl_error(exc: ssl.SSLError) -> Failure:
    """Map an OpenSSL error to the TLS failure strings.

    Certificate errors keep their meaning (an untrusted issuer is the typical sign of
    a middlebox, a wrong name the sign of a redirected connection); everything else
    that breaks a handshake is ``ssl_failed_handshake``, unless the peer simply went
    away, which is an EOF or a reset as on any socket.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = getattr(exc, "verify_code", None)
        if code == _X509_HOSTNAME_MISMATCH:
            return Failure.SSL_INVALID_HOSTNAME
        if code in _X509_UNKNOWN_AUTHORITY:
            return Failure.SSL_UNKNOWN_AUTHORITY
        if code in _X509_INVALID_CERTIFICATE:
            return Failure.SSL_INVALID_CERTIFICATE
        message = str(exc).lower()
        if "hostname" in message or "ip address mismatch" in message:
            return Failure.SSL_INVALID_HOSTNAME
        return Failure.SSL_INVALID_CERTIFICATE
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return Failure.EOF
    reason = (getattr(exc, "reason", None) or "").upper()
    if "UNEXPECTED_EOF" in reason:
        return Failure.EOF
    return Failure.SSL_FAILED_HANDSHAKE


def classify_failure(exc: BaseException) -> Failure:
    """Turn any exception raised while measuring into one :class:`Failure`.

    This is the only function that inspects OS, OpenSSL, trio, httpx and dnspython
    errors.  Cancellation is never passed here: a step's own timeout is recorded by the
    step itself (it knows whether *its* scope fired), and outside cancellation must
    propagate.  The families are asked in a fixed order (DNS, TLS, HTTP, streams and
    sockets), because their classes overlap: ``ssl.SSLError`` is an ``OSError``, and
    httpx's errors wrap the ones below them.
    """
    # Imported lazily so that the records and analysis layers can use Failure
    # without pulling in network libraries.
    import dns.exception
    import trio

    if isinstance(exc, TimeoutError | trio.TooSlowError | dns.exception.Timeout):
        return Failure.GENERIC_TIMEOUT
    if isinstance(exc, BaseExceptionGroup):
        # trio's open_tcp_stream raises OSError("all attempts ... failed") from a group
        # of the attempts' errors: the first attempt's error says what happened.
        return classify_failure(exc.exceptions[0])
    failure = _dns_failure(exc)
    if failure is None and isinstance(exc, ssl.SSLError):
        failure = classify_ssl_error(exc)
    if failure is None:
        failure = _http_failure(exc)
    if failure is None:
        failure = _stream_failure(exc)
    if failure is not None:
        return failure
    # A wrapper not named above (an OSError or group raised from another error;
    # httpcore's ReadError or ConnectError, wrapped by httpx in turn): the error it
    # came from says what happened.  httpcore re-raises its errors ``from None``, so
    # the origin is found in ``__context__`` or in the wrapper's own argument.
    origins = [exc.__cause__, exc.__context__, *(a for a in exc.args if isinstance(a, BaseException))]
    for origin in origins:
        if origin is not None and origin is not exc:
            return classify_failure(origin)
    return Failure.UNKNOWN


def _dns_failure(exc: BaseException) -> Failure | None:
    import dns.exception
    import dns.name
    import dns.resolver

    if isinstance(exc, dns.resolver.NXDOMAIN):
        return Failure.DNS_NXDOMAIN
    if isinstance(exc, dns.resolver.NoAnswer):
        return Failure.DNS_NO_ANSWER
    if isinstance(
        exc,
        dns.name.EmptyLabel
        | dns.name.LabelTooLong
        | dns.name.NameTooLong
        | dns.name.BadEscape
        | dns.name.IDNAException,
    ):
        # A name that cannot exist ("a..b", a 64-byte label): Go's resolver, and so
        # OONI, reports "no such host" without sending a query; we do the same.
        return Failure.DNS_NXDOMAIN
    if isinstance(exc, dns.exception.DNSException):
        return Failure.DNS_SERVER_MISBEHAVING
    if isinstance(exc, socket.gaierror):
        return _GAI_FAILURES.get(exc.errno or 0, Failure.DNS_SERVER_MISBEHAVING)
    return None


def _http_failure(exc: BaseException) -> Failure | None:
    import httpx

    if isinstance(exc, httpx.TooManyRedirects):
        return Failure.HTTP_TOO_MANY_REDIRECTS
    if isinstance(exc, httpx.TimeoutException):
        return Failure.GENERIC_TIMEOUT
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc).lower()
        if "without sending" in text or "disconnected" in text or "incomplete" in text:
            return Failure.EOF
        return Failure.HTTP_INVALID_RESPONSE
    if isinstance(exc, httpx.LocalProtocolError | httpx.DecodingError):
        return Failure.HTTP_INVALID_RESPONSE
    if isinstance(exc, httpx.TransportError):
        # httpx wraps the real cause; classify that instead of the wrapper.
        cause = exc.__cause__ or exc.__context__
        if cause is not None and cause is not exc:
            return classify_failure(cause)
        return Failure.UNKNOWN
    return None


def _stream_failure(exc: BaseException) -> Failure | None:
    import trio

    if isinstance(exc, trio.BrokenResourceError):
        cause = exc.__cause__ or exc.__context__
        if cause is not None:
            return classify_failure(cause)
        return Failure.CONNECTION_RESET
    if isinstance(exc, trio.ClosedResourceError | EOFError):
        return Failure.EOF
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return Failure.CONNECTION_RESET
    if isinstance(exc, ConnectionRefusedError):
        return Failure.CONNECTION_REFUSED
    if isinstance(exc, OSError) and exc.errno in _ERRNO_FAILURES:
        return _ERRNO_FAILURES[exc.errno]
    return None


# DNS response codes (as dnspython's text) -> failure, as OONI's netxlite maps them.
_RCODE_FAILURES: dict[str, Failure] = {
    "NXDOMAIN": Failure.DNS_NXDOMAIN,
    "SERVFAIL": Failure.DNS_SERVER_FAILURE,
    "REFUSED": Failure.DNS_REFUSED,
}


def classify_rcode(rcode: str) -> Failure | None:
    """The failure a DNS reply's response code means: ``None`` for NOERROR.

    Whether a NOERROR reply is ``dns_no_answer`` depends on its records, which only
    the DNS step sees; every other code that is not named here is a misbehaving server.
    """
    if rcode == "NOERROR":
        return None
    return _RCODE_FAILURES.get(rcode, Failure.DNS_SERVER_MISBEHAVING)


def failure_or_none(value: str | None) -> Failure | None:
    """Read a stored failure string back; unknown strings from newer probes stay readable."""
    if value is None:
        return None
    try:
        return Failure(value)
    except ValueError:
        return Failure.UNKNOWN

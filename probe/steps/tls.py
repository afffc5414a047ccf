"""The TLS step: a handshake over an open TCP stream, with the name of our choosing.

Why a bare ``trio.SSLStream``: it lets us send the SNI of the URL's host to an address
of our choosing (``trio.open_ssl_over_tcp_stream`` cannot), and it exposes what the
archival record wants: version, cipher, ALPN and the certificate chain.

Certificate failures are the evidence we most need to keep.  An untrusted issuer or a
wrong name is the typical sign of a middlebox or of a redirected connection, and the
certificate itself says whose middlebox it is.  OpenSSL aborts the handshake before
we can read the chain, so after such a failure :func:`handshake` opens a second TCP
connection to the same address and repeats the handshake *without* verification,
only to record the chain (``validated=False``).  That second connection is not an
observation of its own: it is how the first one's evidence is collected.

The step's own cancel scope bounds the handshake; ``generic_timeout_error`` is
recorded only when it fired, and outside cancellation propagates.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from pathlib import Path
from typing import Any

import trio
from cryptography import x509

from probe.failures import CERTIFICATE_FAILURES, Failure, classify_failure
from probe.records import CertificateInfo, TlsObservation
from probe.steps import tcp

# Offered here too, where they were before probe/steps/bundle.py.
from probe.steps.bundle import check_bundle as check_bundle
from probe.steps.bundle import trust_bundle as trust_bundle

#: We offer HTTP/1.1 only.  httpcore sets ALPN on the context it is given (to
#: ``["http/1.1"]`` without HTTP/2), and the TLS step shares its context with the
#: HTTP step; one stable value keeps every handshake of a run offering the same.
ALPN_PROTOCOLS = ["http/1.1"]

#: What a TLS handshake can raise for reasons of the network or the peer.
_HANDSHAKE_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError)


def make_ssl_context(ca_bundle: str | Path | None = None) -> ssl.SSLContext:
    """A verifying client context: the system trust store *plus* ``ca_bundle``.

    An extra bundle adds trust anchors (a lab CA, a regional CA) without removing the
    system's, so the same run can measure real sites and lab sites.  TLS 1.2 is the
    oldest version offered, as in current browsers.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_bundle is not None:
        trust_bundle(context, ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    return context


def _capture_context(verifying: ssl.SSLContext) -> ssl.SSLContext:
    """A context that accepts any chain, offering what ``verifying`` offers."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = verifying.minimum_version
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    return context


async def handshake(
    stream: trio.abc.Stream,
    *,
    ip: str,
    port: int,
    server_name: str,
    obs_id: str,
    t0: float,
    timeout: float,  # noqa: ASYNC109 -- the contract: each step owns its own cancel scope
    context: ssl.SSLContext,
    purpose: str = "target",
    source_address: str | None = None,
) -> tuple[TlsObservation, trio.SSLStream[trio.abc.Stream] | None]:
    """Handshake over ``stream`` sending ``server_name`` as SNI; verify with ``context``.

    Returns the observation and the TLS stream (``None`` on failure; ``stream`` itself
    is still the caller's to close either way).  On a certificate failure the chain is
    captured over a second connection to ``ip:port`` from ``source_address`` (see the
    module docstring), bounded by a ``timeout`` of its own; if that fails too the
    observation simply has no certificates.
    """
    started = trio.current_time() - t0
    observation = TlsObservation(
        id=obs_id,
        ip=ip,
        port=port,
        server_name=server_name,
        started=started,
        finished=started,
        purpose=purpose,
    )
    tls_stream = trio.SSLStream(stream, context, server_hostname=server_name, https_compatible=True)
    done = False
    with trio.move_on_after(timeout) as scope:
        try:
            await tls_stream.do_handshake()
        except _HANDSHAKE_ERRORS as exc:
            observation.failure = classify_failure(exc)
        else:
            done = True
    observation.finished = trio.current_time() - t0
    if scope.cancelled_caught:
        observation.failure = Failure.GENERIC_TIMEOUT
    if done:
        _record_session(observation, tls_stream)
        observation.validated = True
        return observation, tls_stream
    if observation.failure in CERTIFICATE_FAILURES:  # the chain is fetched again, unverified
        observation.validated = False
        observation.certificates = await _capture_chain(
            ip, port, server_name, t0=t0, timeout=timeout, context=context, source_address=source_address
        )
    return observation, None


async def _capture_chain(
    ip: str,
    port: int,
    server_name: str,
    *,
    t0: float,
    timeout: float,  # noqa: ASYNC109
    context: ssl.SSLContext,
    source_address: str | None,
) -> list[CertificateInfo]:
    """The chain ``ip:port`` presents for ``server_name``, fetched without verifying."""
    _tcp_obs, raw = await tcp.connect(
        ip, port, obs_id="capture", t0=t0, timeout=timeout, source_address=source_address
    )
    if raw is None:
        return []
    tls_stream = trio.SSLStream(
        raw, _capture_context(context), server_hostname=server_name, https_compatible=True
    )
    chain: list[CertificateInfo] = []
    try:
        with trio.move_on_after(timeout):
            try:
                await tls_stream.do_handshake()
            except _HANDSHAKE_ERRORS:
                pass  # no evidence this time; the first handshake's failure stands
            else:
                chain = peer_chain(tls_stream)
    finally:
        await _close_quietly(raw)
    return chain


async def _close_quietly(stream: trio.abc.AsyncResource) -> None:
    """Close without waiting for the peer (even when cancelled): evidence is taken."""
    await trio.aclose_forcefully(stream)


def _record_session(observation: TlsObservation, tls_stream: trio.SSLStream[trio.abc.Stream]) -> None:
    observation.version = tls_stream.version()
    cipher = tls_stream.cipher()
    observation.cipher = cipher[0] if cipher else None
    observation.alpn = tls_stream.selected_alpn_protocol()
    observation.certificates = peer_chain(tls_stream)


def peer_chain(tls_stream: trio.SSLStream[Any]) -> list[CertificateInfo]:
    """Every certificate the peer sent, leaf first, as :class:`CertificateInfo`.

    Python 3.11 has no public way to read the chain as sent (3.13 adds
    ``SSLObject.get_unverified_chain``); the private ``_sslobj.get_unverified_chain``
    has existed since 3.10.  Without it we fall back to the leaf alone.
    """
    ssl_object = getattr(tls_stream, "_ssl_object", None)
    ders: list[bytes] = []
    native = getattr(ssl_object, "_sslobj", None)
    getter = getattr(ssl_object, "get_unverified_chain", None) or getattr(
        native, "get_unverified_chain", None
    )
    if getter is not None:
        for item in getter() or []:
            ders.append(item if isinstance(item, bytes) else item.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
    if not ders:
        leaf = tls_stream.getpeercert(binary_form=True)
        if leaf:
            ders.append(leaf)
    return [certificate_info(der) for der in ders]


def certificate_info(der: bytes) -> CertificateInfo:
    """The archival summary of one DER certificate, with the DER itself.

    A middlebox's certificate may be malformed; it is then kept by hash and bytes
    with empty fields, because the bytes are the evidence and a parser's opinion of
    them is not a reason to drop them.
    """
    digest = hashlib.sha256(der).hexdigest()
    der_b64 = base64.b64encode(der).decode("ascii")
    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        issuer = cert.issuer.rfc4514_string()
        not_before = cert.not_valid_before_utc.isoformat()
        not_after = cert.not_valid_after_utc.isoformat()
        sans = _subject_alt_names(cert)
    except ValueError:
        return CertificateInfo(digest, "", "", [], "", "", der_b64)
    return CertificateInfo(
        sha256=digest,
        subject=subject,
        issuer=issuer,
        sans=sans,
        not_before=not_before,
        not_after=not_after,
        der_b64=der_b64,
    )


def _subject_alt_names(cert: x509.Certificate) -> list[str]:
    """DNS names, then IP addresses, of the subjectAltName extension (``[]`` without)."""
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names = extension.value
    sans: list[str] = list(names.get_values_for_type(x509.DNSName))
    sans.extend(str(address) for address in names.get_values_for_type(x509.IPAddress))
    return sans

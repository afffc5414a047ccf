"""The TCP step: connect to one address and port, and record how that went.

Why ``trio.socket`` rather than ``trio.open_tcp_stream``: the high-level opener tries
several addresses and folds their errors into one ``OSError`` whose errno is lost;
a measurement connects to exactly the address it was given and needs the precise
errno (refused, reset, unreachable) to tell blocking techniques apart.

The connect is bounded by the step's own cancel scope; ``generic_timeout_error`` is
recorded only when that scope fired, and outside cancellation propagates.  The
caller owns the returned stream and must close it.  Only caller mistakes raise
(an address that is not an IP literal).
"""

from __future__ import annotations

import socket

import trio

from probe.failures import Failure, classify_failure
from probe.records import TcpObservation
from probe.steps.addresses import ip_version


async def connect(
    ip: str,
    port: int,
    *,
    obs_id: str,
    t0: float,
    timeout: float,  # noqa: ASYNC109 -- the contract: each step owns its own cancel scope
    source_address: str | None = None,
) -> tuple[TcpObservation, trio.SocketStream | None]:
    """Open a TCP connection to ``ip:port``; return the observation and the stream
    (``None`` when the connect failed).

    ``source_address`` binds the socket to that local address first (port chosen by
    the kernel); it is never recorded.  A source of the other IP version than ``ip``
    is recorded as ``address_not_available`` without sending anything.

    Raises ValueError when ``ip`` or ``source_address`` is not an IP literal: trio
    would otherwise resolve a name through the system resolver.
    """
    version = ip_version(ip)
    source_version = version if source_address is None else ip_version(source_address)
    started = trio.current_time() - t0
    observation = TcpObservation(id=obs_id, ip=ip, port=port, started=started, finished=started)
    if source_version != version:
        observation.failure = Failure.ADDRESS_NOT_AVAILABLE
        return observation, None

    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    try:
        sock = trio.socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:  # no IPv6 on this host, no file descriptors left: data too
        observation.failure = classify_failure(exc)
        return observation, None
    stream: trio.SocketStream | None = None
    try:
        with trio.move_on_after(timeout) as scope:
            try:
                if source_address is not None:
                    await sock.bind((source_address, 0))
                await sock.connect((ip, port))
            except OSError as exc:
                observation.failure = classify_failure(exc)
            else:
                stream = trio.SocketStream(sock)
        if scope.cancelled_caught:
            observation.failure = Failure.GENERIC_TIMEOUT
        observation.finished = trio.current_time() - t0
    finally:
        # On failure, timeout or outside cancellation the socket is ours to close.
        if stream is None:
            sock.close()
    return observation, stream

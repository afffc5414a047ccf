"""HTTP over the connection the TCP and TLS steps already opened.

Why: an https measurement used to pay for two handshakes to the same address, one for
the TLS observation and one for the HTTP fetch, which opened its own connection.  At
50 ms RTT that is two round trips of six.  The TLS step's connection carries the
same SNI, was verified with the same context and offered the same ALPN, so the
request sent over it is the request the fetch would have sent; handing it over
changes no recorded field, only the time the fetch takes.  (The comparison handshake
with an innocuous name is never handed over: it is a different question.)

How: httpcore asks its network backend for a TCP stream and then asks that stream to
start TLS.  :class:`HandoverBackend` answers the first ``connect_tcp`` to the handed
over address and port with the open stream, whose ``start_tls`` is a no-op (the
handshake is done); every other connect, a redirect hop's included, goes to httpcore's
own trio backend as before.  Errors are mapped to httpcore's exceptions exactly as its
trio backend maps them, so httpx classifies a failure on a handed-over connection as
it would on its own.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import trio

from probe.steps.addresses import parse_ip


@dataclass(frozen=True)
class OpenConnection:
    """A connection the TCP step opened to ``ip:port`` and, when ``server_name`` is
    set, the TLS step completed (verified) with that SNI."""

    ip: str
    port: int
    stream: trio.abc.Stream
    server_name: str | None

    def serves(self, ip: str | None, port: int, server_name: str | None) -> bool:
        """Whether a request to ``ip:port`` under TLS name ``server_name`` (``None``:
        plain HTTP) may go over this connection."""
        return (
            ip is not None and port == self.port and _same_ip(ip, self.ip) and server_name == self.server_name
        )


@contextmanager
def _mapped(timeout: type[Exception], broken: type[Exception]) -> Iterator[None]:
    try:
        yield
    except trio.TooSlowError as exc:
        raise timeout(exc) from exc
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise broken(exc) from exc


def _socket_stream(stream: trio.abc.Stream) -> trio.SocketStream:
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    assert isinstance(stream, trio.SocketStream)
    return stream


class HandedOverStream(httpcore.AsyncNetworkStream):
    """An open trio stream (TCP, or TLS over TCP) in httpcore's terms."""

    def __init__(self, stream: trio.abc.Stream, server_name: str | None) -> None:
        self._stream = stream
        self._server_name = server_name

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError), trio.fail_after(_inf(timeout)):
            data = await self._stream.receive_some(max_bytes)
        return data if isinstance(data, bytes) else bytes(data)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError), trio.fail_after(_inf(timeout)):
            await self._stream.send_all(buffer)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        if not isinstance(self._stream, trio.SSLStream) or server_hostname != self._server_name:
            # Never reached by the probe (the handover is keyed by address, port and
            # name); refusing is safer than sending a request under the wrong name.
            raise httpcore.ConnectError(
                f"handed-over stream is for {self._server_name!r}, not {server_hostname!r}"
            )
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._stream._ssl_object if isinstance(self._stream, trio.SSLStream) else None
        if info == "client_addr":
            return _socket_stream(self._stream).socket.getsockname()
        if info == "server_addr":
            return _socket_stream(self._stream).socket.getpeername()
        if info == "socket":
            return _socket_stream(self._stream).socket
        if info == "is_readable":
            return _socket_stream(self._stream).socket.is_readable()
        return None


def _inf(timeout: float | None) -> float:
    return float("inf") if timeout is None else timeout


def _same_ip(a: str, b: str) -> bool:
    first, second = parse_ip(a.strip("[]")), parse_ip(b.strip("[]"))
    return first is not None and first == second


class HandoverBackend(httpcore.AsyncNetworkBackend):
    """httpcore's trio backend, except that one connect gets an already open stream."""

    def __init__(self) -> None:
        self._inner = httpcore.TrioBackend()
        self._waiting: tuple[str, int, HandedOverStream] | None = None
        self.handed_over = 0

    def hand_over(self, connection: OpenConnection) -> None:
        """The next connect to the connection's address and port gets its stream."""
        self._waiting = (
            connection.ip,
            connection.port,
            HandedOverStream(connection.stream, connection.server_name),
        )

    def take_back(self) -> trio.abc.Stream | None:
        """The stream, if no connect took it (the caller then closes it)."""
        waiting, self._waiting = self._waiting, None
        return waiting[2]._stream if waiting is not None else None

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        waiting = self._waiting
        if waiting is not None and waiting[1] == port and _same_ip(waiting[0], host):
            self._waiting = None
            self.handed_over += 1
            return waiting[2]
        return await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)

"""Lab web sites: real HTTP(S) servers on loopback that censor some clients on cue.

Why our own tiny server rather than nginx or Hypercorn: the behaviours we measure
happen below HTTP (a reset once the client speaks, a reset triggered by the name in the
TLS ClientHello, silence) or break HTTP on purpose (random bytes, a body that never
ends, one byte a second).  A production server cannot be told to do that; a small
server on raw trio sockets can.  The server reads a request head (at most 64 KiB), answers,
and closes: no keep-alive, no pipelining, no request bodies.

Layout of a lab: every site listens on its own loopback address, all on one port (see
:func:`allocate_network`), as sites on the Internet differ by address and share 443.
What a site does is its :class:`SitePolicy`: a :class:`Behaviour` applied to
*censored* clients (by source address) while everyone else gets the honest site.  The
probe connects from 127.0.0.1 (the kernel's source for any 127/8 destination); the
control helper binds ``--source-address 127.0.0.99`` and sees the site as it really is,
as a control vantage outside the censoring network would.  A policy is mutable and
read once per connection, so a scenario can switch a block on and off while the
servers run.

Nothing here ever binds or connects outside 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import html
import ipaddress
import random
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

import trio

from probe.lab.certs import LabCA
from probe.lab.http_wire import (
    MAX_REQUEST_HEAD,
    compressed_zeros,
    garbage,
    http_response,
    parse_client_hello_sni,
    parse_request,
    peek_server_name,
    read_request_head,
    reset_connection,
    response_head,
)
from probe.lab.runner import LabThread
from probe.lab.site_behaviours import (
    BLOCKPAGE_HTML,
    BLOCKPAGE_MARKER,
    BLOCKPAGE_TITLE,
    COOKIE_CHECK_VALUE,
    ELCAT_PHRASE,
    HOMELINE_BLOCKPAGE_URL,
    PROBE_SOURCE,
    Action,
    Behaviour,
    Pages,
    SitePolicy,
    honest_page,
    honest_title,
    page_for,
)

#: What a client can make a lab connection raise; each ends that connection only.
_CONNECTION_ERRORS = (OSError, ssl.SSLError, trio.BrokenResourceError, trio.ClosedResourceError, EOFError)


# --- addresses ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabNetwork:
    """A /24 of loopback addresses and one TCP port for every site in it."""

    prefix: str  # "127.X.Y"
    port: int

    def ip(self, host: int) -> str:
        """The address ``127.X.Y.host`` (``host`` from 1 to 254)."""
        if not 1 <= host <= 254:
            raise ValueError(f"host number {host} is not in 1..254")
        return f"{self.prefix}.{host}"


def allocate_network(rng: random.Random | None = None, attempts: int = 50) -> LabNetwork:
    """A random ``127.X.Y.0/24`` (X from 1 to 254, so never 127.0.0.1's block) and a port.

    Concurrent test runs each pick their own /24 (65,024 to choose from), so their
    sites cannot collide; the port is one the kernel found free on ``127.X.Y.1``
    (binding port 0), reused for every site of the block.  A block whose first
    address is taken is skipped.
    """
    rng = rng or random.Random()
    for _ in range(attempts):
        prefix = f"127.{rng.randrange(1, 255)}.{rng.randrange(0, 256)}"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe_socket:
            try:
                probe_socket.bind((f"{prefix}.1", 0))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            return LabNetwork(prefix=prefix, port=probe_socket.getsockname()[1])
    raise RuntimeError("no free loopback block found")


# --- servers -----------------------------------------------------------------------------


async def _listen(ip: str, port: int, backlog: int = 128) -> trio.socket.SocketType:
    if not ipaddress.ip_address(ip).is_loopback:
        raise ValueError(f"lab servers bind loopback addresses only, not {ip}")
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    listener = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await listener.bind((ip, port))
        listener.listen(backlog)
    except BaseException:
        listener.close()
        raise
    return listener


async def serve_site(
    ip: str,
    port: int,
    *,
    tls: ssl.SSLContext | None,
    pages: Pages | None = None,
    policy: SitePolicy,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a site on ``ip:port`` (port 0: any) until cancelled; report ``(ip, port)``.

    Honest answers are ``pages`` per Host (default :func:`honest_page` for any host),
    over TLS when ``tls`` is a server context.  Censored clients get ``policy``'s
    behaviour.  A misbehaving client never stops the server.
    """
    listener = await _listen(ip, port)
    with listener:
        async with trio.open_nursery() as nursery:
            task_status.started((ip, listener.getsockname()[1]))
            while True:
                sock, address = await listener.accept()
                policy.accepted += 1
                behaviour = policy.behaviour_for(address[0])
                nursery.start_soon(_serve_connection, sock, tls, pages, behaviour)


async def serve_blockpage(
    ip: str,
    port: int,
    *,
    tls_context: ssl.SSLContext | None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The server a lying resolver points to: the blockpage for any Host, to anyone.

    Give it a ``tls_context`` from a CA the probe does not trust (a second
    :class:`~probe.lab.certs.LabCA`), as a real ISP blockpage server has: HTTPS to it
    then fails validation with ``ssl_unknown_authority``.
    """
    policy = SitePolicy(Behaviour.blockpage_200(), censored_sources=None)
    await serve_site(ip, port, tls=tls_context, policy=policy, task_status=task_status)


async def serve_syn_drop(
    ip: str,
    port: int,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """An address where TCP connects time out, as behind a firewall that drops SYNs.

    On loopback a blackhole route fails at once and netfilter needs root; instead we
    listen with a backlog of 0, fill the one queue slot with our own connection and
    never accept: Linux then drops further SYNs and the client's connect hangs.
    """
    listener = await _listen(ip, port, backlog=0)
    with listener:
        bound = listener.getsockname()[1]
        filler = trio.socket.socket(listener.family, socket.SOCK_STREAM)
        with filler:
            await filler.connect((ip, bound))
            task_status.started((ip, bound))
            await trio.sleep_forever()


async def _serve_connection(
    sock: trio.socket.SocketType,
    tls: ssl.SSLContext | None,
    pages: Pages | None,
    behaviour: Behaviour,
) -> None:
    """One connection, start to close; every network error just ends it."""
    with sock, contextlib.suppress(*_CONNECTION_ERRORS):
        await _answer(sock, tls, pages, behaviour)


async def _before_http(
    sock: trio.socket.SocketType, tls: ssl.SSLContext | None, behaviour: Behaviour
) -> bool:
    """Play the behaviours that act below HTTP (resets, silence, noise for a TLS
    client); ``True`` when the connection is done with."""
    action = behaviour.action
    if action is Action.RESET:
        # Wait (a little) for the client's first bytes and leave them unread, then
        # RST.  Resetting at once would race the client's connect(): it would see the
        # reset sometimes at connect and sometimes at its first read.  This way the
        # connect always succeeds and the first read (TLS or HTTP) is reset.
        with trio.move_on_after(1):
            await sock.recv(1, socket.MSG_PEEK)
        reset_connection(sock)
        return True
    if action is Action.CLOSE:
        # Read what the client sent first: closing with unread data would send a RST.
        # Then the caller's ``with sock`` closes it with a FIN: the client sees an EOF.
        await sock.recv(MAX_REQUEST_HEAD)
        return True
    if action is Action.BLACKHOLE:
        await trio.sleep_forever()
    if action is Action.SNI_RESET and tls is not None:
        server_name = await peek_server_name(sock)
        if server_name is not None and server_name in behaviour.names:
            reset_connection(sock)
            return True
    if action is Action.GARBAGE and tls is not None:
        await sock.recv(MAX_REQUEST_HEAD)  # the ClientHello, answered with noise
        await sock.send(garbage())
        return True
    return False


async def _answer(
    sock: trio.socket.SocketType,
    tls: ssl.SSLContext | None,
    pages: Pages | None,
    behaviour: Behaviour,
) -> None:
    action = behaviour.action
    if await _before_http(sock, tls, behaviour):
        return

    stream: trio.abc.Stream = trio.SocketStream(sock)
    if tls is not None:
        tls_stream = trio.SSLStream(stream, tls, server_side=True, https_compatible=True)
        await tls_stream.do_handshake()
        stream = tls_stream

    head: bytes | None = None
    with trio.move_on_after(30) as scope:  # a client that never finishes its request goes away
        head = await read_request_head(stream)
    if scope.cancelled_caught:
        return
    if head is None:
        await stream.send_all(http_response(431, b"Request header too large\n", content_type="text/plain"))
        return
    method, host = parse_request(head)

    if action is Action.HOST_RESET and host in behaviour.names:
        reset_connection(sock)
        return
    if action is Action.COOKIE_CHECK and COOKIE_CHECK_VALUE.lower().encode() not in head.lower():
        extra = [("Set-Cookie", f"{COOKIE_CHECK_VALUE}; Path=/"), ("Location", "/")]
        await stream.send_all(http_response(302, b"", extra=extra))
        return
    try:
        await _respond(stream, host, method, pages, behaviour)
    finally:
        with contextlib.suppress(*_CONNECTION_ERRORS), trio.move_on_after(1):
            await stream.aclose()  # close_notify for TLS, so the client sees a clean end


async def _respond(
    stream: trio.abc.Stream, host: str, method: str, pages: Pages | None, behaviour: Behaviour
) -> None:
    """Answer one request (the connection is already past TLS and the request head)."""
    action = behaviour.action
    with_body = method != "HEAD"
    if action is Action.GARBAGE:
        await stream.send_all(garbage())
        return
    if action is Action.BLOCKPAGE_200:
        await stream.send_all(http_response(200, BLOCKPAGE_HTML, with_body=with_body))
        return
    if action is Action.BLOCKPAGE_REDIRECT:
        link = html.escape(behaviour.location).encode()
        body = b'<html><body><a href="' + link + b'">Moved</a></body></html>'
        extra = [("Location", behaviour.location)]
        await stream.send_all(http_response(302, body, extra=extra, with_body=with_body))
        return
    if action is Action.BOMB:
        # Built in a thread (a GiB takes a second), so the lab's other sites keep answering.
        body = await trio.to_thread.run_sync(compressed_zeros, behaviour.encoding, behaviour.size)
        extra = [("Content-Encoding", behaviour.encoding)]
        await stream.send_all(http_response(200, body, extra=extra, with_body=with_body))
        return
    if action is Action.MANY_HEADERS:
        page = page_for(pages, host) or b""
        # Short lines ("a: b"), so that 10,001 of them stay under the 100 KiB head a
        # client accepts: the test is of the count, not of the size.
        extra = [("a", "b")] * behaviour.size
        await stream.send_all(http_response(200, page, extra=extra, with_body=with_body))
        return
    if action is Action.ENDLESS_HEADERS:
        await stream.send_all(b"HTTP/1.1 200 OK\r\n")
        line = b"X-Endless: " + b"e" * 100 + b"\r\n"
        while True:
            await stream.send_all(line * 64)
    if action is Action.ENDLESS_BODY:
        await stream.send_all(response_head(200, None))
        chunk = b"<p>" + b"endless " * 2047 + b"</p>\n"
        while True:
            await stream.send_all(chunk)
    if action is Action.SLOW:
        await trio.sleep(behaviour.seconds)

    found = page_for(pages, host)
    if found is None:
        not_found = b"<html><title>Not Found</title></html>"
        await stream.send_all(http_response(404, not_found, with_body=with_body))
        return
    page = found
    if action is Action.DRIP:
        await stream.send_all(response_head(200, len(page)))
        for index in range(len(page)):
            await stream.send_all(page[index : index + 1])
            await trio.sleep(behaviour.seconds)
        return
    await stream.send_all(http_response(200, page, with_body=with_body))


@functools.lru_cache(maxsize=8)
# --- a lab of sites on a background thread ----------------------------------------------


@dataclass(frozen=True, slots=True)
class LabSite:
    """A running lab site: where it listens and the policy to change while it runs."""

    ip: str
    port: int
    policy: SitePolicy
    https: bool

    def url(self, hostname: str, path: str = "/") -> str:
        scheme = "https" if self.https else "http"
        return f"{scheme}://{hostname}:{self.port}{path}"


class WebLab:
    """Sites on one :class:`LabNetwork`, each on its own address, served by a
    :class:`~probe.lab.runner.LabThread`, with certificates from one trusted
    :class:`~probe.lab.certs.LabCA` (give the probe ``ca.ca_pem_path``).

    Why a helper: tests, benchmarks and scenarios all need "a site that does X at a
    fresh address"; this is that, in one call.  Server contexts are made once per set
    of certificate names.
    """

    def __init__(
        self, thread: LabThread, *, network: LabNetwork | None = None, ca: LabCA | None = None
    ) -> None:
        self.thread = thread
        self.network = network or allocate_network()
        self.ca = ca or LabCA()
        self._next_host = 1
        self._contexts: dict[tuple[str, ...], ssl.SSLContext] = {}

    def next_ip(self) -> str:
        """A fresh address of the network, never handed out before."""
        ip = self.network.ip(self._next_host)
        self._next_host += 1
        return ip

    def server_context(self, names: Iterable[str], ca: LabCA | None = None) -> ssl.SSLContext:
        key = tuple(names)
        if ca is not None:
            return ca.server_context(key)
        if key not in self._contexts:
            self._contexts[key] = self.ca.server_context(key)
        return self._contexts[key]

    def site(
        self,
        behaviour: Behaviour | None = None,
        *,
        https: bool = True,
        cert_names: Iterable[str] = ("example.kg",),
        censored_sources: Iterable[str] | None = (PROBE_SOURCE,),
        pages: Pages | None = None,
    ) -> LabSite:
        """Start a site at a fresh address; over TLS with a certificate for ``cert_names``."""
        policy = SitePolicy(behaviour, censored_sources=censored_sources)
        tls = self.server_context(cert_names) if https else None
        server = functools.partial(serve_site, tls=tls, pages=pages, policy=policy)
        ip, port = self.thread.start(server, self.next_ip(), self.network.port)
        return LabSite(ip=ip, port=port, policy=policy, https=https)

    def blockpage(self, *, https: bool = True, untrusted_ca: LabCA | None = None) -> LabSite:
        """Start a blockpage server at a fresh address (see :func:`serve_blockpage`);
        over TLS its certificate comes from ``untrusted_ca`` (default: a new CA)."""
        tls = None
        if https:
            rogue = untrusted_ca or LabCA("Lab ISP Blockpage CA")
            tls = rogue.server_context(["blockpage.lab"])
        # serve_blockpage's server, with the policy kept so that it can be changed.
        policy = SitePolicy(Behaviour.blockpage_200(), censored_sources=None)
        server = functools.partial(serve_site, tls=tls, policy=policy)
        ip, port = self.thread.start(server, self.next_ip(), self.network.port)
        return LabSite(ip=ip, port=port, policy=policy, https=https)

    def syn_drop(self) -> LabSite:
        """Start an address where TCP connects time out (see :func:`serve_syn_drop`)."""
        ip, port = self.thread.start(serve_syn_drop, self.next_ip(), self.network.port)
        return LabSite(ip=ip, port=port, policy=SitePolicy(), https=False)


__all__ = [
    "BLOCKPAGE_HTML",
    "BLOCKPAGE_MARKER",
    "BLOCKPAGE_TITLE",
    "COOKIE_CHECK_VALUE",
    "ELCAT_PHRASE",
    "HOMELINE_BLOCKPAGE_URL",
    "MAX_REQUEST_HEAD",
    "PROBE_SOURCE",
    "Action",
    "Behaviour",
    "LabNetwork",
    "LabSite",
    "Pages",
    "SitePolicy",
    "WebLab",
    "allocate_network",
    "compressed_zeros",
    "honest_page",
    "honest_title",
    "parse_client_hello_sni",
    "serve_blockpage",
    "serve_site",
    "serve_syn_drop",
]

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
import os
import random
import socket
import ssl
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import trio

from probe.lab.certs import LabCA
from probe.lab.runner import LabThread

#: The cookie a :attr:`Action.COOKIE_CHECK` site sets and wants back.
COOKIE_CHECK_VALUE = "kuzot_check=passed"

#: The largest request head the lab reads; more is answered with 431 and a close.
MAX_REQUEST_HEAD = 64 * 1024

#: Where the probe's connections come from by default (see the module docstring).
PROBE_SOURCE = "127.0.0.1"

#: The Homeline blockpage, as OONI's fingerprint ``ooni.kg_0`` knows it.
HOMELINE_BLOCKPAGE_URL = "http://homeline.kg/access/blockpage.html"

#: The marker every lab blockpage carries, so a test can tell it from a real page.
BLOCKPAGE_MARKER = "KUZOT-LAB-BLOCKPAGE"

#: ElCat's blockpage sentence (Censored Planet ``c_isp_kg_elcat``), verbatim.
ELCAT_PHRASE = '<p class="error">Access to the requested website has been blocked by judicial decision!</p>'

BLOCKPAGE_TITLE = "Access denied"

BLOCKPAGE_HTML = f"""<!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="utf-8">
<title>{BLOCKPAGE_TITLE}</title>
<!-- {BLOCKPAGE_MARKER} -->
</head>
<body>
<h1>Доступ ограничен</h1>
{ELCAT_PHRASE}
<p>Ресурс заблокирован по решению уполномоченного органа.</p>
</body>
</html>
""".encode()


# --- what a site does ---------------------------------------------------------------


class Action(StrEnum):
    """What a site does to a censored client."""

    HONEST = "honest"  # the real site
    RESET = "reset"  # accept, then RST once the client has sent, before any answer
    CLOSE = "close"  # read the client's first bytes, then FIN without a byte (an EOF)
    BLACKHOLE = "blackhole"  # accept and stay silent
    SNI_RESET = "sni_reset"  # RST when the ClientHello's SNI is one of ``names``
    HOST_RESET = "host_reset"  # RST when the request's Host is one of ``names``
    BLOCKPAGE_200 = "blockpage_200"  # the ElCat-style blockpage, status 200
    BLOCKPAGE_REDIRECT = "blockpage_redirect"  # 302 to ``location`` (Homeline-style)
    ENDLESS_BODY = "endless_body"  # a 200 whose body never ends
    DRIP = "drip"  # a 200 whose body comes one byte per ``seconds``
    GARBAGE = "garbage"  # random bytes instead of HTTP (or TLS)
    SLOW = "slow"  # the honest answer after ``seconds``
    BOMB = "bomb"  # a 200 of ``size`` zero bytes compressed with ``encoding`` (e.g. "gzip, gzip")
    MANY_HEADERS = "many_headers"  # a 200 with ``size`` extra header lines
    ENDLESS_HEADERS = "endless_headers"  # a status line, then header lines that never end
    COOKIE_CHECK = "cookie_check"  # 302 to the same URL with a cookie, the page once it comes back


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One action with its parameters; immutable, so swapping it is atomic."""

    action: Action = Action.HONEST
    names: frozenset[str] = frozenset()
    seconds: float = 0.0
    location: str = HOMELINE_BLOCKPAGE_URL
    encoding: str = ""
    size: int = 0

    @classmethod
    def honest(cls) -> Behaviour:
        return cls(Action.HONEST)

    @classmethod
    def reset(cls) -> Behaviour:
        return cls(Action.RESET)

    @classmethod
    def close(cls) -> Behaviour:
        return cls(Action.CLOSE)

    @classmethod
    def blackhole(cls) -> Behaviour:
        return cls(Action.BLACKHOLE)

    @classmethod
    def sni_reset(cls, *names: str) -> Behaviour:
        return cls(Action.SNI_RESET, names=_names(names))

    @classmethod
    def host_reset(cls, *names: str) -> Behaviour:
        return cls(Action.HOST_RESET, names=_names(names))

    @classmethod
    def blockpage_200(cls) -> Behaviour:
        return cls(Action.BLOCKPAGE_200)

    @classmethod
    def blockpage_redirect(cls, location: str = HOMELINE_BLOCKPAGE_URL) -> Behaviour:
        return cls(Action.BLOCKPAGE_REDIRECT, location=location)

    @classmethod
    def endless_body(cls) -> Behaviour:
        return cls(Action.ENDLESS_BODY)

    @classmethod
    def drip(cls, seconds: float = 1.0) -> Behaviour:
        return cls(Action.DRIP, seconds=seconds)

    @classmethod
    def garbage(cls) -> Behaviour:
        return cls(Action.GARBAGE)

    @classmethod
    def slow(cls, seconds: float) -> Behaviour:
        return cls(Action.SLOW, seconds=seconds)

    @classmethod
    def bomb(cls, encoding: str = "gzip, gzip", decoded_bytes: int = 1 << 30) -> Behaviour:
        """A decompression bomb: ``decoded_bytes`` of zeros under the codings of
        ``encoding`` (each ``gzip`` or ``deflate``, the first applied first).  One GiB as
        ``gzip, gzip`` is about 2 KB on the wire."""
        return cls(Action.BOMB, encoding=encoding, size=decoded_bytes)

    @classmethod
    def many_headers(cls, count: int = 10_001) -> Behaviour:
        return cls(Action.MANY_HEADERS, size=count)

    @classmethod
    def endless_headers(cls) -> Behaviour:
        return cls(Action.ENDLESS_HEADERS)

    @classmethod
    def cookie_check(cls) -> Behaviour:
        """An anti-bot check many sites run: no cookie, a redirect that sets one."""
        return cls(Action.COOKIE_CHECK)


def _names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(name.strip().rstrip(".").lower() for name in names)


class SitePolicy:
    """What a site does to whom; change ``behaviour`` or ``censored_sources`` at any time.

    ``censored_sources`` is the set of client addresses that get ``behaviour``
    (default: the probe's 127.0.0.1); ``None`` means every client, for a site that is
    down for everyone.  Each is one attribute holding an immutable value, so an
    assignment from another thread is seen whole by the next connection.
    """

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        *,
        censored_sources: Iterable[str] | None = (PROBE_SOURCE,),
    ) -> None:
        self.behaviour = behaviour or Behaviour.honest()
        self.censored_sources = censored_sources
        #: Connections the site has accepted (tests count the probe's connections).
        self.accepted = 0

    @property
    def censored_sources(self) -> frozenset[str] | None:
        return self._censored_sources

    @censored_sources.setter
    def censored_sources(self, sources: Iterable[str] | None) -> None:
        self._censored_sources = (
            None if sources is None else frozenset(str(ipaddress.ip_address(s)) for s in sources)
        )

    def behaviour_for(self, client_ip: str) -> Behaviour:
        """The behaviour a client at ``client_ip`` gets on its next connection."""
        behaviour, sources = self.behaviour, self._censored_sources
        if sources is None or client_ip in sources:
            return behaviour
        return Behaviour.honest()


# --- pages ------------------------------------------------------------------------------

#: Host -> body, or a function of the host giving the body (``None``: 404).
Pages = Mapping[str, bytes] | Callable[[str], bytes | None]


def honest_title(host: str) -> str:
    """The ``<title>`` of :func:`honest_page` for ``host``."""
    return f"{host} — Latest news from Kyrgyzstan"


def honest_page(host: str) -> bytes:
    """A realistic page of a few KB for ``host``: its own title and text, so that a
    page of one site never matches another's by length or title."""
    name = html.escape(host)
    stories = "\n".join(
        f"<article><h2>Story {n} on {name}</h2><p>"
        + " ".join(f"Paragraph {n}.{k} of the report by {name} on the day's events." for k in range(6))
        + "</p></article>"
        for n in range(1, 9)
    )
    return (
        '<!DOCTYPE html>\n<html lang="ky">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(honest_title(host))}</title>\n"
        f'<link rel="canonical" href="https://{name}/">\n</head>\n<body>\n'
        f"<header><h1>{name}</h1><nav>News | Politics | Economy | Society</nav></header>\n"
        f"<main>\n{stories}\n</main>\n<footer>&copy; {name}</footer>\n</body>\n</html>\n"
    ).encode()


def _page_for(pages: Pages | None, host: str) -> bytes | None:
    if pages is None:
        return honest_page(host)
    if callable(pages):
        return pages(host)
    return pages.get(host)


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


async def _answer(
    sock: trio.socket.SocketType,
    tls: ssl.SSLContext | None,
    pages: Pages | None,
    behaviour: Behaviour,
) -> None:
    action = behaviour.action
    if action is Action.RESET:
        # Wait (a little) for the client's first bytes and leave them unread, then
        # RST.  Resetting at once would race the client's connect(): it would see the
        # reset sometimes at connect and sometimes at its first read.  This way the
        # connect always succeeds and the first read (TLS or HTTP) is reset.
        with trio.move_on_after(1):
            await sock.recv(1, socket.MSG_PEEK)
        _reset(sock)
        return
    if action is Action.CLOSE:
        # Read what the client sent first: closing with unread data would send a RST.
        # Then the caller's ``with sock`` closes it with a FIN: the client sees an EOF.
        await sock.recv(MAX_REQUEST_HEAD)
        return
    if action is Action.BLACKHOLE:
        await trio.sleep_forever()
    if action is Action.SNI_RESET and tls is not None:
        server_name = await _peek_server_name(sock)
        if server_name is not None and server_name in behaviour.names:
            _reset(sock)
            return
    if action is Action.GARBAGE and tls is not None:
        await sock.recv(MAX_REQUEST_HEAD)  # the ClientHello, answered with noise
        await sock.send(_garbage())
        return

    stream: trio.abc.Stream = trio.SocketStream(sock)
    if tls is not None:
        tls_stream = trio.SSLStream(stream, tls, server_side=True, https_compatible=True)
        await tls_stream.do_handshake()
        stream = tls_stream

    head: bytes | None = None
    with trio.move_on_after(30) as scope:  # a client that never finishes its request goes away
        head = await _read_head(stream)
    if scope.cancelled_caught:
        return
    if head is None:
        await stream.send_all(_response(431, b"Request header too large\n", content_type="text/plain"))
        return
    method, host = _parse_request(head)

    if action is Action.HOST_RESET and host in behaviour.names:
        _reset(sock)
        return
    if action is Action.COOKIE_CHECK and COOKIE_CHECK_VALUE.lower().encode() not in head.lower():
        extra = [("Set-Cookie", f"{COOKIE_CHECK_VALUE}; Path=/"), ("Location", "/")]
        await stream.send_all(_response(302, b"", extra=extra))
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
        await stream.send_all(_garbage())
        return
    if action is Action.BLOCKPAGE_200:
        await stream.send_all(_response(200, BLOCKPAGE_HTML, with_body=with_body))
        return
    if action is Action.BLOCKPAGE_REDIRECT:
        link = html.escape(behaviour.location).encode()
        body = b'<html><body><a href="' + link + b'">Moved</a></body></html>'
        extra = [("Location", behaviour.location)]
        await stream.send_all(_response(302, body, extra=extra, with_body=with_body))
        return
    if action is Action.BOMB:
        # Built in a thread (a GiB takes a second), so the lab's other sites keep answering.
        body = await trio.to_thread.run_sync(compressed_zeros, behaviour.encoding, behaviour.size)
        extra = [("Content-Encoding", behaviour.encoding)]
        await stream.send_all(_response(200, body, extra=extra, with_body=with_body))
        return
    if action is Action.MANY_HEADERS:
        page = _page_for(pages, host) or b""
        # Short lines ("a: b"), so that 10,001 of them stay under the 100 KiB head a
        # client accepts: the test is of the count, not of the size.
        extra = [("a", "b")] * behaviour.size
        await stream.send_all(_response(200, page, extra=extra, with_body=with_body))
        return
    if action is Action.ENDLESS_HEADERS:
        await stream.send_all(b"HTTP/1.1 200 OK\r\n")
        line = b"X-Endless: " + b"e" * 100 + b"\r\n"
        while True:
            await stream.send_all(line * 64)
    if action is Action.ENDLESS_BODY:
        await stream.send_all(_head(200, None))
        chunk = b"<p>" + b"endless " * 2047 + b"</p>\n"
        while True:
            await stream.send_all(chunk)
    if action is Action.SLOW:
        await trio.sleep(behaviour.seconds)

    found = _page_for(pages, host)
    if found is None:
        await stream.send_all(_response(404, b"<html><title>Not Found</title></html>", with_body=with_body))
        return
    page = found
    if action is Action.DRIP:
        await stream.send_all(_head(200, len(page)))
        for index in range(len(page)):
            await stream.send_all(page[index : index + 1])
            await trio.sleep(behaviour.seconds)
        return
    await stream.send_all(_response(200, page, with_body=with_body))


@functools.lru_cache(maxsize=8)
def compressed_zeros(encoding: str, size: int) -> bytes:
    """``size`` zero bytes under the content codings of ``encoding`` ("gzip, gzip").

    The innermost layer is built without compressing ``size`` bytes: after a full
    flush deflate's output for another block of zeros is always the same bytes, so the
    stream is that block repeated, then an empty final block and the checksum trailer.
    A GiB takes about a second (the checksum), not the quarter of a minute that
    compressing it would.
    """
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    if not codings or any(c not in ("gzip", "x-gzip", "deflate") for c in codings):
        raise ValueError(f"compressed_zeros: only gzip and deflate codings, not {encoding!r}")
    block = bytes(min(size, 1 << 20)) or b"\0"
    blocks, rest = divmod(size, len(block))
    gzip = codings[0] != "deflate"
    coder = zlib.compressobj(9, zlib.DEFLATED, 31 if gzip else 15)
    parts = [coder.compress(b"") + coder.flush(zlib.Z_FULL_FLUSH)]  # the header only
    repeated = coder.compress(block) + coder.flush(zlib.Z_FULL_FLUSH)
    parts.append(repeated * blocks)
    parts.append(coder.compress(bytes(rest)) + coder.flush(zlib.Z_FULL_FLUSH))
    parts.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))  # empty final block
    check = 0 if gzip else 1
    for _ in range(blocks):
        check = zlib.crc32(block, check) if gzip else zlib.adler32(block, check)
    check = zlib.crc32(bytes(rest), check) if gzip else zlib.adler32(bytes(rest), check)
    parts.append(struct.pack("<II", check, size & 0xFFFFFFFF) if gzip else struct.pack(">I", check))
    data = b"".join(parts)
    for coding in codings[1:]:
        data = zlib.compress(data, 9, wbits=15) if coding == "deflate" else _gzip(data)
    return data


def _gzip(data: bytes) -> bytes:
    coder = zlib.compressobj(9, zlib.DEFLATED, 31)
    return coder.compress(data) + coder.flush()


def _reset(sock: trio.socket.SocketType) -> None:
    """Close with SO_LINGER on and 0 s: the kernel sends a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _garbage() -> bytes:
    # Random bytes, then a blank line so that an HTTP parser has a complete "head" to
    # reject (rather than waiting for more): the client sees an invalid response.
    noise = bytes(random.Random(os.urandom(8)).randrange(0x80, 0x100) for _ in range(512))
    return noise + b"\r\n\r\n"


async def _read_head(stream: trio.abc.Stream) -> bytes | None:
    """The request head up to its blank line; ``None`` when it exceeds the limit.
    An EOF before the blank line raises EOFError."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_REQUEST_HEAD:
            return None
        chunk = await stream.receive_some(16384)
        if not chunk:
            raise EOFError("client closed before its request head ended")
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0]


def _parse_request(head: bytes) -> tuple[str, str]:
    """Method and Host (lower case, no port); an unreadable head gives ``("GET", "")``."""
    lines = head.decode("latin-1").split("\r\n")
    method = lines[0].split(" ", 1)[0].upper() if lines and lines[0] else "GET"
    host = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "host":
            host = value.strip().lower()
            break
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return method, host.rstrip(".")


def _head(
    status: int,
    length: int | None,
    content_type: str = "text/html; charset=utf-8",
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    """A response head; without ``length`` the body runs until the connection closes."""
    reasons = {200: "OK", 302: "Found", 404: "Not Found", 431: "Request Header Fields Too Large"}
    lines = [
        f"HTTP/1.1 {status} {reasons.get(status, 'Unknown')}",
        "Server: nginx",
        f"Content-Type: {content_type}",
        "Connection: close",
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.extend(f"{name}: {value}" for name, value in extra or [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _response(
    status: int,
    body: bytes,
    *,
    content_type: str = "text/html; charset=utf-8",
    extra: list[tuple[str, str]] | None = None,
    with_body: bool = True,
) -> bytes:
    return _head(status, len(body), content_type, extra) + (body if with_body else b"")


# --- reading the SNI of a ClientHello without consuming it ------------------------------


async def _peek_server_name(sock: trio.socket.SocketType, wait: float = 2.0) -> str | None:
    """The SNI of the ClientHello waiting on ``sock``, read with MSG_PEEK so that the
    TLS handshake still sees every byte, as a middlebox inspecting the first packet.

    ``None`` when no parsable ClientHello (or no SNI) arrives within ``wait`` seconds.
    """
    with trio.move_on_after(wait):
        while True:
            data = await sock.recv(16384 + 5, socket.MSG_PEEK)
            if not data:
                return None
            if len(data) >= 5 and data[0] == 0x16:
                record_length = struct.unpack("!H", data[3:5])[0]
                if len(data) >= 5 + record_length:
                    return parse_client_hello_sni(data)
            elif data:
                return None  # not a TLS handshake record
            # The record is not complete yet: MSG_PEEK returns at once with the same
            # bytes, so wait a little before peeking again instead of spinning.
            await trio.sleep(0.005)
    return None


def parse_client_hello_sni(data: bytes) -> str | None:
    """The ``server_name`` in a TLS record holding a ClientHello (RFC 8446 4.1.2,
    RFC 6066 3), lower case; ``None`` when absent or malformed."""
    try:
        if data[0] != 0x16 or data[5] != 0x01:
            return None
        pos = 5 + 4 + 2 + 32  # handshake header, legacy_version, random
        pos += 1 + data[pos]  # legacy_session_id
        pos += 2 + struct.unpack("!H", data[pos : pos + 2])[0]  # cipher_suites
        pos += 1 + data[pos]  # legacy_compression_methods
        end = pos + 2 + struct.unpack("!H", data[pos : pos + 2])[0]
        pos += 2
        while pos + 4 <= end:
            ext_type, ext_length = struct.unpack("!HH", data[pos : pos + 4])
            pos += 4
            if ext_type == 0:  # server_name: list length, then (type, length, name)...
                inner = pos + 2
                while inner + 3 <= pos + ext_length:
                    name_type = data[inner]
                    name_length = struct.unpack("!H", data[inner + 1 : inner + 3])[0]
                    if name_type == 0:
                        name = data[inner + 3 : inner + 3 + name_length]
                        return name.decode("ascii").rstrip(".").lower()
                    inner += 3 + name_length
                return None
            pos += ext_length
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return None


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

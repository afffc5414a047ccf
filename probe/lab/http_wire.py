"""The lab servers' bytes on the wire: request heads read and parsed, response heads
written, compressed and garbage bodies, resets, and the SNI of a ClientHello peeked
without consuming it.  Nothing here decides what a site does (that is
:mod:`probe.lab.site_behaviours`).
"""

from __future__ import annotations

import os
import random
import socket
import struct
import zlib

import trio

#: The largest request head the lab reads; more is answered with 431 and a close.
MAX_REQUEST_HEAD = 64 * 1024

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


def reset_connection(sock: trio.socket.SocketType) -> None:
    """Close with SO_LINGER on and 0 s: the kernel sends a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def garbage() -> bytes:
    # Random bytes, then a blank line so that an HTTP parser has a complete "head" to
    # reject (rather than waiting for more): the client sees an invalid response.
    noise = bytes(random.Random(os.urandom(8)).randrange(0x80, 0x100) for _ in range(512))
    return noise + b"\r\n\r\n"


async def read_request_head(stream: trio.abc.Stream) -> bytes | None:
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


def parse_request(head: bytes) -> tuple[str, str]:
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


def response_head(
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


def http_response(
    status: int,
    body: bytes,
    *,
    content_type: str = "text/html; charset=utf-8",
    extra: list[tuple[str, str]] | None = None,
    with_body: bool = True,
) -> bytes:
    return response_head(status, len(body), content_type, extra) + (body if with_body else b"")


# --- reading the SNI of a ClientHello without consuming it ------------------------------


async def peek_server_name(sock: trio.socket.SocketType, wait: float = 2.0) -> str | None:
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

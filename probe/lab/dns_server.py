"""A lab resolver: a real DNS server on loopback that answers honestly or lies on cue.

Why our own server rather than dnsmasq: the lies we measure are per-packet behaviours
(an injector racing the real resolver, a reply with the wrong id, random bytes) that a
production resolver cannot be told to produce.  As dnspython's test name server does,
the server is one loop and the behaviour is data: a :class:`Behaviour` per name,
looked up for every query, so a test or scenario can change it while the server runs.

It speaks UDP and, on the same port, TCP (two-byte length prefix, RFC 1035 4.2.2), so
that a client can fall back to TCP after a truncated UDP reply.  Malformed queries are
ignored; nothing a client sends can stop the server.  Bind only 127.0.0.0/8 or ``::1``.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import trio

#: TTL of every record the lab resolver gives out.
TTL = 300

T = TypeVar("T")


def normalise_name(name: str) -> str:
    """The form names are compared in: lower case, no trailing dot."""
    return name.strip().rstrip(".").lower()


class LabZone(Mapping[str, tuple[str, ...]]):
    """Hostname -> addresses (IPv4 and IPv6 mixed): what an honest resolver answers.

    Names are case-insensitive and a trailing dot is ignored.  A name may also be a
    wildcard ``"*.example.kg"``, which matches any name below ``example.kg`` that has
    no entry of its own.  Safe to change with :meth:`set` while a server reads it.
    """

    def __init__(self, entries: Mapping[str, Iterable[str]] | None = None) -> None:
        self._entries: dict[str, tuple[str, ...]] = {}
        for name, addresses in (entries or {}).items():
            self.set(name, addresses)

    def set(self, name: str, addresses: Iterable[str]) -> None:
        checked = tuple(str(ipaddress.ip_address(a)) for a in addresses)
        self._entries[normalise_name(name)] = checked

    def remove(self, name: str) -> None:
        self._entries.pop(normalise_name(name), None)

    def lookup(self, name: str) -> tuple[str, ...] | None:
        """The addresses for ``name``, or ``None`` when the name does not exist."""
        return _lookup(self._entries, normalise_name(name))

    def __getitem__(self, name: str) -> tuple[str, ...]:
        found = self.lookup(name)
        if found is None:
            raise KeyError(name)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


def _lookup(table: Mapping[str, T], name: str) -> T | None:
    """Exact match first, then the closest enclosing wildcard (``*.parent``)."""
    if name in table:
        return table[name]
    labels = name.split(".")
    for i in range(1, len(labels)):
        wildcard = "*." + ".".join(labels[i:])
        if wildcard in table:
            return table[wildcard]
    return None


class Kind(StrEnum):
    """What the resolver does with a query for a name."""

    HONEST = "honest"  # answer from the zone; NXDOMAIN for names it lacks
    ADDRESS = "address"  # answer with the given addresses (a blockpage, say)
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    NO_ANSWER = "no_answer"  # NOERROR with an empty answer section
    SILENCE = "silence"  # drop the query
    INJECT = "inject"  # forged reply at once, the honest one after ``delay``
    GARBAGE = "garbage"  # random bytes behind the query's id
    TRUNCATED = "truncated"  # UDP: empty reply with TC set; TCP: honest
    WRONG_ID = "wrong_id"  # the honest reply with another message id
    FLOOD = "flood"  # the honest reply, then FLOOD_REPLIES copies of it (UDP)


#: How many copies of its reply a flooding resolver sends after the first.
FLOOD_REPLIES = 1000


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One way of answering.  Build with the class methods or :meth:`parse`.

    ``delay`` holds back the reply that many seconds (a slow resolver, or a slow lie);
    for :attr:`Kind.INJECT` the forged reply leaves at once and only the true one waits,
    as when an on-path injector races the real resolver.
    """

    kind: Kind
    addresses: tuple[str, ...] = ()
    delay: float = 0.0

    def __post_init__(self) -> None:
        for a in self.addresses:
            ipaddress.ip_address(a)
        if self.kind in (Kind.ADDRESS, Kind.INJECT) and not self.addresses:
            raise ValueError(f"{self.kind} needs at least one address")
        if self.delay < 0:
            raise ValueError("delay must not be negative")

    @classmethod
    def honest(cls, delay: float = 0.0) -> Behaviour:
        return cls(Kind.HONEST, delay=delay)

    @classmethod
    def address(cls, *ips: str, delay: float = 0.0) -> Behaviour:
        return cls(Kind.ADDRESS, tuple(ips), delay)

    @classmethod
    def nxdomain(cls, delay: float = 0.0) -> Behaviour:
        return cls(Kind.NXDOMAIN, delay=delay)

    @classmethod
    def servfail(cls, delay: float = 0.0) -> Behaviour:
        return cls(Kind.SERVFAIL, delay=delay)

    @classmethod
    def refused(cls, delay: float = 0.0) -> Behaviour:
        return cls(Kind.REFUSED, delay=delay)

    @classmethod
    def no_answer(cls, delay: float = 0.0) -> Behaviour:
        return cls(Kind.NO_ANSWER, delay=delay)

    @classmethod
    def silence(cls) -> Behaviour:
        return cls(Kind.SILENCE)

    @classmethod
    def inject(cls, *ips: str, delay: float = 0.1) -> Behaviour:
        return cls(Kind.INJECT, tuple(ips), delay)

    @classmethod
    def garbage(cls) -> Behaviour:
        return cls(Kind.GARBAGE)

    @classmethod
    def truncated(cls) -> Behaviour:
        return cls(Kind.TRUNCATED)

    @classmethod
    def wrong_id(cls) -> Behaviour:
        return cls(Kind.WRONG_ID)

    @classmethod
    def flood(cls) -> Behaviour:
        return cls(Kind.FLOOD)

    @classmethod
    def parse(cls, spec: str) -> Behaviour:
        """Read the text form used in scenario files: ``"<kind> [ip ...] [delay=SECONDS]"``.

        Examples: ``"honest"``, ``"address 127.66.66.66"``, ``"inject 127.66.66.66
        delay=0.2"``, ``"servfail delay=1"``.  Raises ValueError on anything else.
        """
        words = spec.split()
        if not words:
            raise ValueError("empty DNS behaviour")
        try:
            kind = Kind(words[0].lower())
        except ValueError:
            known = ", ".join(k.value for k in Kind)
            raise ValueError(f"unknown DNS behaviour {words[0]!r} (known: {known})") from None
        ips: list[str] = []
        delay: float | None = None
        for word in words[1:]:
            if word.startswith("delay="):
                delay = float(word.removeprefix("delay="))
            else:
                ips.append(word)
        if delay is None:
            delay = 0.1 if kind is Kind.INJECT else 0.0
        return cls(kind, tuple(ips), delay)

    def __str__(self) -> str:
        parts = [self.kind.value, *self.addresses]
        if self.delay:
            parts.append(f"delay={self.delay:g}")
        return " ".join(parts)


HONEST = Behaviour.honest()


@dataclass(frozen=True, slots=True)
class SeenQuery:
    """A query the lab resolver received, for tests to check what reached it."""

    name: str
    rdtype: str
    transport: str  # "udp" or "tcp"


class LabResolver:
    """A lab resolver whose lies can be changed while it serves.

    ``lies`` maps hostnames (case-insensitive, trailing dot ignored, ``*.parent``
    wildcards allowed) to behaviours; names without an entry are answered honestly.
    The dict passed in is kept, not copied, so a caller that holds it can change it;
    :meth:`set_lie` and :meth:`clear_lie` do the same and are safe from any thread
    (a :class:`~probe.lab.runner.LabThread` runs the server on its own thread).
    """

    def __init__(self, zone: LabZone | Mapping[str, Iterable[str]], lies: dict[str, Behaviour] | None = None):
        self.zone = zone if isinstance(zone, LabZone) else LabZone(zone)
        self.lies: dict[str, Behaviour] = lies if lies is not None else {}
        self.seen: list[SeenQuery] = []
        self.address: tuple[str, int] | None = None
        self._lock = threading.Lock()

    def set_lie(self, name: str, behaviour: Behaviour) -> None:
        with self._lock:
            self.lies[name] = behaviour

    def clear_lie(self, name: str) -> None:
        with self._lock:
            for key in [k for k in self.lies if normalise_name(k) == normalise_name(name)]:
                del self.lies[key]

    def behaviour_for(self, name: str) -> Behaviour:
        with self._lock:
            # list() copies in one C call, so a caller changing the dict on another
            # thread cannot break the iteration below.
            items = list(self.lies.items())
        table = {normalise_name(k): v for k, v in items}
        return _lookup(table, normalise_name(name)) or HONEST

    async def serve(
        self,
        ip: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Bind UDP and TCP on ``ip:port`` (0: any free port, the same for both),
        report ``(ip, port)`` and answer until cancelled."""
        udp, tcp = await _bind_pair(ip, port)
        with udp, tcp:
            bound = udp.getsockname()
            self.address = (bound[0], bound[1])
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve_udp, udp, nursery)
                nursery.start_soon(self._serve_tcp, tcp, nursery)
                task_status.started(self.address)

    # --- UDP ------------------------------------------------------------------------

    async def _serve_udp(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        while True:
            try:
                data, peer = await sock.recvfrom(65535)
            except OSError:
                continue  # e.g. an ICMP error for an earlier reply: not ours to handle
            query = _parse_query(data)
            if query is None:
                continue
            for delay, wire in self._replies(query, "udp"):
                if delay:
                    nursery.start_soon(_send_udp_later, sock, wire, peer, delay)
                else:
                    await _send_udp(sock, wire, peer)

    # --- TCP ------------------------------------------------------------------------

    async def _serve_tcp(self, sock: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        listener = trio.SocketListener(sock)
        while True:
            try:
                stream = await listener.accept()
            except OSError:
                continue
            nursery.start_soon(self._handle_tcp, stream)

    async def _handle_tcp(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                while True:
                    header = await _receive_exactly(stream, 2)
                    if header is None:
                        return
                    data = await _receive_exactly(stream, int.from_bytes(header, "big"))
                    if data is None:
                        return
                    query = _parse_query(data)
                    if query is None:
                        return  # a broken stream cannot be resynchronised: hang up
                    for delay, wire in self._replies(query, "tcp"):
                        await trio.sleep(delay)
                        await stream.send_all(len(wire).to_bytes(2, "big") + wire)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    # --- deciding ---------------------------------------------------------------------

    def _replies(self, query: dns.message.Message, transport: str) -> list[tuple[float, bytes]]:
        """The datagrams (or TCP messages) to send for ``query``, each after a delay."""
        if dns.opcode.from_flags(query.flags) != dns.opcode.QUERY:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.NOTIMP)
            return [(0.0, response.to_wire())]
        if len(query.question) != 1:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.FORMERR)
            return [(0.0, response.to_wire())]
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True)
        self.seen.append(SeenQuery(normalise_name(name), dns.rdatatype.to_text(question.rdtype), transport))
        behaviour = self.behaviour_for(name)
        kind = behaviour.kind
        if kind is Kind.SILENCE:
            return []  # over TCP the connection stays open and nothing comes back
        if kind is Kind.GARBAGE:
            return [(behaviour.delay, query.id.to_bytes(2, "big") + os.urandom(40))]
        if kind is Kind.TRUNCATED and transport == "udp":
            response = _response(query)
            response.flags |= dns.flags.TC
            return [(behaviour.delay, response.to_wire())]
        if kind is Kind.FLOOD and transport == "udp":
            wire = self._honest(query).to_wire()
            return [(behaviour.delay, wire)] * (1 + FLOOD_REPLIES)
        if kind is Kind.INJECT:
            forged = _answer(query, behaviour.addresses)
            return [(0.0, forged.to_wire()), (behaviour.delay, self._honest(query).to_wire())]
        if kind is Kind.ADDRESS:
            response = _answer(query, behaviour.addresses)
        elif kind in _RCODES:
            response = _response(query)
            response.set_rcode(_RCODES[kind])
        elif kind is Kind.NO_ANSWER:
            response = _response(query)
        else:  # honest, wrong_id, truncated over TCP
            response = self._honest(query)
        if kind is Kind.WRONG_ID:
            response.id = (query.id + 1) % 65536
        return [(behaviour.delay, response.to_wire())]

    def _honest(self, query: dns.message.Message) -> dns.message.Message:
        addresses = self.zone.lookup(query.question[0].name.to_text())
        if addresses is None:
            response = _response(query)
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        return _answer(query, addresses)


_RCODES: dict[Kind, dns.rcode.Rcode] = {
    Kind.NXDOMAIN: dns.rcode.NXDOMAIN,
    Kind.SERVFAIL: dns.rcode.SERVFAIL,
    Kind.REFUSED: dns.rcode.REFUSED,
}


def _response(query: dns.message.Message) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA  # we play a recursive resolver
    return response


def _answer(query: dns.message.Message, addresses: Sequence[str]) -> dns.message.Message:
    """A NOERROR reply with those of ``addresses`` that fit the question's type."""
    response = _response(query)
    question = query.question[0]
    wanted = {dns.rdatatype.A: 4, dns.rdatatype.AAAA: 6}
    for rdtype, version in wanted.items():
        if question.rdtype not in (rdtype, dns.rdatatype.ANY):
            continue
        fitting = [a for a in addresses if ipaddress.ip_address(a).version == version]
        if fitting:
            response.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", rdtype, fitting))
    return response


def _parse_query(data: bytes) -> dns.message.Message | None:
    """The query in ``data``, or ``None`` for anything that is not a well-formed query."""
    try:
        message = dns.message.from_wire(data)
    except Exception:  # hostile bytes may raise anything from the parser; drop them
        return None
    if message.flags & dns.flags.QR:
        return None  # a response, not a query
    return message


async def _send_udp(sock: trio.socket.SocketType, wire: bytes, peer: tuple[str, int]) -> None:
    with contextlib.suppress(OSError):  # the client is gone; a resolver does not care
        await sock.sendto(wire, peer)


async def _send_udp_later(
    sock: trio.socket.SocketType, wire: bytes, peer: tuple[str, int], delay: float
) -> None:
    await trio.sleep(delay)
    await _send_udp(sock, wire, peer)


async def _receive_exactly(stream: trio.SocketStream, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


async def _bind_pair(ip: str, port: int) -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    """A UDP and a listening TCP socket on the same ``ip:port``.

    With ``port`` 0 the kernel picks the UDP port, and TCP may find it taken: then try
    another, a few times (collisions are rare on loopback).
    """
    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    for _ in range(20):
        udp = trio.socket.socket(family, socket.SOCK_DGRAM)
        tcp = trio.socket.socket(family, socket.SOCK_STREAM)
        try:
            await udp.bind((ip, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await tcp.bind((ip, udp.getsockname()[1]))
            tcp.listen(128)
            return udp, tcp
        except OSError as exc:
            udp.close()
            tcp.close()
            if port != 0 or exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no free port pair on {ip}")


async def serve_resolver(
    ip: str,
    port: int,
    zone: LabZone | Mapping[str, Iterable[str]],
    lies: dict[str, Behaviour] | None = None,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a :class:`LabResolver` for ``zone`` on ``ip:port``; reports ``(ip, port)``.

    ``lies`` is kept by reference: change it (or keep the resolver and call
    :meth:`LabResolver.set_lie`) to change the behaviour while it runs.
    """
    await LabResolver(zone, lies).serve(ip, port, task_status=task_status)

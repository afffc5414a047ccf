"""The lab resolver, queried from outside with dnspython's own synchronous client.

The server runs on a :class:`LabThread`, so these tests see it exactly as the probe or
the ``kuzot`` command in a subprocess would: a real DNS server on a loopback socket.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from probe.lab.dns_server import Behaviour, Kind, LabResolver, LabZone, serve_resolver
from probe.lab.runner import LabThread

ZONE = {"example.kg": ["127.0.0.10", "::1"], "*.wild.kg": ["127.0.0.11"]}
BLOCKPAGE = "127.66.66.66"


@pytest.fixture
def lab() -> Iterator[LabThread]:
    with LabThread() as thread:
        yield thread


@pytest.fixture
def resolver(lab: LabThread) -> LabResolver:
    server = LabResolver(ZONE)
    lab.start(server.serve, "127.0.53.1", 0)
    return server


def ask(server: LabResolver, name: str, rdtype: str = "A", timeout: float = 2.0) -> dns.message.Message:
    assert server.address is not None
    ip, port = server.address
    return dns.query.udp(dns.message.make_query(name, rdtype), ip, port=port, timeout=timeout)


def replies(server: LabResolver, name: str, listen: float) -> tuple[dns.message.Message, list[bytes]]:
    """Send one query and collect every datagram that comes back within ``listen`` seconds."""
    assert server.address is not None
    query = dns.message.make_query(name, "A")
    received: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(listen)
        sock.sendto(query.to_wire(), server.address)
        try:
            while True:
                received.append(sock.recv(65535))
        except TimeoutError:
            pass
    return query, received


def addresses(message: dns.message.Message) -> list[str]:
    return [rdata.to_text() for rrset in message.answer for rdata in rrset]


def test_honest_a(resolver: LabResolver) -> None:
    """If a zone name is asked for A, then its IPv4 address comes back with TTL 300."""
    reply = ask(resolver, "example.kg")
    assert reply.rcode() == dns.rcode.NOERROR
    assert addresses(reply) == ["127.0.0.10"]
    assert reply.answer[0].ttl == 300


def test_honest_aaaa(resolver: LabResolver) -> None:
    """If a zone name is asked for AAAA, then only its IPv6 address comes back."""
    assert addresses(ask(resolver, "example.kg", "AAAA")) == ["::1"]


def test_names_are_case_insensitive(resolver: LabResolver) -> None:
    """If a name differs from the zone's only in case and a trailing dot, then it is answered."""
    assert addresses(ask(resolver, "EXAMPLE.Kg.")) == ["127.0.0.10"]


def test_unknown_name_is_nxdomain(resolver: LabResolver) -> None:
    """If a name is not in the zone, then an honest resolver says NXDOMAIN."""
    reply = ask(resolver, "missing.kg")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.answer == []


def test_wildcard_zone_entry(resolver: LabResolver) -> None:
    """If the zone has a wildcard, then names below it are answered from it."""
    assert addresses(ask(resolver, "a.b.wild.kg")) == ["127.0.0.11"]
    assert ask(resolver, "wild.kg").rcode() == dns.rcode.NXDOMAIN


def test_address_lie(resolver: LabResolver) -> None:
    """If a name is set to a blockpage address, then that address is the answer."""
    resolver.set_lie("example.kg", Behaviour.address(BLOCKPAGE))
    assert addresses(ask(resolver, "example.kg")) == [BLOCKPAGE]
    assert ask(resolver, "example.kg", "AAAA").answer == []


@pytest.mark.parametrize(
    ("behaviour", "rcode"),
    [
        (Behaviour.nxdomain(), dns.rcode.NXDOMAIN),
        (Behaviour.servfail(), dns.rcode.SERVFAIL),
        (Behaviour.refused(), dns.rcode.REFUSED),
        (Behaviour.no_answer(), dns.rcode.NOERROR),
    ],
)
def test_rcode_lies(resolver: LabResolver, behaviour: Behaviour, rcode: dns.rcode.Rcode) -> None:
    """If a name is set to an error behaviour, then the reply has that rcode and no answer."""
    resolver.set_lie("example.kg", behaviour)
    reply = ask(resolver, "example.kg")
    assert reply.rcode() == rcode
    assert reply.answer == []


def test_silence(resolver: LabResolver) -> None:
    """If a name is set to silence, then the query is dropped and the client times out."""
    resolver.set_lie("example.kg", Behaviour.silence())
    with pytest.raises(dns.exception.Timeout):
        ask(resolver, "example.kg", timeout=0.3)
    assert resolver.seen[-1].name == "example.kg"


def test_inject_sends_forged_then_true(resolver: LabResolver) -> None:
    """If a name is set to inject, then a forged reply comes at once and the true one later."""
    resolver.set_lie("example.kg", Behaviour.inject(BLOCKPAGE, delay=0.1))
    query, received = replies(resolver, "example.kg", listen=0.5)
    assert len(received) == 2
    forged, true = (dns.message.from_wire(data) for data in received)
    assert query.is_response(forged) and query.is_response(true)
    assert addresses(forged) == [BLOCKPAGE]
    assert addresses(true) == ["127.0.0.10"]


def test_garbage(resolver: LabResolver) -> None:
    """If a name is set to garbage, then the reply carries the query's id but does not parse."""
    resolver.set_lie("example.kg", Behaviour.garbage())
    query, received = replies(resolver, "example.kg", listen=0.3)
    assert len(received) == 1
    assert received[0][:2] == query.id.to_bytes(2, "big")
    with pytest.raises(dns.exception.DNSException):
        dns.message.from_wire(received[0])


def test_wrong_id(resolver: LabResolver) -> None:
    """If a name is set to wrong_id, then the honest reply comes back under another id."""
    resolver.set_lie("example.kg", Behaviour.wrong_id())
    query, received = replies(resolver, "example.kg", listen=0.3)
    reply = dns.message.from_wire(received[0])
    assert reply.id != query.id
    assert addresses(reply) == ["127.0.0.10"]


def test_truncated_udp_then_tcp(resolver: LabResolver) -> None:
    """If a name is set to truncated, then UDP gets an empty TC reply and TCP the true answer."""
    resolver.set_lie("example.kg", Behaviour.truncated())
    assert resolver.address is not None
    ip, port = resolver.address
    query = dns.message.make_query("example.kg", "A")
    udp = dns.query.udp(query, ip, port=port, timeout=2)
    assert udp.flags & dns.flags.TC
    assert udp.answer == []
    tcp = dns.query.tcp(query, ip, port=port, timeout=2)
    assert addresses(tcp) == ["127.0.0.10"]
    assert [q.transport for q in resolver.seen] == ["udp", "tcp"]


def test_delay_holds_back_reply(resolver: LabResolver) -> None:
    """If a behaviour has a delay longer than the client waits, then the client times out."""
    resolver.set_lie("example.kg", Behaviour.honest(delay=1.0))
    with pytest.raises(dns.exception.Timeout):
        ask(resolver, "example.kg", timeout=0.2)


def test_lie_changes_while_serving(resolver: LabResolver) -> None:
    """If a lie is set and then cleared while the server runs, then answers follow each change."""
    resolver.set_lie("Example.KG.", Behaviour.nxdomain())
    assert ask(resolver, "example.kg").rcode() == dns.rcode.NXDOMAIN
    resolver.clear_lie("example.kg")
    assert addresses(ask(resolver, "example.kg")) == ["127.0.0.10"]


def test_caller_held_lies_dict(lab: LabThread) -> None:
    """If the caller changes the dict given to serve_resolver, then the server follows it."""
    lies: dict[str, Behaviour] = {}
    ip, port = lab.start(serve_resolver, "127.0.53.2", 0, LabZone(ZONE), lies)
    query = dns.message.make_query("example.kg", "A")
    assert addresses(dns.query.udp(query, ip, port=port, timeout=2)) == ["127.0.0.10"]
    lies["example.kg"] = Behaviour.address(BLOCKPAGE)
    assert addresses(dns.query.udp(query, ip, port=port, timeout=2)) == [BLOCKPAGE]


def test_malformed_queries_are_ignored(resolver: LabResolver) -> None:
    """If a client sends junk, then the server ignores it and keeps answering."""
    assert resolver.address is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for junk in (b"", b"\x00", b"\xff" * 12, b"hello, resolver" * 10):
            sock.sendto(junk, resolver.address)
    assert addresses(ask(resolver, "example.kg")) == ["127.0.0.10"]


def test_ipv6_loopback(lab: LabThread) -> None:
    """If the resolver binds ::1, then it answers over IPv6."""
    ip, port = lab.start(serve_resolver, "::1", 0, ZONE)
    reply = dns.query.udp(dns.message.make_query("example.kg", "AAAA"), ip, port=port, timeout=2)
    assert addresses(reply) == ["::1"]


def test_behaviour_parse() -> None:
    """If a behaviour is written as scenario text, then it parses to the same behaviour."""
    assert Behaviour.parse("honest") == Behaviour.honest()
    assert Behaviour.parse("address 127.66.66.66 ::1") == Behaviour.address("127.66.66.66", "::1")
    assert Behaviour.parse("inject 127.66.66.66 delay=0.2") == Behaviour.inject("127.66.66.66", delay=0.2)
    assert Behaviour.parse("SERVFAIL delay=1").kind is Kind.SERVFAIL
    assert str(Behaviour.inject("127.66.66.66", delay=0.2)) == "inject 127.66.66.66 delay=0.2"
    for bad in ("", "lie", "address", "address not-an-ip", "honest delay=-1"):
        with pytest.raises(ValueError):
            Behaviour.parse(bad)

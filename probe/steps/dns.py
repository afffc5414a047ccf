"""The DNS step: resolve a name through the system resolver or one UDP resolver.

Why our own UDP loop rather than ``dns.asyncquery.udp``: that returns the first reply
and stops.  An on-path injector answers before the real resolver, so the evidence is
in what comes *after* the first reply.  Like OONI's ``dnsover udp`` with delayed
responses, :func:`query_udp` keeps its socket open for a short window after the first
valid reply and records every further one in ``extra_responses``.

Every network problem becomes data: the step returns a :class:`DnsObservation` whose
``failure`` comes from :func:`probe.failures.classify_failure` (or
:func:`~probe.failures.classify_rcode` for a reply's response code).  The step's own
timeout is a cancel scope around it; ``generic_timeout_error`` is recorded only when
that scope fired, and outside cancellation (the run's deadline, Ctrl-C) propagates.
Only programming errors raise (an unknown query type, a resolver that is no IP).
"""

from __future__ import annotations

import ipaddress
import socket

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver
import trio

from probe.failures import Failure, classify_failure, classify_rcode
from probe.records import DnsAnswer, DnsObservation, DnsResponse
from probe.steps.addresses import ip_version

#: The IDNA rules trio's getaddrinfo uses (IDNA 2008 with UTS 46 mapping), so that a
#: non-ASCII name is the same name to the system resolver and to our UDP queries.
_IDNA = dns.name.IDNA_2008_Practical

#: How much of a datagram we read: larger than any DNS message over UDP.
_MAX_DATAGRAM = 65535

#: The most replies after the first that one observation stores.  An injector sends
#: one or two; a flood sent 643 within the window, which would bloat every copy of
#: the record without adding evidence.  The rest are counted, not stored.
MAX_EXTRA_RESPONSES = 16

#: The most answer records stored per reply (a 64 KiB datagram holds thousands).
MAX_ANSWERS = 64


# --- resolvers as text ----------------------------------------------------------------


def parse_resolver(text: str) -> tuple[str, int]:
    """Read ``"IP"``, ``"IP:PORT"``, ``"[v6]:PORT"``, ``"[v6]"`` or a bare ``"v6"``;
    the port defaults to 53.  Raises ValueError with the reason for anything else."""
    value = text.strip()
    host, port_text = value, None
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise ValueError(f"resolver {text!r}: missing ']'")
        host, rest = value[1:close], value[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"resolver {text!r}: expected ':PORT' after ']'")
            port_text = rest[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"resolver {text!r}: {host!r} is not an IP address") from None
    if value.startswith("[") and address.version != 6:
        raise ValueError(f"resolver {text!r}: brackets are for IPv6 addresses")
    port = 53
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"resolver {text!r}: port must be a number from 1 to 65535")
        port = int(port_text)
    return str(address), port


def format_resolver(resolver: tuple[str, int]) -> str:
    """``"ip:port"``, or ``"[v6]:port"``: the inverse of :func:`parse_resolver`."""
    ip, port = resolver
    if ":" in ip:
        return f"[{ip}]:{port}"
    return f"{ip}:{port}"


def system_nameservers(path: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    """The nameservers the system is configured with (``[]`` when there are none).

    Read with dnspython's parser, so ``options``, ``search`` and scoped IPv6 addresses
    are handled as the resolver library does.  Nothing is sent.
    """
    try:
        resolver = dns.resolver.Resolver(filename=path, configure=True)
    except dns.resolver.NoResolverConfiguration:
        return []
    found: list[tuple[str, int]] = []
    for nameserver in resolver.nameservers:
        if isinstance(nameserver, str):
            found.append((nameserver, resolver.nameserver_ports.get(nameserver, resolver.port)))
        elif isinstance(nameserver, dns.nameserver.Do53Nameserver):
            found.append((nameserver.address, nameserver.port))
    return found


# --- the system resolver ---------------------------------------------------------------


async def resolve_system(
    hostname: str,
    *,
    obs_id: str,
    t0: float,
    timeout: float,  # noqa: ASYNC109 -- the contract: each step owns its own cancel scope
) -> DnsObservation:
    """Resolve ``hostname`` with getaddrinfo, as a browser on this machine would.

    Records query type ``"ANY"`` (getaddrinfo asks for A and AAAA as it sees fit),
    the addresses deduplicated in the order returned, no TTLs and no rcode: the C
    library tells us neither.  getaddrinfo runs in a thread that is abandoned when
    the timeout fires, so a hung system resolver cannot hold up the run.
    """
    started = trio.current_time() - t0
    observation = DnsObservation(
        id=obs_id,
        hostname=hostname,
        query_type="ANY",
        resolver="system",
        transport="system",
        started=started,
        finished=started,
    )
    with trio.move_on_after(timeout) as scope:
        try:
            # A name that cannot exist fails here, before any query, as the same
            # name fails in query_udp: one failure for one mistake on both paths.
            dns.name.from_text(hostname, idna_codec=_IDNA)
            infos = await trio.socket.getaddrinfo(hostname, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, dns.exception.DNSException) as exc:
            observation.failure = classify_failure(exc)
        else:
            seen: set[str] = set()
            for family, _type, _proto, _canonname, sockaddr in infos:
                address = str(sockaddr[0])
                if address in seen or family not in (socket.AF_INET, socket.AF_INET6):
                    continue
                seen.add(address)
                rrtype = "A" if family == socket.AF_INET else "AAAA"
                observation.answers.append(DnsAnswer(rrtype=rrtype, value=address, ttl=None))
            if not observation.answers:
                observation.failure = Failure.DNS_NO_ANSWER
    if scope.cancelled_caught:
        observation.failure = Failure.GENERIC_TIMEOUT
    observation.finished = trio.current_time() - t0
    return observation


# --- one UDP resolver ------------------------------------------------------------------


async def query_udp(
    hostname: str,
    query_type: str,
    resolver: tuple[str, int],
    *,
    obs_id: str,
    t0: float,
    timeout: float,  # noqa: ASYNC109 -- the contract: each step owns its own cancel scope
    window: float = 0.3,
    source_address: str | None = None,
    windows: trio.Nursery | None = None,
) -> DnsObservation:
    """Ask ``resolver`` for ``hostname``/``query_type`` over UDP, watching for injection.

    The first valid reply (our id, our question, from the resolver) gives the
    observation's ``rcode``, ``answers`` and ``failure``, and ``finished`` is when it
    came.  The socket then stays open ``window`` more seconds and every further valid
    reply goes to ``extra_responses`` (their ``received`` may be after ``finished``).
    Datagrams that do not parse or answer another query are ignored, as a stub
    resolver ignores them.  No valid reply within ``timeout``: ``generic_timeout_error``.

    With a ``windows`` nursery the window is watched in a task started there, and
    this returns as soon as the first reply is recorded: the caller connects while
    the socket still listens, and the observation is complete (every late reply in
    ``extra_responses``) only when that nursery has closed.  Without one, this
    returns after the window.

    A ``source_address`` of the other IP version than the resolver's is recorded as
    ``address_not_available`` without sending anything.

    Raises ValueError for an unknown ``query_type``, or a resolver or source address
    that is not an IP literal: those are mistakes of the caller, not observations.
    """
    rdtype = _rdtype(query_type)
    ip, port = resolver
    version, source_version = _ip_versions(ip, source_address)
    started = trio.current_time() - t0
    observation = DnsObservation(
        id=obs_id,
        hostname=hostname,
        query_type=dns.rdatatype.to_text(rdtype),
        resolver=format_resolver(resolver),
        transport="udp",
        started=started,
        finished=started,
    )
    if source_version != version:
        # One source address for all resolvers: an IPv4 source cannot reach an IPv6
        # resolver.  That is this vantage point's limit, so it is data, not an error.
        observation.failure = Failure.ADDRESS_NOT_AVAILABLE
        return observation
    try:
        query = dns.message.make_query(hostname, rdtype, idna_codec=_IDNA)
    except dns.exception.DNSException as exc:  # a name that cannot exist: nothing is sent
        observation.failure = classify_failure(exc)
        return observation

    sock = trio.socket.socket(socket.AF_INET6 if version == 6 else socket.AF_INET, socket.SOCK_DGRAM)
    handed_over = False
    try:
        first = await _first_reply(sock, query, observation, (ip, port), source_address, t0, timeout)
        if first is None:
            return observation
        _record_first_reply(observation, first, rdtype)
        closes = trio.current_time() + window  # from the first reply, either way
        if windows is None:
            await _watch_window(sock, query, observation, t0, closes)
        else:
            # The task owns the socket from here: it closes it when the window does.
            windows.start_soon(_watch_then_close, sock, query, observation, t0, closes)
            handed_over = True
    finally:
        if not handed_over:
            sock.close()
    return observation


async def _watch_then_close(
    sock: trio.socket.SocketType,
    query: dns.message.Message,
    observation: DnsObservation,
    t0: float,
    closes: float,
) -> None:
    """:func:`_watch_window` in the caller's nursery, then the socket is closed."""
    with sock:
        await _watch_window(sock, query, observation, t0, closes)


def _ip_versions(ip: str, source_address: str | None) -> tuple[int, int]:
    """The IP versions of the resolver and of the source address (the resolver's if none).

    Both are checked as IP literals here, because trio would otherwise resolve a name
    given to bind() or connect() through the system resolver; a name raises ValueError."""
    version = ip_version(ip)
    source_version = version if source_address is None else ip_version(source_address)
    return version, source_version


def _record_first_reply(
    observation: DnsObservation, first: dns.message.Message, rdtype: dns.rdatatype.RdataType
) -> None:
    """Fill the observation from the first valid reply: it alone decides rcode, answers and failure.

    Later replies are evidence of injection, kept apart in ``extra_responses``."""
    observation.rcode = dns.rcode.to_text(first.rcode())
    observation.answers, observation.answers_dropped = _answers(first)
    observation.failure = _reply_failure(first, rdtype)


def _rdtype(query_type: str) -> dns.rdatatype.RdataType:
    try:
        return dns.rdatatype.from_text(query_type)
    except dns.rdatatype.UnknownRdatatype:
        raise ValueError(f"unknown DNS query type {query_type!r}") from None


async def _first_reply(
    sock: trio.socket.SocketType,
    query: dns.message.Message,
    observation: DnsObservation,
    resolver: tuple[str, int],
    source_address: str | None,
    t0: float,
    timeout: float,  # noqa: ASYNC109 -- query_udp's own limit, passed down
) -> dns.message.Message | None:
    """Send ``query`` and wait for the first valid reply; ``None`` (the failure
    recorded) when none came.  ``observation.finished`` is set either way."""
    first: dns.message.Message | None = None
    with trio.move_on_after(timeout) as scope:
        try:
            if source_address is not None:
                await sock.bind((source_address, 0))
            # connect(): the kernel then drops datagrams from other addresses and
            # reports an ICMP "port unreachable" as ECONNREFUSED instead of silence.
            await sock.connect(resolver)
            await sock.send(query.to_wire())
            first = await _receive_reply(sock, query)
        except OSError as exc:
            observation.failure = classify_failure(exc)
    observation.finished = trio.current_time() - t0
    if first is None and scope.cancelled_caught:
        observation.failure = Failure.GENERIC_TIMEOUT
    return first


async def _watch_window(
    sock: trio.socket.SocketType,
    query: dns.message.Message,
    observation: DnsObservation,
    t0: float,
    closes: float,
) -> None:
    """The window: an injector's forged reply wins the race; the true one follows.
    Every further valid reply until ``closes`` (trio time) goes to ``extra_responses``."""
    with trio.move_on_at(closes):
        try:
            while True:
                reply = await _receive_reply(sock, query)
                if len(observation.extra_responses) >= MAX_EXTRA_RESPONSES:
                    observation.extra_responses_dropped += 1
                    continue
                answers, dropped = _answers(reply)
                observation.answers_dropped += dropped
                observation.extra_responses.append(
                    DnsResponse(
                        received=trio.current_time() - t0,
                        rcode=dns.rcode.to_text(reply.rcode()),
                        answers=answers,
                    )
                )
        except OSError:
            pass  # an error after the answer changes nothing we recorded


async def _receive_reply(sock: trio.socket.SocketType, query: dns.message.Message) -> dns.message.Message:
    """The next datagram that is a well-formed reply to ``query``; others are skipped."""
    while True:
        data = await sock.recv(_MAX_DATAGRAM)
        try:
            reply = dns.message.from_wire(data)
        except Exception:  # hostile bytes may raise anything from the parser; skip them
            continue
        if query.is_response(reply):
            return reply


def _answers(reply: dns.message.Message) -> tuple[list[DnsAnswer], int]:
    """The reply's answer records, at most :data:`MAX_ANSWERS`, and how many were left out."""
    answers: list[DnsAnswer] = []
    dropped = 0
    for rrset in reply.answer:
        for rdata in rrset:
            if len(answers) < MAX_ANSWERS:
                answers.append(
                    DnsAnswer(
                        rrtype=dns.rdatatype.to_text(rrset.rdtype), value=rdata.to_text(), ttl=rrset.ttl
                    )
                )
            else:
                dropped += 1
    return answers, dropped


def _reply_failure(reply: dns.message.Message, rdtype: dns.rdatatype.RdataType) -> Failure | None:
    """What a reply means: its rcode's failure, or ``dns_no_answer`` for a NOERROR
    reply without a record of the type asked (a CNAME alone is no answer)."""
    failure = classify_rcode(dns.rcode.to_text(reply.rcode()))
    if failure is not None:
        return failure
    if rdtype == dns.rdatatype.ANY:
        return None if reply.answer else Failure.DNS_NO_ANSWER
    if any(rrset.rdtype == rdtype for rrset in reply.answer):
        return None
    return Failure.DNS_NO_ANSWER

"""The DNS step against the lab resolver: every lie becomes the expected observation.

The lab resolver runs in the test's own trio loop (its socket work never blocks), and
query_udp talks to it over a real loopback socket.  Nothing leaves 127.0.0.0/8: the
system resolver is only asked for ``localhost`` (answered from /etc/hosts) and for a
malformed name that fails before any query.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from probe.failures import Failure
from probe.lab.dns_server import Behaviour, LabResolver
from probe.records import DnsObservation
from probe.steps.dns import (
    format_resolver,
    parse_resolver,
    query_udp,
    resolve_system,
    system_nameservers,
)

ZONE = {"example.kg": ["127.0.0.10", "::1"]}
BLOCKPAGE = "127.66.66.66"
TIMEOUT = 0.5


@pytest.fixture
async def resolver(nursery: trio.Nursery) -> LabResolver:
    server = LabResolver(ZONE)
    await nursery.start(server.serve, "127.0.53.3", 0)
    return server


async def ask(
    server: LabResolver, name: str = "example.kg", query_type: str = "A", window: float = 0.1
) -> DnsObservation:
    assert server.address is not None
    return await query_udp(
        name,
        query_type,
        server.address,
        obs_id="dns/0",
        t0=trio.current_time(),
        timeout=TIMEOUT,
        window=window,
    )


async def test_honest(resolver: LabResolver) -> None:
    """If the resolver is honest, then the observation has its answer, NOERROR and no failure."""
    obs = await ask(resolver)
    assert obs.failure is None
    assert obs.rcode == "NOERROR"
    assert [(a.rrtype, a.value, a.ttl) for a in obs.answers] == [("A", "127.0.0.10", 300)]
    assert obs.extra_responses == []
    assert obs.transport == "udp"
    assert obs.query_type == "A"
    assert obs.resolver == f"127.0.53.3:{resolver.address[1]}"  # type: ignore[index]
    assert 0 <= obs.started <= obs.finished < TIMEOUT


async def test_honest_aaaa(resolver: LabResolver) -> None:
    """If AAAA is asked, then the IPv6 address is recorded as an AAAA answer."""
    obs = await ask(resolver, query_type="aaaa")
    assert obs.failure is None
    assert obs.addresses() == ["::1"]
    assert obs.answers[0].rrtype == "AAAA"


async def test_blockpage_address(resolver: LabResolver) -> None:
    """If the resolver lies with a blockpage address, then that address is the recorded answer."""
    resolver.set_lie("example.kg", Behaviour.address(BLOCKPAGE))
    obs = await ask(resolver)
    assert obs.failure is None
    assert obs.addresses() == [BLOCKPAGE]


@pytest.mark.parametrize(
    ("behaviour", "rcode", "failure"),
    [
        (Behaviour.nxdomain(), "NXDOMAIN", "dns_nxdomain_error"),
        (Behaviour.servfail(), "SERVFAIL", "dns_server_failure"),
        (Behaviour.refused(), "REFUSED", "dns_refused_error"),
        (Behaviour.no_answer(), "NOERROR", "dns_no_answer"),
    ],
)
async def test_error_replies(resolver: LabResolver, behaviour: Behaviour, rcode: str, failure: str) -> None:
    """If the resolver answers with an error, then the rcode and its failure string are recorded."""
    resolver.set_lie("example.kg", behaviour)
    obs = await ask(resolver)
    assert obs.rcode == rcode
    assert obs.failure == failure
    assert obs.answers == []


async def test_unknown_name_is_nxdomain(resolver: LabResolver) -> None:
    """If the name does not exist, then the honest NXDOMAIN is recorded as dns_nxdomain_error."""
    obs = await ask(resolver, "missing.kg")
    assert obs.failure == "dns_nxdomain_error"


async def test_no_record_of_asked_type(resolver: LabResolver) -> None:
    """If the name exists but has no record of the asked type, then dns_no_answer is recorded."""
    resolver.set_lie("example.kg", Behaviour.address("127.0.0.10"))
    obs = await ask(resolver, query_type="AAAA")
    assert obs.rcode == "NOERROR"
    assert obs.failure == "dns_no_answer"


async def test_silence_times_out(resolver: LabResolver) -> None:
    """If the resolver stays silent, then generic_timeout_error is recorded after the timeout."""
    resolver.set_lie("example.kg", Behaviour.silence())
    obs = await ask(resolver)
    assert obs.failure == "generic_timeout_error"
    assert obs.rcode is None
    assert obs.finished - obs.started == pytest.approx(TIMEOUT, abs=0.2)


async def test_injection_is_recorded(resolver: LabResolver) -> None:
    """If an injector races the resolver, then the forged answer is first and the true one extra."""
    resolver.set_lie("example.kg", Behaviour.inject(BLOCKPAGE, delay=0.1))
    obs = await ask(resolver, window=0.4)
    assert obs.failure is None
    assert obs.addresses() == [BLOCKPAGE]
    assert len(obs.extra_responses) == 1
    true = obs.extra_responses[0]
    assert true.rcode == "NOERROR"
    assert [a.value for a in true.answers] == ["127.0.0.10"]
    assert true.received > obs.finished


async def test_window_in_callers_nursery(resolver: LabResolver) -> None:
    """If the window runs in the caller's nursery, then the step returns at the first
    reply and the true one is recorded by the time that nursery closes."""
    resolver.set_lie("example.kg", Behaviour.inject(BLOCKPAGE, delay=0.1))
    assert resolver.address is not None
    t0 = trio.current_time()
    async with trio.open_nursery() as windows:
        obs = await query_udp(
            "example.kg",
            "A",
            resolver.address,
            obs_id="dns/0",
            t0=t0,
            timeout=TIMEOUT,
            window=0.4,
            windows=windows,
        )
        returned = trio.current_time() - t0
        assert obs.addresses() == [BLOCKPAGE]
        assert obs.extra_responses == []  # the true reply is still on its way
    assert returned < 0.1 < trio.current_time() - t0
    assert trio.current_time() - t0 == pytest.approx(
        obs.finished + 0.4, abs=0.1
    )  # the window, from the first
    assert [[a.value for a in r.answers] for r in obs.extra_responses] == [["127.0.0.10"]]
    assert obs.extra_responses[0].received > obs.finished


async def test_reply_after_window_is_not_recorded(resolver: LabResolver) -> None:
    """If the true reply comes after the window closes, then only the forged one is recorded."""
    resolver.set_lie("example.kg", Behaviour.inject(BLOCKPAGE, delay=0.4))
    obs = await ask(resolver, window=0.1)
    assert obs.addresses() == [BLOCKPAGE]
    assert obs.extra_responses == []


async def test_garbage_is_ignored(resolver: LabResolver) -> None:
    """If the resolver sends random bytes, then they are ignored and the query times out."""
    resolver.set_lie("example.kg", Behaviour.garbage())
    obs = await ask(resolver)
    assert obs.failure == "generic_timeout_error"


async def test_wrong_id_is_ignored(resolver: LabResolver) -> None:
    """If the reply carries another id, then it is ignored and the query times out."""
    resolver.set_lie("example.kg", Behaviour.wrong_id())
    obs = await ask(resolver)
    assert obs.failure == "generic_timeout_error"


async def test_slow_resolver_within_timeout(resolver: LabResolver) -> None:
    """If the reply is slow but within the timeout, then it is recorded with its delay."""
    resolver.set_lie("example.kg", Behaviour.honest(delay=0.2))
    obs = await ask(resolver)
    assert obs.failure is None
    assert obs.finished - obs.started >= 0.2


async def test_closed_port_is_connection_refused() -> None:
    """If nothing listens on the resolver's port, then the ICMP error is recorded as connection_refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.53.4", 0))
        port = probe.getsockname()[1]
    obs = await query_udp(
        "example.kg", "A", ("127.0.53.4", port), obs_id="dns/0", t0=trio.current_time(), timeout=TIMEOUT
    )
    assert obs.failure == "connection_refused"


async def test_source_address(resolver: LabResolver) -> None:
    """If a source address is given, then the query leaves from it and is answered."""
    assert resolver.address is not None
    obs = await query_udp(
        "example.kg",
        "A",
        resolver.address,
        obs_id="dns/0",
        t0=trio.current_time(),
        timeout=TIMEOUT,
        window=0.05,
        source_address="127.0.53.5",
    )
    assert obs.failure is None
    assert obs.addresses() == ["127.0.0.10"]


async def test_source_address_of_other_family() -> None:
    """If the source address is IPv4 and the resolver IPv6, then address_not_available is recorded."""
    obs = await query_udp(
        "example.kg",
        "A",
        ("::1", 53),
        obs_id="dns/0",
        t0=trio.current_time(),
        timeout=TIMEOUT,
        source_address="127.0.0.1",
    )
    assert obs.failure == "address_not_available"


@pytest.mark.parametrize(
    ("resolver", "source"), [(("127.0.0.300", 53), None), (("127.0.0.1", 53), "127.0.0.300")]
)
async def test_non_ip_addresses_raise(resolver: tuple[str, int], source: str | None) -> None:
    """If the resolver or source address is not an IP literal, then ValueError is raised before any lookup."""
    with pytest.raises(ValueError):
        await query_udp(
            "example.kg", "A", resolver, obs_id="dns/0", t0=0.0, timeout=TIMEOUT, source_address=source
        )


async def test_malformed_name_is_not_sent(resolver: LabResolver) -> None:
    """If the name has an empty label, then dns_nxdomain_error is recorded and nothing is sent."""
    obs = await ask(resolver, "a..b")
    assert obs.failure == "dns_nxdomain_error"
    assert resolver.seen == []


async def test_outside_cancellation_propagates(resolver: LabResolver) -> None:
    """If an outer scope cancels a query to a silent resolver, then Cancelled is not turned into data."""
    resolver.set_lie("example.kg", Behaviour.silence())
    assert resolver.address is not None
    returned: list[DnsObservation] = []
    with trio.move_on_after(0.1) as outer:
        returned.append(
            await query_udp(
                "example.kg", "A", resolver.address, obs_id="dns/0", t0=trio.current_time(), timeout=5
            )
        )
    assert outer.cancelled_caught
    assert returned == []


async def test_outside_cancellation_during_window(resolver: LabResolver) -> None:
    """If an outer scope fires during the injection window, then Cancelled propagates too."""
    assert resolver.address is not None
    returned: list[DnsObservation] = []
    with trio.move_on_after(0.2) as outer:
        returned.append(
            await query_udp(
                "example.kg",
                "A",
                resolver.address,
                obs_id="dns/0",
                t0=trio.current_time(),
                timeout=5,
                window=5,
            )
        )
    assert outer.cancelled_caught
    assert returned == []


async def test_unknown_query_type_raises(resolver: LabResolver) -> None:
    """If the query type is not a DNS type, then the caller's mistake raises instead of being data."""
    assert resolver.address is not None
    with pytest.raises(ValueError):
        await query_udp("example.kg", "NOPE", resolver.address, obs_id="dns/0", t0=0.0, timeout=TIMEOUT)


async def test_system_resolves_localhost() -> None:
    """If the system resolver is asked for localhost, then /etc/hosts answers with a loopback address."""
    obs = await resolve_system("localhost", obs_id="dns/0", t0=trio.current_time(), timeout=5)
    assert obs.failure is None
    assert obs.transport == "system" and obs.resolver == "system" and obs.query_type == "ANY"
    assert obs.rcode is None
    assert obs.answers and all(a.ttl is None for a in obs.answers)
    assert set(obs.addresses()) <= {"127.0.0.1", "::1"}
    assert len(obs.addresses()) == len(set(obs.addresses()))


async def test_system_malformed_name() -> None:
    """If the system resolver is given a name with an empty label, then it fails locally as nxdomain."""
    obs = await resolve_system("a..b", obs_id="dns/0", t0=trio.current_time(), timeout=5)
    assert obs.failure == Failure.DNS_NXDOMAIN
    assert obs.answers == []


def test_parse_resolver() -> None:
    """If a resolver is written in any accepted form, then it parses to (ip, port)."""
    assert parse_resolver("127.0.0.53") == ("127.0.0.53", 53)
    assert parse_resolver("127.0.0.53:5353") == ("127.0.0.53", 5353)
    assert parse_resolver("[::1]:5353") == ("::1", 5353)
    assert parse_resolver("[::1]") == ("::1", 53)
    assert parse_resolver("::1") == ("::1", 53)
    assert format_resolver(("::1", 5353)) == "[::1]:5353"
    assert format_resolver(("127.0.0.1", 53)) == "127.0.0.1:53"


@pytest.mark.parametrize(
    "text", ["", "dns.kg", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "[::1", "[1.2.3.4]:53"]
)
def test_parse_resolver_rejects(text: str) -> None:
    """If a resolver is not an IP with an optional valid port, then ValueError says so."""
    with pytest.raises(ValueError, match="resolver"):
        parse_resolver(text)


def test_system_nameservers(tmp_path: Path) -> None:
    """If resolv.conf lists nameservers, then they are returned with port 53; none gives []."""
    conf = tmp_path / "resolv.conf"
    conf.write_text("search kg\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n")
    assert system_nameservers(str(conf)) == [("127.0.0.53", 53), ("::1", 53)]
    conf.write_text("search kg\n")
    assert system_nameservers(str(conf)) == []
    assert system_nameservers(str(tmp_path / "missing")) == []


def test_ip_literals_are_parsed_once_and_names_refused() -> None:
    """If the steps ask about an address (about ten times per measurement), then it is
    parsed once (cached), and a name is still refused, never resolved behind our back."""
    from probe.steps.addresses import ip_version, is_ip, parse_ip

    assert ip_version("127.0.0.1") == 4 and ip_version("::1") == 6
    assert parse_ip("127.0.0.1") is parse_ip("127.0.0.1")
    assert not is_ip("example.kg") and parse_ip("example.kg") is None
    with pytest.raises(ValueError, match="not an IP address"):
        ip_version("example.kg")

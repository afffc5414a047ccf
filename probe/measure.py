"""Measure one URL: DNS, then TCP and TLS to every address, then HTTP.

The order and the fan-out follow OONI's Web Connectivity: every resolver is asked
(so a lying one can be told from an honest one), every resolved address is tried (so
IP blocking of one address is visible), and the HTTP fetch goes to the first address
that completed its handshake, with the real Host and SNI, so a blockpage served by a
middlebox on the path is recorded as the user would see it.  The fetch's first
request goes over that handshake's own connection (the TLS observation's, for https;
the TCP observation's, for http) rather than a new one: it is the connection a browser
would use, and it saves the two round trips of a second handshake.  A connection that
waited longer than :data:`HANDOVER_IDLE_LIMIT` for its siblings is not handed over
(a server may have given up on an idle connection); the fetch then opens its own, as
it does when the handshake's certificate did not validate.

Nothing here judges: a failure at one step is recorded and the next steps still run
where they can.  Nothing here raises for network trouble either; the steps turn every
failure into data.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import trio

# The run's context and the records of a start and of a failure live in probe.context
# (which the parent of a --workers run imports without this module); offered here too.
from probe.context import (
    ControlFetcher,
    MeasurementContext,
    failed_measurement,
    measure_or_record,
    new_measurement,
)
from probe.records import DnsObservation, Measurement, TcpObservation, TlsObservation, utc_now
from probe.settings import ProbeSettings
from probe.steps import dns, http, tcp, tls
from probe.steps._ids import ObservationIds
from probe.steps.addresses import ip_version, is_ip
from probe.steps.reuse import OpenConnection
from probe.targets import Target

__all__ = [
    "HANDOVER_IDLE_LIMIT",
    "ControlFetcher",
    "MeasurementContext",
    "failed_measurement",
    "measure_or_record",
    "measure_url",
    "new_measurement",
]

#: The longest a completed handshake's connection waits (for the other addresses'
#: handshakes) and is still handed to the HTTP fetch; servers' idle timeouts for a
#: connection that has sent no request go down to a few seconds.
HANDOVER_IDLE_LIMIT = 2.0


class _Ready:
    """The connections whose handshakes completed, by address, until one is used."""

    def __init__(self) -> None:
        self.by_ip: dict[str, tuple[float, OpenConnection]] = {}

    def keep(self, connection: OpenConnection) -> None:
        self.by_ip[connection.ip] = (trio.current_time(), connection)

    def take(self, ip: str) -> OpenConnection | None:
        """The connection to ``ip`` if it has not idled too long; the others stay."""
        kept = self.by_ip.pop(ip, None)
        if kept is None:
            return None
        if trio.current_time() - kept[0] > HANDOVER_IDLE_LIMIT:
            self.by_ip[ip] = kept  # closed with the others
            return None
        return kept[1]

    async def close_all(self) -> None:
        kept, self.by_ip = self.by_ip, {}
        for _, connection in kept.values():
            await _close(connection.stream)


def _ordered_addresses(observations: list[DnsObservation], limit: int) -> list[str]:
    """Union of every resolver's answers, IPv4 first, first-seen order, capped.

    IPv4 first because most volunteers' home links have no IPv6: trying v6 first would
    spend the address budget on ``network_unreachable``.
    """
    seen: list[str] = []
    for obs in observations:
        for address in obs.addresses():
            if address not in seen:
                seen.append(address)
    seen.sort(key=ip_version)
    return seen[:limit]


async def _resolve_all(
    host: str, ctx: MeasurementContext, ids: ObservationIds, t0: float, windows: trio.Nursery
) -> list[DnsObservation]:
    """Every resolver's answer for ``host``, back as soon as each has its first reply;
    the UDP queries' listening windows go on in ``windows`` (see :func:`measure_url`)."""
    settings = ctx.settings
    results: list[tuple[int, DnsObservation]] = []

    async def one(order: int, coro: Callable[[], Awaitable[DnsObservation]]) -> None:
        results.append((order, await coro()))

    async with trio.open_nursery() as nursery:
        order = 0
        if settings.system_resolver:
            obs_id = ids.next("dns")
            nursery.start_soon(
                one,
                order,
                lambda: dns.resolve_system(host, obs_id=obs_id, t0=t0, timeout=settings.timeouts.dns),
            )
            order += 1
        for resolver in settings.resolvers:
            for qtype in ("A", "AAAA"):
                obs_id = ids.next("dns")
                nursery.start_soon(
                    one,
                    order,
                    _bind_query(host, qtype, resolver, obs_id, t0, settings, windows),
                )
                order += 1
    return [obs for _, obs in sorted(results, key=lambda item: item[0])]


def _bind_query(
    host: str,
    qtype: str,
    resolver: tuple[str, int],
    obs_id: str,
    t0: float,
    settings: ProbeSettings,
    windows: trio.Nursery,
) -> Callable[[], Awaitable[DnsObservation]]:
    async def call() -> DnsObservation:
        return await dns.query_udp(
            host,
            qtype,
            resolver,
            obs_id=obs_id,
            t0=t0,
            timeout=settings.timeouts.dns,
            window=settings.dns_window,
            source_address=settings.source_address,
            windows=windows,
        )

    return call


async def _tcp_then_tls(
    ip: str,
    port: int,
    server_name: str | None,
    ctx: MeasurementContext,
    ids: ObservationIds,
    t0: float,
    *,
    purpose: str = "target",
) -> tuple[TcpObservation, TlsObservation | None, OpenConnection | None]:
    """Connect to ``ip``, then (with a ``server_name``) hand the stream to a TLS
    handshake: the one TCP→TLS sequence, for the target's name and the comparison's.
    The connection is returned open when its last step completed; otherwise closed."""
    settings = ctx.settings
    tcp_obs, stream = await tcp.connect(
        ip,
        port,
        obs_id=ids.next("tcp"),
        t0=t0,
        timeout=settings.timeouts.connect,
        source_address=settings.source_address,
    )
    if stream is None:
        return tcp_obs, None, None
    if server_name is None:
        return tcp_obs, None, OpenConnection(ip, port, stream, None)
    tls_obs, tls_stream = await tls.handshake(
        stream,
        ip=ip,
        port=port,
        server_name=server_name,
        obs_id=ids.next("tls"),
        t0=t0,
        timeout=settings.timeouts.tls,
        context=ctx.ssl_context,
        purpose=purpose,
        source_address=settings.source_address,
    )
    if tls_stream is None:
        await _close(stream)
        return tcp_obs, tls_obs, None
    return tcp_obs, tls_obs, OpenConnection(ip, port, tls_stream, server_name)


async def _close(stream: trio.abc.AsyncResource) -> None:
    with trio.move_on_after(1) as scope:
        scope.shield = True
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError):
            await stream.aclose()


async def measure_url(
    target: Target,
    ctx: MeasurementContext,
    *,
    role: str = "target",
    control: ControlFetcher | None = None,
) -> Measurement:
    """Run every step for one URL and return the complete record.

    ``control`` is called with the URL at the start and runs alongside the probe's own
    steps (not after), so both vantages see the site at nearly the same moment.

    The UDP DNS queries' listening windows (late and duplicate replies: injection's
    evidence) run in their own nursery alongside TCP, TLS and HTTP rather than before
    them; the record is returned only once that nursery, and so every window, has closed.
    """
    settings = ctx.settings
    started_at = utc_now() + timedelta(seconds=settings.clock_offset)
    t0 = trio.current_time()
    ids = ObservationIds()
    parts = urlsplit(target.url)
    host = (parts.hostname or "").lower()
    measurement = new_measurement(target, ctx, role, started_at)

    https = parts.scheme == "https"
    async with trio.open_nursery() as windows:
        steps = _Steps(target, ctx, measurement, ids, t0, host, target.port, https, _Ready(), windows)
        try:
            await _measure_steps(steps, control)
        finally:
            with trio.CancelScope(shield=True):
                await steps.ready.close_all()
    measurement.runtime = round(trio.current_time() - t0, 6)
    return measurement


@dataclass
class _Steps:
    """One measurement in progress: what each step needs and where it records."""

    target: Target
    ctx: MeasurementContext
    measurement: Measurement
    ids: ObservationIds
    t0: float
    host: str
    port: int
    https: bool
    ready: _Ready
    #: Where the DNS queries' listening windows run (see :func:`measure_url`).
    windows: trio.Nursery

    async def connect_all(self, addresses: list[str]) -> str | None:
        """TCP (and TLS) to every address at once, recorded in id order; the address
        for the HTTP fetch, if any (:func:`_first_reachable`)."""
        tcp_obs: list[TcpObservation] = []
        tls_obs: list[TlsObservation] = []
        async with trio.open_nursery() as connects:
            for ip in addresses:
                connects.start_soon(self.connect, ip, tcp_obs, tls_obs)
        self.measurement.tcp += sorted(tcp_obs, key=lambda o: int(o.id.split("/")[1]))
        self.measurement.tls += sorted(tls_obs, key=lambda o: int(o.id.split("/")[1]))
        return _first_reachable(self.measurement, self.https)

    async def connect(self, ip: str, tcp_out: list[TcpObservation], tls_out: list[TlsObservation]) -> None:
        """One address: TCP, TLS for https, and the comparison handshake when the
        target's name met interference (no certificate came back)."""
        ctx, ids, t0, host = self.ctx, self.ids, self.t0, self.host
        server_name = host if self.https else None
        tcp_obs, tls_obs, connection = await _tcp_then_tls(ip, self.port, server_name, ctx, ids, t0)
        tcp_out.append(tcp_obs)
        if connection is not None:
            self.ready.keep(connection)
        if tls_obs is None:
            return
        tls_out.append(tls_obs)
        comparison = ctx.settings.comparison_sni
        if tls_obs.failure is not None and tls_obs.certificates == [] and comparison and comparison != host:
            # The same address with an innocuous name: if this completes, the address is
            # reachable and it was the name in the ClientHello that was punished.
            cmp_tcp, cmp_tls, cmp_connection = await _tcp_then_tls(
                ip, self.port, comparison, ctx, ids, t0, purpose="comparison"
            )
            tcp_out.append(cmp_tcp)
            if cmp_tls is not None:
                tls_out.append(cmp_tls)
            if cmp_connection is not None:
                await _close(cmp_connection.stream)

    async def resolve(self, name: str) -> list[str]:
        """A redirect's new name, resolved like the target's and recorded with it."""
        observations = await _resolve_all(name, self.ctx, self.ids, self.t0, self.windows)
        self.measurement.dns.extend(observations)
        return _ordered_addresses(observations, 1)

    async def fetch(self, reachable: str) -> None:
        connection = self.ready.take(reachable)
        await self.ready.close_all()  # the other addresses' connections: their evidence is taken
        settings = self.ctx.settings
        self.measurement.http = await http.fetch(
            self.target.url,
            ip=reachable,
            ids=self.ids,
            t0=self.t0,
            timeout=settings.timeouts.http,
            max_bytes=settings.max_bytes,
            context=self.ctx.ssl_context,
            source_address=settings.source_address,
            resolve=self.resolve,
            public_networks=settings.public_networks,
            connection=connection,
        )


async def _measure_steps(steps: _Steps, control: ControlFetcher | None) -> None:
    measurement, host, settings = steps.measurement, steps.host, steps.ctx.settings
    control_done = trio.Event()
    async with trio.open_nursery() as nursery:
        if control is not None:

            async def ask_control() -> None:
                try:
                    measurement.control = await control(steps.target.url)
                finally:
                    control_done.set()

            nursery.start_soon(ask_control)
        else:
            control_done.set()

        if is_ip(host):
            addresses = [host]
        else:
            measurement.dns = await _resolve_all(host, steps.ctx, steps.ids, steps.t0, steps.windows)
            addresses = _ordered_addresses(measurement.dns, settings.max_addresses)
        reachable = await steps.connect_all(addresses)
        if reachable is None and not is_ip(host):
            # None of the resolver's addresses worked: try the ones the control resolved,
            # as OONI does.  The site answering there while the resolver's addresses fail
            # is what tells DNS blocking from a site that is down.
            await control_done.wait()
            extra = _control_only_addresses(measurement, host, addresses, settings.max_addresses)
            if extra:
                reachable = await steps.connect_all(extra)
        if reachable is not None:
            await steps.fetch(reachable)


def _control_only_addresses(m: Measurement, host: str, tried: list[str], limit: int) -> list[str]:
    """The addresses the control resolved for ``host`` that the probe has not tried."""
    if m.control is None or m.control.failure is not None:
        return []
    found: list[str] = []
    for obs in m.control.dns:
        if obs.hostname.rstrip(".").lower() != host:
            continue
        for address in obs.addresses():
            if address not in tried and address not in found and is_ip(address):
                found.append(address)
    found.sort(key=ip_version)
    return found[:limit]


def _first_reachable(m: Measurement, https: bool) -> str | None:
    """The address for the HTTP fetch: first to complete TLS (or TCP for http URLs).

    When the certificate did not validate the handshake still completed at the
    transport level; the fetch then goes through that address anyway so that a
    blockpage behind an untrusted certificate is recorded as the HTTP failure httpx
    reports, as a browser would see it.
    """
    if https:
        for obs in m.tls:
            if obs.purpose == "target" and obs.failure is None:
                return obs.ip
        for obs in m.tls:
            if obs.purpose == "target" and obs.certificates:
                return obs.ip
        return None
    for tcp_obs in m.tcp:
        if tcp_obs.failure is None:
            return tcp_obs.ip
    return None

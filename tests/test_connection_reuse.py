"""One connection for the handshake and the fetch: counted at the lab's servers.

The probe hands the connection its TLS (or TCP) step completed to the HTTP fetch;
the record must be the one a separate connection gives, minus the round trips.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import pytest
import trio

from probe.lab.loopback import LoopbackLab, Scenario
from probe.lab.web_servers import Behaviour
from probe.measure import MeasurementContext, measure_url
from probe.records import HttpObservation, Measurement
from probe.steps import http
from probe.steps._ids import ObservationIds
from probe.targets import Target

#: The fields of an HTTP observation that do not depend on timing.
_TIMING = {"started", "finished"}


@pytest.fixture(scope="module")
def lab() -> Iterator[LoopbackLab]:
    with LoopbackLab() as running:
        yield running


def _untimed(observations: list[HttpObservation]) -> list[dict[str, object]]:
    return [{k: v for k, v in asdict(obs).items() if k not in _TIMING} for obs in observations]


async def _measure_and_refetch(lab: LoopbackLab, scenario: Scenario) -> tuple[Measurement, int, list]:
    """The measurement, the connections the site accepted for it, and the same fetch
    made the old way (its own connection) for comparison."""
    target = await trio.to_thread.run_sync(lab.add, scenario)
    ctx = MeasurementContext(lab.probe_settings())
    before = target.site.policy.accepted
    m = await measure_url(Target(target.url), ctx)
    accepted = target.site.policy.accepted - before
    separate = await http.fetch(
        target.url,
        ip=target.site.ip,
        ids=ObservationIds(),
        t0=trio.current_time(),
        timeout=ctx.settings.timeouts.http,
        max_bytes=ctx.settings.max_bytes,
        context=ctx.ssl_context,
        source_address=ctx.settings.source_address,
    )
    return m, accepted, separate


@pytest.mark.parametrize("https", [True, False], ids=["https", "http"])
async def test_one_connection_serves_handshake_and_fetch(lab: LoopbackLab, https: bool) -> None:
    """If a site is honest, then the probe opens one connection to it and records what a separate fetch records."""
    name = "reuse-tls" if https else "reuse-tcp"
    m, accepted, separate = await _measure_and_refetch(lab, Scenario(name, f"{name}.kg", https=https))
    assert accepted == 1
    assert [t.failure for t in m.tcp] == [None] and [t.failure for t in m.tls] == ([None] if https else [])
    assert m.http[0].status_code == 200 and m.http[0].title
    assert _untimed(m.http) == _untimed(separate)


async def test_blockpage_over_the_handed_over_connection(lab: LoopbackLab) -> None:
    """If a middlebox answers the request with a blockpage, then the one connection's record equals a separate fetch's."""
    scenario = Scenario("reuse-blockpage", "reuse-blockpage.kg", site=Behaviour.blockpage_200())
    m, accepted, separate = await _measure_and_refetch(lab, scenario)
    assert accepted == 1
    assert m.http[0].title == "Access denied"
    assert _untimed(m.http) == _untimed(separate)


async def test_reset_after_request_is_recorded_as_before(lab: LoopbackLab) -> None:
    """If the path resets once the request is sent, then the handed-over connection records the same failure."""
    scenario = Scenario(
        "reuse-host-reset", "reuse-host-reset.kg", site=Behaviour.host_reset("reuse-host-reset.kg")
    )
    m, accepted, separate = await _measure_and_refetch(lab, scenario)
    assert accepted == 1
    assert m.http[0].failure == "connection_reset"
    assert _untimed(m.http) == _untimed(separate)

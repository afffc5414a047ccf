"""DNS over HTTPS: the step against the lab's DoH server, and DoH as the run's DNS control."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio

from probe.control.doh import DohControl
from probe.lab.dns_server import Behaviour as DnsBehaviour
from probe.lab.loopback import LoopbackLab, Scenario
from probe.steps.doh import query_doh
from probe.steps.tls import make_ssl_context
from tests.conftest import kuzot


@pytest.fixture(scope="module")
def lab() -> LoopbackLab:
    with LoopbackLab() as running:
        running.add(Scenario("ok", "kaktus.media"))
        running.add(Scenario("nx", "24.kg", dns=DnsBehaviour.nxdomain()))
        yield running


async def _ask(lab: LoopbackLab, name: str, *, ca: bool = True, url: str | None = None) -> object:
    transport = httpx.AsyncHTTPTransport(verify=make_ssl_context(lab.ca_bundle if ca else None))
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
        return await query_doh(
            name,
            "A",
            url or lab.doh_url,
            obs_id="dns/0",
            t0=trio.current_time(),
            timeout=2,
            client=client,
            connect_ip=lab.doh_ip,
        )


async def test_doh_answers(lab: LoopbackLab) -> None:
    """If the DoH server knows the name, then its address is recorded with rcode NOERROR."""
    obs = await _ask(lab, "kaktus.media")
    assert obs.failure is None and obs.rcode == "NOERROR" and obs.transport == "doh"
    assert obs.addresses() == [lab.targets["ok"].site.ip]


async def test_doh_nxdomain_and_untrusted(lab: LoopbackLab) -> None:
    """If the name does not exist or the certificate is untrusted, then the DNS or TLS failure is recorded."""
    assert (await _ask(lab, "no-such.kg")).failure == "dns_nxdomain_error"
    assert (await _ask(lab, "kaktus.media", ca=False)).failure == "ssl_unknown_authority"


async def test_doh_wrong_path_is_misbehaving(lab: LoopbackLab) -> None:
    """If the DoH URL answers 404, then the failure is dns_server_misbehaving."""
    obs = await _ask(lab, "kaktus.media", url=lab.doh_url.replace("/dns-query", "/nope"))
    assert obs.failure == "dns_server_misbehaving"


async def test_doh_control_shape(lab: LoopbackLab) -> None:
    """If DoH is the control, then it gives A and AAAA observations with control/ ids and a doh: source."""
    control = DohControl(lab.doh_url, connect_ip=lab.doh_ip, ca_bundle=lab.ca_bundle, timeout=2)
    try:
        result = await control(lab.targets["ok"].url)
    finally:
        await control.aclose()
    assert result.source.startswith("doh:")
    assert [d.id for d in result.dns] == ["control/dns/0", "control/dns/1"]


def test_run_with_doh_control_judges_dns(lab: LoopbackLab, tmp_path: Path) -> None:
    """If a run has only a DoH control, then NXDOMAIN against a resolving control is blocked by DNS."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    args = lab.probe_args(control=False) + lab.doh_args()
    result = kuzot(
        "run", "--db", db, "--url", lab.targets["nx"].url, "--url", lab.targets["ok"].url, *args, "--quiet"
    )
    assert result.returncode == 0, result.stderr
    verdicts = {v["domain"]: v for v in json.loads(kuzot("verdicts", "--db", db, "--format", "json").stdout)}
    assert verdicts["24.kg"]["status"] == "blocked" and verdicts["24.kg"]["blocking"] == "dns"
    assert verdicts["kaktus.media"]["status"] == "accessible"

"""A DNS-only control: a public DNS-over-HTTPS resolver's answers for the target.

Used when no control helper is given.  The result has the same shape as a helper's
(:class:`ControlObservations`) with ``source`` ``"doh:<url>"``, which tells the verdict
rules that only DNS could be compared: they then say what they could not rule out.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import trio

from probe.control.choice import DEFAULT_DOH_URL
from probe.records import ControlObservations, DnsObservation
from probe.steps.doh import query_doh
from probe.steps.tls import make_ssl_context


class DohControl:
    def __init__(
        self,
        doh_url: str = DEFAULT_DOH_URL,
        *,
        connect_ip: str | None = None,
        ca_bundle: Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.doh_url = doh_url
        self.connect_ip = connect_ip
        self.timeout = timeout
        transport = httpx.AsyncHTTPTransport(verify=make_ssl_context(ca_bundle), retries=0)
        self._client = httpx.AsyncClient(transport=transport, timeout=None, trust_env=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __call__(self, url: str) -> ControlObservations:
        host = (urlsplit(url).hostname or "").lower()
        result = ControlObservations(source=f"doh:{self.doh_url}")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return result  # an address needs no resolving
        t0 = trio.current_time()
        observations: dict[str, DnsObservation] = {}

        async def ask(qtype: str, obs_id: str) -> None:
            observations[qtype] = await query_doh(
                host,
                qtype,
                self.doh_url,
                obs_id=obs_id,
                t0=t0,
                timeout=self.timeout,
                client=self._client,
                connect_ip=self.connect_ip,
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "A", "control/dns/0")
            nursery.start_soon(ask, "AAAA", "control/dns/1")
        result.dns = [observations["A"], observations["AAAA"]]
        return result

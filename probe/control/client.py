"""Ask a control helper about a URL, from inside a measurement.

A helper that cannot be reached is not an error of the measurement: the result is a
:class:`ControlObservations` whose ``failure`` says why, and the verdict then says
what it could not rule out.
"""

from __future__ import annotations

from typing import Any

import httpx

from probe.failures import Failure, classify_failure
from probe.records import ControlObservations, _build


class ControlClient:
    def __init__(self, helper_url: str, *, timeout: float = 90.0, source_address: str | None = None) -> None:
        self.endpoint = helper_url.rstrip("/")
        if not self.endpoint.endswith("/api/v1/control"):
            self.endpoint += "/api/v1/control"
        transport = httpx.AsyncHTTPTransport(local_address=source_address, retries=1)
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __call__(self, url: str) -> ControlObservations:
        try:
            response = await self._client.post(self.endpoint, json={"url": url})
        except httpx.HTTPError as exc:
            return ControlObservations(source=self.endpoint, failure=classify_failure(exc))
        if response.status_code != 200:
            return ControlObservations(source=self.endpoint, failure=Failure.UNKNOWN)
        try:
            data: dict[str, Any] = response.json()
            observations = _build(ControlObservations, data)
        except (ValueError, TypeError, KeyError):
            return ControlObservations(source=self.endpoint, failure=Failure.UNKNOWN)
        observations.source = self.endpoint
        return observations

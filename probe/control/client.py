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
            reason = _reason(response)
            return ControlObservations(
                source=self.endpoint, failure=refusal_failure(response.status_code, reason), reason=reason
            )
        try:
            data: dict[str, Any] = response.json()
            observations = _build(ControlObservations, data)
        except (ValueError, TypeError, KeyError, AttributeError):
            return ControlObservations(
                source=self.endpoint,
                failure=Failure.CONTROL_INVALID_RESPONSE,
                reason="the helper's answer is not a control measurement",
            )
        observations.source = self.endpoint
        return observations


#: Failures meaning the helper answered but would not measure the target.
REFUSALS = frozenset(
    {
        Failure.CONTROL_REFUSED_PRIVATE_ADDRESS,
        Failure.CONTROL_OVERLOADED,
        Failure.CONTROL_BAD_REQUEST,
        Failure.CONTROL_HTTP_ERROR,
        Failure.CONTROL_INVALID_RESPONSE,
    }
)

#: Longest helper reason kept in a record: the helper is not trusted to write essays.
MAX_REASON_CHARS = 300


def _reason(response: httpx.Response) -> str:
    """The helper's ``error`` field, or the HTTP status when it gave none."""
    try:
        data = response.json()
    except ValueError:
        data = None
    reason = data.get("error") if isinstance(data, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        reason = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return reason[:MAX_REASON_CHARS]


def refusal_failure(status: int, reason: str) -> Failure:
    """The failure string for a helper's non-200 answer (see probe/server/control/app.py).

    403 is the helper refusing a private or loopback target (without
    ``--allow-private-targets``); 503 and 429 are a full helper; 400, 413 and 422 are a
    request it could not use; 504 is a measurement that ran out of time.
    """
    if status == 403 and "private" in reason.lower():
        return Failure.CONTROL_REFUSED_PRIVATE_ADDRESS
    if status in (429, 503):
        return Failure.CONTROL_OVERLOADED
    if status in (400, 403, 413, 422):
        return Failure.CONTROL_BAD_REQUEST
    if status == 504:
        return Failure.GENERIC_TIMEOUT
    return Failure.CONTROL_HTTP_ERROR

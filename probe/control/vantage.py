"""Which network is this probe on?  Asked of the control helper (the probe's side).

The helper's side, which looks the address up and drops it, is
:mod:`probe.server.control.geolookup`; both read and write the answer with the helpers
here, so the probe stores only an AS number, a country and a network name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

PATH = "/api/v1/geolookup"


@dataclass(frozen=True, slots=True)
class Vantage:
    probe_asn: int | None
    probe_cc: str | None
    probe_network_name: str | None


def asn_number(record: dict[str, Any]) -> int | None:
    value = record.get("autonomous_system_number", record.get("asn"))
    if isinstance(value, str):
        value = value.strip().upper().removeprefix("AS")
        value = int(value) if value.isdigit() else None
    return value if isinstance(value, int) and 0 < value < 2**32 else None


def country_code(record: dict[str, Any]) -> str | None:
    country = record.get("country")
    code = country.get("iso_code") if isinstance(country, dict) else record.get("country_code", country)
    return code.upper() if isinstance(code, str) and len(code) == 2 and code.isalpha() else None


def network_name(record: dict[str, Any]) -> str | None:
    name = record.get("autonomous_system_organization", record.get("as_name"))
    return name.strip()[:200] or None if isinstance(name, str) else None


def ask_vantage(
    helper_url: str, *, timeout: float = 15.0, source_address: str | None = None
) -> Vantage | None:
    """The helper's answer, or None when it has none (no database, unreachable, nonsense)."""
    base = helper_url.rstrip("/").removesuffix("/api/v1/control")
    transport = httpx.HTTPTransport(local_address=source_address, retries=1)
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.get(base + PATH)
        if response.status_code != 200:
            return None
        data = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    vantage = Vantage(
        asn_number({"asn": data.get("probe_asn")}),
        country_code({"country_code": data.get("probe_cc")}),
        network_name({"as_name": data.get("probe_network_name")}),
    )
    return vantage if vantage.probe_asn is not None else None


__all__ = ["PATH", "Vantage", "ask_vantage", "asn_number", "country_code", "network_name"]

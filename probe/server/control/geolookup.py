"""Which network is the probe on?  Asked of the control helper, answered without the address.

Why the helper: a probe cannot see its own public address behind NAT, and a volunteer
should not have to know their AS number.  The helper sees the address anyway when the
probe connects, so with an ASN database (MaxMind GeoLite2-ASN format, the ``asn``
extra) it answers ``GET /api/v1/geolookup`` with only the AS number, the country and
the network's name, as OONI's probe services do.  The address is looked up and
dropped: it is never in the answer, a log or a record, and the probe stores only what
the answer says (``asn_source = "control-helper"`` in the run's options).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PATH = "/api/v1/geolookup"


@dataclass(frozen=True, slots=True)
class Vantage:
    probe_asn: int | None
    probe_cc: str | None
    probe_network_name: str | None


def _asn(record: dict[str, Any]) -> int | None:
    value = record.get("autonomous_system_number", record.get("asn"))
    if isinstance(value, str):
        value = value.strip().upper().removeprefix("AS")
        value = int(value) if value.isdigit() else None
    return value if isinstance(value, int) and 0 < value < 2**32 else None


def _country(record: dict[str, Any]) -> str | None:
    country = record.get("country")
    code = country.get("iso_code") if isinstance(country, dict) else record.get("country_code", country)
    return code.upper() if isinstance(code, str) and len(code) == 2 and code.isalpha() else None


def _name(record: dict[str, Any]) -> str | None:
    name = record.get("autonomous_system_organization", record.get("as_name"))
    return name.strip()[:200] or None if isinstance(name, str) else None


class GeoLookup:
    """AS number, country and network name of an address, from MaxMind-format databases
    (one with ASNs, optionally one with countries; a combined database serves both)."""

    def __init__(self, asn_db: Path, country_db: Path | None = None, *, header: str | None = None) -> None:
        try:
            import maxminddb
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("--asn-db needs the maxminddb package: pip install 'kuzot[asn]'") from exc
        self._asn = maxminddb.open_database(str(asn_db))
        self._country = maxminddb.open_database(str(country_db)) if country_db else None
        self._header = header

    def lookup(self, address: str) -> Vantage:
        def get(reader: Any) -> dict[str, Any]:
            try:
                found = reader.get(address)
            except ValueError:
                return {}
            return found if isinstance(found, dict) else {}

        record = get(self._asn)
        country = get(self._country) if self._country is not None else record
        return Vantage(_asn(record), _country(country) or _country(record), _name(record))

    def route(self) -> Route:
        async def geolookup(request: Request) -> JSONResponse:
            # The one place the helper looks at a client address: used for this look-up
            # and dropped when the function returns.
            if self._header:
                address = request.headers.get(self._header, "").split(",")[-1].strip()
            else:
                client = request.scope.get("client")
                address = client[0] if client else ""
            vantage = self.lookup(address) if address else Vantage(None, None, None)
            return JSONResponse(
                {
                    "probe_asn": vantage.probe_asn,
                    "probe_cc": vantage.probe_cc,
                    "probe_network_name": vantage.probe_network_name,
                },
                headers={"Cache-Control": "no-store"},
            )

        return Route(PATH, geolookup, methods=["GET"])


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
    vantage = Vantage(_asn({"asn": data.get("probe_asn")}), _country({"country_code": data.get("probe_cc")}),
                      _name({"as_name": data.get("probe_network_name")}))  # fmt: skip
    return vantage if vantage.probe_asn is not None else None


__all__ = ["PATH", "GeoLookup", "Vantage", "ask_vantage"]

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

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from probe.control.vantage import PATH, Vantage, ask_vantage, asn_number, country_code, network_name


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
        code = country_code(country) or country_code(record)
        return Vantage(asn_number(record), code, network_name(record))

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


__all__ = ["PATH", "GeoLookup", "Vantage", "ask_vantage"]

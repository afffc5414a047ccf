"""Where each measurement of a report comes from: real or simulated, which network,
which control, and where OONI published it.

Why a separate pass over the records: a verdict says what a measurement means, this
says whether it may be cited at all.  A simulated or lab measurement must never pass
for a real one, so anything that marks one as such is collected here, once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from probe.records import Measurement

#: AS numbers reserved for private use (RFC 6996) and documentation (RFC 5398): no real
#: ISP announces them, so a measurement that names one comes from a lab.
_PRIVATE_ASNS = ((64496, 64511), (64512, 65534), (65536, 65551), (4200000000, 4294967294))


def _private_asn(asn: int | None) -> bool:
    return asn is not None and any(lo <= asn <= hi for lo, hi in _PRIVATE_ASNS)


def simulation_reason(m: Measurement) -> str | None:
    """Why ``m`` is not a real observation (None when nothing says so)."""
    notes = m.annotations or {}
    if notes.get("simulated_clock") == "true":
        return "simulated clock"
    if notes.get("synthetic") == "true":
        return "synthetic"
    if notes.get("lab") not in (None, "", "false"):
        return "lab"
    if _private_asn(m.probe_asn):
        return "private-use AS number"
    return None


def ooni_explorer_url(annotations: dict[str, str] | None) -> str | None:
    """The measurement's page on OONI Explorer, for records imported from OONI.

    A local stand-in for ``analysis.provenance.ooni_explorer_url`` (issue 17); the merge
    should keep theirs and make this a re-export."""
    uid = (annotations or {}).get("ooni.measurement_uid", "").strip()
    if not uid or not all(c.isascii() and (c.isalnum() or c in "._-") for c in uid):
        return None
    return f"https://explorer.ooni.org/m/{uid}"


@dataclass(frozen=True, slots=True)
class Source:
    measurement_id: str
    simulated: str | None
    probe_network: str | None
    control: str | None  # "helper", "doh" or None
    ooni_url: str | None


def source_of(m: Measurement) -> Source:
    control = None
    if m.control is not None and m.control.failure is None:
        control = "doh" if m.control.source.startswith("doh:") else "helper"
    return Source(m.id, simulation_reason(m), m.probe_network, control, ooni_explorer_url(m.annotations))


@dataclass(frozen=True)
class Provenance:
    """What a report's measurements have in common, for its banner and its method text."""

    sources: dict[str, Source]

    @classmethod
    def of(cls, measurements: Iterable[Measurement]) -> Provenance:
        return cls({m.id: source_of(m) for m in measurements})

    def simulated(self, ids: Iterable[str]) -> list[str]:
        return [i for i in ids if self.sources[i].simulated]

    def reasons(self, ids: Iterable[str]) -> list[str]:
        return sorted({r for i in ids if (r := self.sources[i].simulated)})

    def controls(self, ids: Iterable[str]) -> set[str]:
        return {c for i in ids if (c := self.sources[i].control)}

    def network_name(self, ids: Iterable[str]) -> str | None:
        """The name the measurements most often recorded for their network."""
        names = Counter(n.strip() for i in ids if (n := self.sources[i].probe_network) and n.strip())
        return names.most_common(1)[0][0] if names else None


__all__ = ["Provenance", "Source", "ooni_explorer_url", "simulation_reason", "source_of"]

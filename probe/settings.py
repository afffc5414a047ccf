"""What a measurement needs to know about its vantage and limits (data only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: Decoded bytes read per page unless the caller says otherwise (``--max-body-bytes``):
#: enough for any news site's front page, and a bound on what a hostile one costs.
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-step limits, in seconds.  Each step enforces its own with a cancel scope."""

    dns: float = 5.0
    connect: float = 8.0
    tls: float = 10.0
    http: float = 20.0

    @classmethod
    def scaled(cls, base: float) -> Timeouts:
        """One knob for tests and slow links: ``--timeout`` sets the connect limit, the rest follow."""
        return cls(dns=base * 0.6, connect=base, tls=base * 1.25, http=base * 2.5)


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    resolvers: tuple[tuple[str, int], ...] = ()
    system_resolver: bool = True
    ca_bundle: Path | None = None
    source_address: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    #: How long to keep listening after the first UDP reply, to catch injected replies.
    dns_window: float = 0.3
    #: At most this many resolved addresses get a TCP connect and a TLS handshake.
    max_addresses: int = 4
    max_bytes: int = MAX_BODY_BYTES
    #: SNI for the comparison handshake that separates SNI filtering from IP blocking.
    comparison_sni: str | None = "www.example.com"
    probe_asn: int | None = None
    probe_cc: str | None = None
    probe_network: str | None = None
    #: Seconds added to the clock when recording times.  Only labs and ``kuzot demo`` set
    #: it, to replay "a day" in minutes; every measurement taken so is annotated
    #: ``simulated_clock=true`` so it can never pass for a real observation.
    clock_offset: float = 0.0
    #: Networks (CIDR) that count as public for the HTTP step's redirect rule (no hop
    #: from a public address into a non-global one).  Only labs set it, whose sites all
    #: live on loopback: it can only make the probe follow fewer redirects, never more.
    public_networks: tuple[str, ...] = ()

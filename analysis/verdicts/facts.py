"""What a measurement shows, computed once: the views of it every rule needs.

Why one place: "the probe's own addresses", "the control's final page" or "a
handshake that validated" must mean the same thing in every layer's rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from analysis.asn import AsnLookup
from analysis.bogons import parse_address
from analysis.fingerprints import Fingerprint, FingerprintSet
from probe.failures import CERTIFICATE_FAILURES, Failure
from probe.records import ControlObservations, DnsObservation, HttpObservation, Measurement, TlsObservation

#: DNS failures that are an answer (the resolver said "no"), as opposed to silence.
DNS_REFUSALS = frozenset(
    {
        Failure.DNS_NXDOMAIN,
        Failure.DNS_NO_ANSWER,
        Failure.DNS_SERVER_FAILURE,
        Failure.DNS_REFUSED,
        Failure.DNS_NON_RECOVERABLE,
        Failure.DNS_BOGUS_RESPONSE,
    }
)


def host_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def final_response(chain: Sequence[HttpObservation]) -> HttpObservation | None:
    return chain[-1] if chain else None


def answered(obs: HttpObservation | None) -> bool:
    return obs is not None and obs.failure is None and obs.status_code is not None


def page_ok(obs: HttpObservation | None) -> bool:
    """The server answered with a page (not a 5xx)."""
    return answered(obs) and obs is not None and obs.status_code is not None and obs.status_code < 500


def is_2xx(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def handshake_done(obs: TlsObservation) -> bool:
    """The server answered the ClientHello (even with a certificate we do not trust)."""
    return obs.failure is None or bool(obs.certificates) or obs.failure in CERTIFICATE_FAILURES


def leaf_sha256(obs: TlsObservation) -> str | None:
    return obs.certificates[0].sha256 if obs.certificates else None


@dataclass
class Facts:
    """The views of one measurement every rule needs, computed once."""

    m: Measurement
    fingerprints: FingerprintSet
    host: str
    ip_literal: bool
    dns: list[DnsObservation]
    probe_addresses: list[str]
    control: ControlObservations | None  # None: no usable control at all
    control_full: bool  # the helper answered (not only a DNS-over-HTTPS control)
    control_dns: list[DnsObservation]
    control_addresses: list[str]
    final: HttpObservation | None
    control_final: HttpObservation | None
    #: ``ip -> AS number`` from an ASN database, when one is configured.
    asns: AsnLookup | None = None

    @classmethod
    def of(cls, m: Measurement, fingerprints: FingerprintSet, asns: AsnLookup | None = None) -> Facts:
        host = host_name(m.domain or (urlsplit(m.url).hostname or ""))
        control = m.control if m.control is not None and m.control.failure is None else None
        full = control is not None and not control.source.startswith("doh:")
        dns = [o for o in m.dns if host_name(o.hostname) == host]
        control_dns = [o for o in control.dns if host_name(o.hostname) == host] if control else []
        return cls(
            m=m,
            fingerprints=fingerprints,
            host=host,
            ip_literal=parse_address(host) is not None,
            dns=dns,
            probe_addresses=unique(a for o in dns for a in o.addresses()),
            control=control,
            control_full=full,
            control_dns=control_dns,
            control_addresses=unique(a for o in control_dns for a in o.addresses()),
            final=final_response(m.http),
            control_final=final_response(control.http) if control is not None and full else None,
            asns=asns,
        )

    # DNS ------------------------------------------------------------------------------

    @property
    def has_dns_control(self) -> bool:
        return bool(self.control_dns)

    def control_dns_ids(self) -> list[str]:
        return [o.id for o in self.control_dns]

    def dns_disjoint(self) -> bool:
        """No address in common with the control, both non-empty, and (with an ASN
        database) no answer in a network the control's answers are in: OONI's
        "inconsistent" before its TLS check."""
        return (
            bool(self.probe_addresses)
            and bool(self.control_addresses)
            and not set(self.probe_addresses) & set(self.control_addresses)
            and not self.shared_asns()
        )

    def shared_asns(self) -> set[int]:
        """AS numbers both the probe's and the control's answers are in (empty without
        an ASN database)."""
        if self.asns is None:
            return set()
        lookup = self.asns
        ours = {n for a in self.probe_addresses if (n := lookup(a)) is not None}
        theirs = {n for a in self.control_addresses if (n := lookup(a)) is not None}
        return ours & theirs

    def tls_validated_ids(self) -> list[str]:
        """Handshakes for the site's own name, to the probe's own addresses, that validated."""
        addresses = set(self.probe_addresses)
        return [
            o.id
            for o in self.m.tls
            if o.purpose == "target" and o.validated is True and (not addresses or o.ip in addresses)
        ]

    def dns_suspicious(self) -> bool:
        """Answers that are not the site's: disjoint from the control's and not validated by TLS."""
        return self.dns_disjoint() and not self.tls_validated_ids()

    # HTTP -----------------------------------------------------------------------------

    def http_fingerprint(self, *, confirming: bool) -> tuple[HttpObservation, Fingerprint] | None:
        """The first response in the probe's chain matching a blockpage fingerprint
        (``confirming``: a real blockpage row, whatever its country; else a vague-word
        hint) that the control's responses do not match (the control keeps headers, not
        bodies).  A response that also matches a known false positive (scope ``fp``) is
        not a blockpage: the ``fp`` row exists to stop exactly that match."""
        control_chain = self.control.http if self.control is not None else []
        for obs in self.m.http:
            matches = self.fingerprints.match_http_all(obs)
            if any(fp.is_false_positive for fp in matches):
                continue
            for fp in matches:
                if fp.is_false_positive or fp.confirms != confirming:
                    continue
                if any(fp in self.fingerprints.match_http_all(c) for c in control_chain):
                    continue
                return obs, fp
        return None

    def false_positive_page(self, obs: HttpObservation) -> Fingerprint | None:
        """A known-false-positive fingerprint (scope ``fp``) the response matches, if any."""
        return next((fp for fp in self.fingerprints.match_http_all(obs) if fp.is_false_positive), None)

    # TLS ------------------------------------------------------------------------------

    def authenticated(self, obs: HttpObservation) -> tuple[TlsObservation, TlsObservation | None] | None:
        """The probe's validated handshake behind an HTTPS response for the site's own
        name, with the control's handshake that saw the very same certificate (``None``
        when the control saw another one, or none).

        A response over TLS that validates for the name cannot come from a middlebox
        (short of a trust store the censor controls, which the second element rules
        out): it is the site's own answer, whatever its status.
        """
        parts = urlsplit(obs.url)
        if parts.scheme != "https" or host_name(parts.hostname or "") != self.host or obs.ip is None:
            return None
        mine = [
            o
            for o in self.m.tls
            if o.purpose == "target"
            and o.ip == obs.ip
            and o.validated is True
            and host_name(o.server_name) == self.host
        ]
        if not mine:
            return None
        leaf = leaf_sha256(mine[0])
        control_tls = self.control.tls if self.control is not None else []
        same = [c for c in control_tls if c.validated is True and leaf is not None and leaf_sha256(c) == leaf]
        return mine[0], (same[0] if same else None)


def control_only_addresses(f: Facts) -> list[str]:
    return [a for a in f.control_addresses if a not in set(f.probe_addresses)]


def own_addresses_failed(f: Facts) -> list[Any]:
    """The probe's failed connects (and, for HTTPS, handshakes) to every address its
    resolver gave; empty when any of them worked."""
    own = set(f.probe_addresses)
    tcp_own = [o for o in f.m.tcp if o.ip in own]
    if not tcp_own:
        return []
    failed_tcp = [o for o in tcp_own if o.failure is not None]
    reached = {o.ip for o in tcp_own if o.failure is None}
    if not reached:
        return failed_tcp
    if urlsplit(f.m.url).scheme != "https":
        return []
    tls_own = [o for o in f.m.tls if o.ip in reached and o.purpose == "target"]
    if any(o.failure is None for o in tls_own):
        return []
    if all(any(t.ip == ip for t in tls_own) for ip in reached):
        return [*failed_tcp, *tls_own]
    return []

"""The order of precedence: which rule decides a measurement, and the public entry points.

See :mod:`analysis.verdicts` for the principles behind the order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from analysis.asn import AsnLookup, default_lookup
from analysis.bogons import parse_address, special_kind
from analysis.fingerprints import Fingerprint, FingerprintSet
from analysis.verdicts.rules import RULES, RULES_VERSION, Blocking, Status
from probe.failures import Failure
from probe.records import (
    ControlObservations,
    DnsObservation,
    HttpObservation,
    Measurement,
    TcpObservation,
    TlsObservation,
    format_time,
)

#: OONI's threshold: bodies "match" when the smaller is over 0.7 of the larger.
BODY_PROPORTION_THRESHOLD = 0.7
#: OONI compares the first word of ``<title>`` only when it is longer than this.
TITLE_WORD_MIN = 5

#: Failures of a TLS handshake that show a certificate was presented but not trusted.
CERTIFICATE_FAILURES = frozenset(
    {Failure.SSL_UNKNOWN_AUTHORITY, Failure.SSL_INVALID_HOSTNAME, Failure.SSL_INVALID_CERTIFICATE}
)
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

# OONI's list of headers every server sends; only the others say which software answered.
_COMMON_HEADERS = frozenset(
    {
        "date",
        "content-type",
        "server",
        "cache-control",
        "vary",
        "set-cookie",
        "location",
        "expires",
        "x-powered-by",
        "content-encoding",
        "last-modified",
        "accept-ranges",
        "pragma",
        "x-frame-options",
        "etag",
        "x-content-type-options",
        "age",
        "via",
        "p3p",
        "x-xss-protection",
        "content-language",
        "cf-ray",
        "strict-transport-security",
        "link",
        "x-varnish",
        "content-length",
        "connection",
        "transfer-encoding",
        "keep-alive",
    }
)


# --- the verdict -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one measurement says about one URL, with the rule and observations behind it."""

    measurement_id: str
    url: str
    domain: str
    probe_asn: int | None
    measured_at: datetime
    status: Status
    blocking: Blocking | None
    confirmed: bool
    reason: str
    rule_id: str
    rules_version: str
    observation_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values; ``measured_at`` as ISO 8601 UTC with ``Z``."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["measured_at"] = format_time(self.measured_at)
        data["observation_ids"] = list(self.observation_ids)
        return data


VERDICT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Verdict))


@dataclass(frozen=True, slots=True)
class _Decision:
    rule_id: str
    reason: str
    observation_ids: tuple[str, ...] = ()
    #: For DNS lies: the addresses that are not the site's.
    addresses: frozenset[str] = frozenset()


def _make(m: Measurement, decision: _Decision) -> Verdict:
    rule = RULES[decision.rule_id]
    seen: dict[str, None] = dict.fromkeys(decision.observation_ids)
    return Verdict(
        measurement_id=m.id,
        url=m.url,
        domain=m.domain,
        probe_asn=m.probe_asn,
        measured_at=m.started_at.astimezone(UTC),
        status=rule.status,
        blocking=rule.blocking,
        confirmed=rule.confirmed,
        reason=decision.reason[:1].upper() + decision.reason[1:],
        rule_id=rule.id,
        rules_version=RULES_VERSION,
        observation_ids=list(seen),
    )


# --- what a measurement shows, precomputed -------------------------------------------------


def _host(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _final(chain: Sequence[HttpObservation]) -> HttpObservation | None:
    return chain[-1] if chain else None


def _answered(obs: HttpObservation | None) -> bool:
    return obs is not None and obs.failure is None and obs.status_code is not None


def _ok(obs: HttpObservation | None) -> bool:
    """The server answered with a page (not a 5xx)."""
    return _answered(obs) and obs is not None and obs.status_code is not None and obs.status_code < 500


def _is_2xx(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def _handshake_done(obs: TlsObservation) -> bool:
    """The server answered the ClientHello (even with a certificate we do not trust)."""
    return obs.failure is None or bool(obs.certificates) or obs.failure in CERTIFICATE_FAILURES


def _leaf(obs: TlsObservation) -> str | None:
    return obs.certificates[0].sha256 if obs.certificates else None


@dataclass
class _Facts:
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
    def of(cls, m: Measurement, fingerprints: FingerprintSet, asns: AsnLookup | None = None) -> _Facts:
        host = _host(m.domain or (urlsplit(m.url).hostname or ""))
        control = m.control if m.control is not None and m.control.failure is None else None
        full = control is not None and not control.source.startswith("doh:")
        dns = [o for o in m.dns if _host(o.hostname) == host]
        control_dns = [o for o in control.dns if _host(o.hostname) == host] if control else []
        return cls(
            m=m,
            fingerprints=fingerprints,
            host=host,
            ip_literal=parse_address(host) is not None,
            dns=dns,
            probe_addresses=_unique(a for o in dns for a in o.addresses()),
            control=control,
            control_full=full,
            control_dns=control_dns,
            control_addresses=_unique(a for o in control_dns for a in o.addresses()),
            final=_final(m.http),
            control_final=_final(control.http) if control is not None and full else None,
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
        if parts.scheme != "https" or _host(parts.hostname or "") != self.host or obs.ip is None:
            return None
        mine = [
            o
            for o in self.m.tls
            if o.purpose == "target"
            and o.ip == obs.ip
            and o.validated is True
            and _host(o.server_name) == self.host
        ]
        if not mine:
            return None
        leaf = _leaf(mine[0])
        control_tls = self.control.tls if self.control is not None else []
        same = [c for c in control_tls if c.validated is True and leaf is not None and _leaf(c) == leaf]
        return mine[0], (same[0] if same else None)


# --- comparisons (OONI Web Connectivity) ---------------------------------------------------


def body_proportion(a: int, b: int) -> float:
    """smaller/larger; 1.0 when both are empty."""
    small, large = sorted((a, b))
    return 1.0 if large == 0 else small / large


def _first_word(title: str | None) -> str | None:
    if not title:
        return None
    words = title.split()
    return words[0].lower() if words else None


def title_match(probe_title: str | None, control_title: str | None) -> bool | None:
    """OONI's title check: compare the first word of ``<title>`` when the control's is
    longer than 5 characters; ``None`` when the titles say nothing (no control title or a
    short first word)."""
    control_word = _first_word(control_title)
    if control_word is None or len(control_word) <= TITLE_WORD_MIN:
        return None
    return _first_word(probe_title) == control_word


def _is_html(obs: HttpObservation) -> bool:
    """Whether the recorded body is an HTML document: only then does a missing ``<title>``
    make a different page (a bare or placeholder body without markup says nothing)."""
    head = obs.body_sample[:2048].lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<?xml")) or b"<head" in head or b"<body" in head


def headers_match(probe: HttpObservation, control: HttpObservation) -> bool:
    """OONI's check: every uncommon header name appears on both sides."""
    ours = {k.lower() for k, _ in probe.headers} - _COMMON_HEADERS
    theirs = {k.lower() for k, _ in control.headers} - _COMMON_HEADERS
    return ours == theirs


@dataclass(frozen=True, slots=True)
class HttpDiff:
    """How the probe's final response differs from the control's."""

    status_mismatch: bool
    body_proportion: float
    body_mismatch: bool
    title_match: bool | None
    headers_match: bool

    @property
    def title_mismatch(self) -> bool:
        return self.title_match is False

    @property
    def blocking(self) -> bool:
        """Several signals agree: a status the control did not get, or body and title both differ."""
        return self.status_mismatch or (self.body_mismatch and self.title_mismatch)

    @property
    def any(self) -> bool:
        return self.status_mismatch or self.body_mismatch or self.title_mismatch


def compare_http(probe: HttpObservation, control: HttpObservation) -> HttpDiff:
    """Compare two final responses.  A status mismatch counts only when the probe's status
    is not 2xx: a probe that got its 200 reached the site whatever the control got."""
    status_mismatch = probe.status_code != control.status_code and not _is_2xx(probe.status_code)
    # A probe body cut at the byte cap is at least that long: never a blockpage, and its
    # length says nothing about the real page's (an imported OONI probe body may be cut
    # where the control's never is).  A truncated control only makes the ratio an upper
    # bound, so a small probe body still counts as a mismatch.
    proportion = 1.0 if probe.body_truncated else body_proportion(probe.body_length, control.body_length)
    return HttpDiff(
        status_mismatch=status_mismatch,
        body_proportion=proportion,
        body_mismatch=proportion <= BODY_PROPORTION_THRESHOLD,
        title_match=title_match(probe.title, control.title) if _is_html(probe) or probe.title else None,
        headers_match=headers_match(probe, control),
    )


# --- words for reasons ------------------------------------------------------------------------


def _resolver(obs: DnsObservation) -> str:
    return (
        "the system resolver" if obs.transport == "system" else f"resolver {obs.resolver} ({obs.transport})"
    )


def _list(values: Iterable[str], limit: int = 3) -> str:
    items = list(values)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _ids(observations: Iterable[Any]) -> str:
    return ", ".join(o.id for o in observations)


def _failure(obs: Any) -> str:
    return str(obs.failure) if obs.failure is not None else "no failure"


def _control_failure_words(f: _Facts) -> str:
    final = f.control_final
    if final is None:
        return "the control loaded no page"
    if final.failure is not None:
        return f"the control's request failed too ({final.failure}, {final.id})"
    return f"the control got status {final.status_code} ({final.id})"


def _no_control_words(m: Measurement) -> str:
    if m.control is None:
        return "no control measurement was made"
    if m.control.failure is not None:
        return f"the control helper could not be asked ({m.control.failure})"
    return "only a DNS control was available"


# --- the rules, in order -----------------------------------------------------------------------


def _dns_lie(f: _Facts) -> _Decision | None:
    """Injected replies, known blockpage addresses, bogons: answers that are not the site's."""
    if f.ip_literal:
        return None
    control_set = set(f.control_addresses)
    ctrl_ids = f.control_dns_ids()
    # Injection: one query, two replies that disagree.
    for obs in f.dns:
        first = set(obs.addresses())
        for extra in obs.extra_responses:
            later = {a.value for a in extra.answers if a.rrtype in ("A", "AAAA")}
            if later == first and extra.rcode == (obs.rcode or extra.rcode):
                continue
            shown = _list(sorted(first)) or (obs.rcode or "no address")
            fps = [
                fp
                for a in first
                if (fp := f.fingerprints.match_dns(a)) is not None and fp.confirms_in(f.m.probe_cc)
            ]
            words = (
                f"{_resolver(obs)} sent two different replies to one query for {f.host} ({obs.id}): "
                f"first {shown}, then {_list(sorted(later)) or extra.rcode}"
            )
            if fps:
                return _Decision(
                    "dns.injected_blockpage_address",
                    f"{words}; the first is a known blockpage address ({fps[0].name}), "
                    "the mark of an on-path injector.",
                    (obs.id, *ctrl_ids),
                    frozenset(first - later),
                )
            if f.has_dns_control:
                return _Decision(
                    "dns.injected_reply",
                    f"{words}, while the control resolved it to {_list(f.control_addresses) or 'no address'}"
                    f" ({_ids(f.control_dns)}): an on-path injector raced the real resolver.",
                    (obs.id, *ctrl_ids),
                    frozenset(first - later - control_set),
                )
            return _Decision(
                "dns.injected_reply_unverified",
                f"{words}, but without a DNS control it cannot be ruled out that the resolver itself "
                "answers inconsistently.",
                (obs.id,),
                frozenset(first - later),
            )
    # Known blockpage addresses.
    for obs in f.dns:
        for address in [a.value for a in obs.answers]:
            fp = f.fingerprints.match_dns(address)
            if fp is None or fp.is_false_positive or address in control_set:
                continue
            if fp.confirms:
                fits = fp.confirms_in(f.m.probe_cc)
                return _Decision(
                    "dns.blockpage_address" if fits else "dns.blockpage_address_unconfirmed",
                    f"{_resolver(obs)} answered {address} for {f.host} ({obs.id}), a known blockpage "
                    f"address ({fp.name})"
                    + ("." if fits else f"{_elsewhere_words(fp, f.m.probe_cc)}."),
                    (obs.id, *ctrl_ids),
                    frozenset({address}),
                )
            if special_kind(address) and any(special_kind(c) for c in control_set):
                continue  # a vague "0.0.0.0" or "127.0.0.1" where the control's internet is private too
            if f.has_dns_control:
                return _Decision(
                    "dns.vague_blockpage_address",
                    f"{_resolver(obs)} answered {address} for {f.host} ({obs.id}), an address commonly "
                    f"used to block ({fp.name}), while the control resolved it to "
                    f"{_list(f.control_addresses) or 'no address'} ({_ids(f.control_dns)}).",
                    (obs.id, *ctrl_ids),
                    frozenset({address}),
                )
    # Bogons, only when the control's answers are all public (the lab lives on 127/8).
    if f.control_addresses and not any(special_kind(a) for a in f.control_addresses):
        for obs in f.dns:
            for address in obs.addresses():
                kind = special_kind(address)
                if kind is not None:
                    return _Decision(
                        "dns.bogon_answer",
                        f"{_resolver(obs)} answered the {kind} address {address} for {f.host} ({obs.id}), "
                        f"while the control resolved it to public addresses "
                        f"{_list(f.control_addresses)} ({_ids(f.control_dns)}).",
                        (obs.id, *ctrl_ids),
                        frozenset({address}),
                    )
    return None


def _http_blockpage(f: _Facts) -> _Decision | None:
    found = f.http_fingerprint(confirming=True)
    if found is None:
        return None
    obs, fp = found
    where = "page" if fp.location_found == "body" else f"{fp.location_found.removeprefix('header.')} header"
    fits = fp.confirms_in(f.m.probe_cc)
    served_from_lie = (
        obs.ip is not None and obs.ip in f.probe_addresses and obs.ip not in f.control_addresses
    ) and (f.dns_suspicious() or _ghost_dns(f) is not None)
    ids = (obs.id, *(o.id for o in f.m.http[: f.m.http.index(obs)]))
    if served_from_lie and fits:
        return _Decision(
            "dns.blockpage_served",
            f"The response from {obs.ip} ({obs.id}) matches the blockpage fingerprint {fp.name} in its "
            f"{where}, and that address came only from the probe's DNS ({_ids(f.dns)}), not the control's.",
            (*ids, *(o.id for o in f.dns), *f.control_dns_ids()),
        )
    if not fits:
        return _Decision(
            "http.blockpage_fingerprint_unconfirmed",
            f"The response to {obs.url} ({obs.id}) matches the blockpage fingerprint {fp.name} in its "
            f"{where}{_elsewhere_words(fp, f.m.probe_cc)}.",
            ids,
        )
    return _Decision(
        "http.blockpage_fingerprint",
        f"The response to {obs.url} ({obs.id}) matches the blockpage fingerprint {fp.name} in its {where}.",
        ids,
    )


def _elsewhere_words(fp: Fingerprint, probe_cc: str | None) -> str:
    """Why a blockpage match is not proof of blocking by the probe's state or ISP."""
    if fp.expected_countries:
        return (
            f"; that fingerprint is known from {_list(fp.expected_countries)}, not from "
            f"{probe_cc or 'an unknown country'}, so this is not confirmed"
        )
    return (
        f"; that fingerprint (scope {fp.scope}) is a product also used by companies and schools, "
        "so a block by the ISP is not confirmed"
    )


def _answered_page(f: _Facts, lie: _Decision | None) -> _Decision | None:
    """The probe's final request got an answer: compare it with the control's, if any."""
    final, control = f.final, f.control_final
    if final is None or not _answered(final):
        return None
    probe_ids = [o.id for o in f.m.http]
    control_ids = [o.id for o in f.control.http] if f.control is not None else []
    unresolved = _unresolved_but_reached(f, final)
    if unresolved is not None:
        return unresolved
    if final.status_code is not None and final.status_code >= 500:
        if _answered(control) and control is not None and control.status_code is not None:
            if control.status_code >= 500:
                return _Decision(
                    "http.server_error_everywhere",
                    f"The server answered status {final.status_code} to the probe ({final.id}) and "
                    f"{control.status_code} to the control ({control.id}): the site is failing for everyone.",
                    (*probe_ids, *control_ids),
                )
        elif f.control_full:
            return _Decision(
                "control.also_failed",
                f"The server answered status {final.status_code} to the probe ({final.id}) and "
                f"{_control_failure_words(f)}: the site is failing for everyone.",
                (*probe_ids, *control_ids),
            )
        else:
            return _Decision(
                "http.server_error_without_control",
                f"The server answered status {final.status_code} to the probe ({final.id}), but "
                f"{_no_control_words(f.m)}, so a server fault cannot be told from a block.",
                tuple(probe_ids),
            )
    comparable = _ok(control) and control is not None
    if comparable and control is not None and _is_2xx(final.status_code) and not _is_2xx(control.status_code):
        comparable = False  # the control got no page (a 403 challenge, say): the probe's 200 stands
    if not comparable or control is None:
        if lie is not None:
            if any(o.ip in lie.addresses for o in f.m.http):
                # Nothing to compare the page with, and it came from an address that is not the site's.
                return _Decision(lie.rule_id, lie.reason, (*lie.observation_ids, *probe_ids), lie.addresses)
            return _bypassed(f, lie, final)
        ghost = _ghost_dns(f)
        if ghost is not None:
            return ghost
        without = _no_control_words(f.m) if not f.control_full else _control_failure_words(f)
        return _Decision(
            "http.reached_without_control_page",
            f"The probe loaded {final.url} with status {final.status_code} ({final.id}) and no blockpage "
            f"fingerprint matched; {without}.",
            (*probe_ids, *control_ids),
        )
    diff = compare_http(final, control)
    both = (*probe_ids, *control_ids)
    if diff.any and lie is not None:
        return lie
    via_control = _reached_through_control_addresses(f, final, diff)
    if via_control is not None:
        return via_control
    if diff.any:
        hint = f.http_fingerprint(confirming=False)
        false_positive = f.false_positive_page(final)
        if false_positive is not None and (diff.blocking or hint is not None):
            # A known false positive may stop a differing page from counting as a
            # blockpage; it never demotes a page the rules below find consistent.
            return _Decision(
                "http.known_false_positive_page",
                f"The probe's page ({final.id}) differs from the control's ({control.id}) but matches "
                f"{false_positive.name}, a page known not to be a blockpage.",
                both,
            )
        if diff.blocking:
            authenticated = _authenticated_answer(f, final, control, diff)
            if authenticated is not None:
                return authenticated
            signals = _diff_words(diff, final, control)
            if f.dns_suspicious():
                return _Decision(
                    "dns.inconsistent_then_http_diff",
                    f"The probe's DNS answers {_list(f.probe_addresses)} ({_ids(f.dns)}) share no address "
                    f"with the control's {_list(f.control_addresses)} and the page served from them "
                    f"({final.id}) differs from the control's ({control.id}): {signals}.",
                    (*both, *(o.id for o in f.dns), *f.control_dns_ids()),
                )
            if not diff.status_mismatch and _same_server(final, control, diff):
                return _Decision(
                    "http.same_server_page_differs",
                    f"The probe's page ({final.id}) differs from the control's ({control.id}): {signals}; "
                    "but the status and the server's own headers match the control's, so it looks like the "
                    "same server's page (a dynamic or cut page), not a blockpage.",
                    both,
                )
            rule = "http.status_mismatch" if diff.status_mismatch else "http.body_and_title_mismatch"
            return _Decision(
                rule,
                f"The probe's page ({final.id}) differs from the control's ({control.id}): {signals}; "
                "no blockpage fingerprint matched, so this is not confirmed.",
                both,
            )
        if hint is not None:
            obs, fp = hint
            return _Decision(
                "http.vague_blockpage_words",
                f"The probe's page ({obs.id}) contains words typical of blockpages ({fp.name}) and "
                f"differs from the control's ({control.id}): {_diff_words(diff, final, control)}.",
                both,
            )
        if diff.body_mismatch:
            return _Decision(
                "http.body_length_hint",
                f"{_size_words(final, control, diff)} but "
                f"{'the status and title agree' if diff.title_match else 'the status agrees'}: a hint of a "
                "blockpage, not enough to call it one.",
                both,
            )
    if lie is not None:
        return _bypassed(f, lie, final)
    return _Decision(
        "http.consistent_with_control",
        f"The probe loaded {final.url} with status {final.status_code} ({final.id}), consistent with "
        f"the control ({control.id}).",
        both,
    )


def _same_server(final: HttpObservation, control: HttpObservation, diff: HttpDiff) -> bool:
    """OONI's exculpation (Web Connectivity LTE): the same status and at least one
    uncommon header name in common (``X-Varnish``, a backend id...) mean the same server
    answered, whatever its body; a blockpage box does not send the site's own headers.
    ``diff`` is unused but keeps the call site's facts together."""
    del diff
    if final.status_code != control.status_code:
        return False
    ours = {k.lower() for k, _ in final.headers} - _COMMON_HEADERS
    theirs = {k.lower() for k, _ in control.headers} - _COMMON_HEADERS
    return bool(ours & theirs)


def _size_words(final: HttpObservation, control: HttpObservation, diff: HttpDiff) -> str:
    """The size comparison the right way round: the smaller page is N% of the larger."""
    probe_words = f"the probe's page ({final.id}, {final.body_length} bytes)"
    control_words = f"the control's page ({control.id}, {control.body_length} bytes)"
    small, large = (probe_words, control_words)
    if final.body_length > control.body_length:
        small, large = large, small
    text = f"{small} is {diff.body_proportion:.0%} the size of {large}"
    return text[0].upper() + text[1:]


def _authenticated_answer(
    f: _Facts, final: HttpObservation, control: HttpObservation, diff: HttpDiff
) -> _Decision | None:
    """A differing page that came over TLS validated for the site's name.

    A CAPTCHA or error page from a CDN (Cloudflare's 503 challenge) differs from the
    control's page, yet over an authenticated connection to the real server it is the
    site's own answer.  With the very certificate the control saw it is accessible;
    with another valid certificate (a CDN edge, or a trust store the censor controls)
    it is inconclusive.  Over plain HTTP no such rule applies: a middlebox can forge it.
    """
    found = f.authenticated(final)
    if found is None:
        return None
    mine, same = found
    signals = _diff_words(diff, final, control)
    both = (*(o.id for o in f.m.http), control.id, mine.id)
    if same is not None:
        return _Decision(
            "http.authenticated_site_answer",
            f"The probe's page ({final.id}) differs from the control's ({control.id}): {signals}; but it "
            f"came over TLS validated for {f.host} ({mine.id}) with the very certificate the control saw "
            f"({same.id}), so it is the site's own answer (a challenge or error page), not a block.",
            (*both, same.id),
        )
    return _Decision(
        "http.authenticated_page_differs",
        f"The probe's page ({final.id}) differs from the control's ({control.id}): {signals}; it came over "
        f"TLS validated for {f.host} ({mine.id}), but the control saw another certificate, so a content "
        "delivery network's own page cannot be told from interception with a trusted certificate.",
        both,
    )


def _control_only_addresses(f: _Facts) -> list[str]:
    return [a for a in f.control_addresses if a not in set(f.probe_addresses)]


def _own_addresses_failed(f: _Facts) -> list[Any]:
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


def _reached_through_control_addresses(
    f: _Facts, final: HttpObservation, diff: HttpDiff | None
) -> _Decision | None:
    """The resolver's addresses failed, the control's worked for the probe itself.

    OONI's probe also connects to the addresses the control resolved: when those give
    the site (a certificate valid for the name, or a page consistent with the
    control's) while every address the resolver gave fails, the resolver is what
    blocks.  ``diff`` is the comparison of ``final`` with the control's page.
    """
    if f.ip_literal or not f.dns_disjoint() or final.ip is None:
        return None
    if final.ip not in _control_only_addresses(f):
        return None
    failed = _own_addresses_failed(f)
    if not failed:
        return None
    validated = [
        o for o in f.m.tls if o.ip == final.ip and o.purpose == "target" and o.validated is True
    ]
    consistent = diff is not None and not diff.blocking
    if not (validated or consistent):
        return None
    how = (
        f"over TLS validated for {f.host} ({validated[0].id})"
        if validated
        else f"with a page consistent with the control's ({final.id})"
    )
    return _Decision(
        "dns.control_addresses_reachable",
        f"The probe's DNS answers {_list(f.probe_addresses)} ({_ids(f.dns)}) share no address with the "
        f"control's {_list(f.control_addresses)}, and every one of them failed ({_failure(failed[0])}, "
        f"{_ids(failed)}), while the probe itself reached the site at the control's address {final.ip} "
        f"{how}: the resolver, not the site, is what fails.",
        (*(o.id for o in f.dns), *f.control_dns_ids(), *(o.id for o in failed), *(o.id for o in validated),
         *(o.id for o in f.m.http)),
    )


def _unresolved_but_reached(f: _Facts, final: HttpObservation) -> _Decision | None:
    """The probe's DNS gave no address, yet the probe loaded the page from an address
    the control resolved: the DNS rules decide, and the page shows the site is up."""
    if f.ip_literal or f.probe_addresses or not f.dns or final.ip not in f.control_addresses:
        return None
    decision = _dns_failure(f)
    if decision is None:
        return None
    return _Decision(
        decision.rule_id,
        f"{decision.reason.rstrip('.')}; the probe itself loaded the page from the control's address "
        f"{final.ip} ({final.id}, status {final.status_code}), so the site is up.",
        (*decision.observation_ids, *(o.id for o in f.m.http)),
    )


def _ghost_dns(f: _Facts) -> _Decision | None:
    """The name does not exist for the control, yet the probe's resolver gave an address.

    "Ghost" blocking: a censor's resolver keeps answering for names on its list after
    they stopped existing (OONI's ghost-DNS scenario).  Only when the control's resolver
    *answered* that there is no address (NXDOMAIN, or no A/AAAA record), not when it was
    silent, and only when no certificate valid for the name vouches for the answer.
    """
    if f.ip_literal or not f.probe_addresses or not f.control_full or not f.control_dns:
        return None
    if f.control_addresses or f.tls_validated_ids():
        return None
    for o in f.control_dns:
        if o.failure is not None and o.failure not in DNS_REFUSALS:
            return None
    refusals = _list(_unique(str(o.failure) for o in f.control_dns if o.failure)) or "no address"
    words = (
        f"The control found no address for {f.host} ({_ids(f.control_dns)}: {refusals}), yet the probe's "
        f"DNS answered {_list(f.probe_addresses)} ({_ids(f.dns)})"
    )
    ids = (*(o.id for o in f.dns), *f.control_dns_ids())
    final = f.final
    if _answered(final) and final is not None:
        return _Decision(
            "dns.ghost_answer",
            f"{words}, and that address served a page ({final.id}, status {final.status_code}): the "
            "resolver answers for a name that does not exist, as a censor's does for its list.",
            (*ids, *(o.id for o in f.m.http)),
        )
    probe_words, probe_ids = _probe_failure_words(f)
    return _Decision(
        "dns.ghost_answer",
        f"{words}, and {probe_words}: the resolver answers for a name that does not exist, as a censor's "
        "does for its list.",
        (*ids, *probe_ids),
    )


def _sni_evidence(f: _Facts) -> _Decision | None:
    """SNI filtering decides before any DNS comparison: a handshake for the site's name
    cut while one with an innocuous name to the same address completed is evidence about
    the name itself, whatever addresses the resolver gave."""
    if not f.control_full or not _ok(f.control_final):
        return None
    decision = _tls(f)
    if decision is not None and decision.rule_id == "tls.sni_filtering":
        return decision
    return None


def _control_address_handshake(f: _Facts) -> _Decision | None:
    """No page, but a handshake to a control's address validated for the name while the
    resolver's addresses failed (see :func:`_reached_through_control_addresses`)."""
    if f.ip_literal or not f.dns_disjoint() or not f.control_full:
        return None
    extra = set(_control_only_addresses(f))
    validated = [o for o in f.m.tls if o.ip in extra and o.purpose == "target" and o.validated is True]
    failed = _own_addresses_failed(f)
    if not validated or not failed:
        return None
    return _Decision(
        "dns.control_addresses_reachable",
        f"The probe's DNS answers {_list(f.probe_addresses)} ({_ids(f.dns)}) share no address with the "
        f"control's {_list(f.control_addresses)}, and every one of them failed ({_failure(failed[0])}, "
        f"{_ids(failed)}), while the probe's own handshake with the control's address {validated[0].ip} "
        f"validated for {f.host} ({validated[0].id}): the resolver, not the site, is what fails.",
        (*(o.id for o in f.dns), *f.control_dns_ids(), *(o.id for o in failed), validated[0].id),
    )


def _bypassed(f: _Facts, lie: _Decision, final: HttpObservation) -> _Decision:
    return _Decision(
        "dns.lie_bypassed",
        f"The page loaded ({final.id}, status {final.status_code}) through another address, but "
        f"{lie.reason[0].lower()}{lie.reason[1:].rstrip('.')}; readers using that resolver may be blocked.",
        (*lie.observation_ids, *(o.id for o in f.m.http)),
    )


def _diff_words(diff: HttpDiff, probe: HttpObservation, control: HttpObservation) -> str:
    parts = []
    if diff.status_mismatch:
        parts.append(f"status {probe.status_code} instead of {control.status_code}")
    if diff.body_mismatch:
        parts.append(f"body {probe.body_length} bytes instead of {control.body_length}")
    if diff.title_mismatch:
        parts.append(f"title {probe.title!r} instead of {control.title!r}")
    if not diff.headers_match:
        parts.append("different server headers")
    return ", ".join(parts)


def _dns_failure(f: _Facts) -> _Decision | None:
    """No address at all for the site's name."""
    if f.ip_literal or f.probe_addresses or not f.dns:
        return None
    failures = [o.failure for o in f.dns if o.failure is not None]
    ids = [o.id for o in f.dns]
    shown = _list(_unique(str(x) for x in failures)) or "no address"
    if f.control_addresses:
        words = (
            f"The probe's DNS gave no address for {f.host} ({', '.join(ids)}: {shown}) while the control "
            f"resolved it to {_list(f.control_addresses)} ({_ids(f.control_dns)})"
        )
        both = (*ids, *f.control_dns_ids())
        if Failure.DNS_NXDOMAIN in failures:
            return _Decision("dns.nxdomain_vs_control", words + ".", both)
        if failures and all(x in DNS_REFUSALS for x in failures):
            return _Decision("dns.error_vs_control", words + ".", both)
        return _Decision(
            "dns.timeout_vs_control",
            words + "; a resolver that is slow or broken rather than censoring cannot be ruled out.",
            both,
        )
    if f.control_dns:
        control_failures = _list(_unique(str(o.failure) for o in f.control_dns if o.failure)) or "no address"
        return _Decision(
            "dns.failure_in_control_too",
            f"Neither the probe ({', '.join(ids)}: {shown}) nor the control ({_ids(f.control_dns)}: "
            f"{control_failures}) could resolve {f.host}.",
            (*ids, *f.control_dns_ids()),
        )
    return _Decision(
        "dns.failure_without_control",
        f"The probe's DNS gave no address for {f.host} ({', '.join(ids)}: {shown}), but "
        f"{_no_control_words(f.m)}, so a name that no longer exists cannot be ruled out.",
        tuple(ids),
    )


def _probe_failure_words(f: _Facts) -> tuple[str, list[str]]:
    """The probe's first failing step, for a reason."""
    if f.final is not None and f.final.failure is not None:
        return f"the probe's request to {f.final.url} failed ({f.final.failure}, {f.final.id})", [f.final.id]
    failed_tls = [o for o in f.m.tls if o.purpose == "target" and o.failure is not None]
    if failed_tls:
        return f"the probe's TLS handshakes failed ({_failure(failed_tls[0])}, {_ids(failed_tls)})", [
            o.id for o in failed_tls
        ]
    failed_tcp = [o for o in f.m.tcp if o.failure is not None]
    if failed_tcp:
        return f"the probe's connects failed ({_failure(failed_tcp[0])}, {_ids(failed_tcp)})", [
            o.id for o in failed_tcp
        ]
    return "the probe loaded no page", [o.id for o in f.m.http]


def _control_also_failed(f: _Facts) -> _Decision | None:
    if not f.control_full or _ok(f.control_final):
        return None
    probe_words, probe_ids = _probe_failure_words(f)
    control_ids = [o.id for o in f.control.http] if f.control is not None else []
    if not control_ids and f.control is not None:
        control_ids = [
            o.id for o in (*f.control.tls, *f.control.tcp, *f.control.dns) if o.failure is not None
        ]
    return _Decision(
        "control.also_failed",
        f"{probe_words[0].upper()}{probe_words[1:]}, and {_control_failure_words(f)}: the site is failing "
        "for everyone, not only for this network.",
        (*probe_ids, *control_ids),
    )


def _dns_inconsistent(f: _Facts) -> _Decision | None:
    if f.ip_literal or not f.dns_disjoint() or f.tls_validated_ids():
        return None
    probe_set = set(f.probe_addresses)
    bad_certs = [
        o
        for o in f.m.tls
        if o.purpose == "target" and o.ip in probe_set and o.certificates and o.validated is False
    ]
    words = (
        f"The probe's DNS answers {_list(f.probe_addresses)} ({_ids(f.dns)}) share no address with the "
        f"control's {_list(f.control_addresses)} ({_ids(f.control_dns)})"
    )
    ids = (*(o.id for o in f.dns), *f.control_dns_ids())
    if bad_certs:
        obs = bad_certs[0]
        return _Decision(
            "dns.inconsistent_bad_certificate",
            f"{words}, and {obs.ip} presented a certificate not valid for {f.host} "
            f"({obs.failure}, issuer {obs.certificates[0].issuer!r}, {obs.id}).",
            (*ids, obs.id),
        )
    probe_words, probe_ids = _probe_failure_words(f)
    return _Decision(
        "dns.inconsistent_unverified",
        f"{words} and {probe_words}; with no valid certificate to check them, a content delivery network "
        "giving different addresses cannot be ruled out.",
        (*ids, *probe_ids),
    )


def _control_tcp(f: _Facts, ip: str, port: int) -> list[TcpObservation]:
    if f.control is None:
        return []
    return [o for o in f.control.tcp if o.ip == ip and o.port == port]


def _tcp(f: _Facts) -> _Decision | None:
    """Every connect failed."""
    attempts = f.m.tcp
    if not attempts or any(o.failure is None for o in attempts):
        return None
    shown = (
        f"{_list(_unique(f'{o.ip}:{o.port}' for o in attempts))} ({_failure(attempts[0])}, {_ids(attempts)})"
    )
    ids = [o.id for o in attempts]
    if not f.control_full:
        return _Decision(
            "tcp.connect_unverified",
            f"The probe could not connect to {shown}, but {_no_control_words(f.m)}, so a server that is "
            "down for everyone cannot be ruled out.",
            tuple(ids),
        )
    worked = [c for o in attempts for c in _control_tcp(f, o.ip, o.port) if c.failure is None]
    if worked:
        return _Decision(
            "tcp.connect_vs_control",
            f"The probe could not connect to {shown} while the control connected to "
            f"{_list(_unique(c.ip for c in worked))} ({_ids(worked)}) and loaded the page.",
            (*ids, *(c.id for c in worked)),
        )
    tried = [c for o in attempts for c in _control_tcp(f, o.ip, o.port)]
    if tried:
        return _Decision(
            "tcp.connect_failed_in_control_too",
            f"Neither the probe ({shown}) nor the control ({_ids(tried)}) could connect to the same "
            "addresses: those servers are down.",
            (*ids, *(c.id for c in tried)),
        )
    return _Decision(
        "tcp.connect_unverified",
        f"The probe could not connect to {shown}; the control loaded the page through other addresses, "
        "so a fault of those particular servers cannot be ruled out.",
        tuple(ids),
    )


def _tls(f: _Facts) -> _Decision | None:
    """Every handshake for the site's name failed."""
    targets = [o for o in f.m.tls if o.purpose == "target"]
    if not targets or any(o.failure is None for o in targets):
        return None
    control_tls = [o for o in f.control.tls if o.purpose == "target"] if f.control is not None else []
    ids = [o.id for o in targets]
    bad_certs = [o for o in targets if o.certificates and o.failure in CERTIFICATE_FAILURES]
    if bad_certs:
        obs = bad_certs[0]
        same_ip = [c for c in control_tls if c.ip == obs.ip and c.validated is True]
        valid = same_ip or [c for c in control_tls if c.validated is True]
        words = (
            f"The probe's TLS handshake with {obs.ip} for {f.host} got a certificate that does not validate "
            f"({obs.failure}, issuer {obs.certificates[0].issuer!r}, {obs.id})"
        )
        if not f.control_full:
            return _Decision(
                "control.unavailable",
                f"{words}, but {_no_control_words(f.m)}, so a misconfigured site cannot be ruled out.",
                tuple(ids),
            )
        if not valid:
            return _Decision(
                "unexplained",
                f"{words}; the control loaded the page but recorded no valid certificate to compare with.",
                tuple(ids),
            )
        ctrl = valid[0]
        if _leaf(ctrl) is not None and _leaf(ctrl) == _leaf(obs):
            return _Decision(
                "tls.untrusted_same_certificate",
                f"{words}, yet it is the very certificate the control validated ({ctrl.id}): the probe's "
                "trust store, not the network, is the likelier cause.",
                (obs.id, ctrl.id),
            )
        return _Decision(
            "tls.invalid_certificate_vs_control",
            f"{words}, while the control got a valid certificate from {ctrl.ip} ({ctrl.id}): a middlebox "
            "substituted its own certificate.",
            (obs.id, ctrl.id),
        )
    obs = targets[0]
    comparison = [
        o
        for o in f.m.tls
        if o.purpose == "comparison" and o.ip in {t.ip for t in targets} and _handshake_done(o)
    ]
    comparison_failed = [
        o
        for o in f.m.tls
        if o.purpose == "comparison" and o.ip in {t.ip for t in targets} and not _handshake_done(o)
    ]
    words = f"The probe's TLS handshake for {f.host} with {obs.ip} failed ({obs.failure}, {_ids(targets)})"
    if not f.control_full:
        extra = (
            f"; a handshake with another name to the same address completed ({comparison[0].id}), "
            "which points "
            "to SNI filtering,"
            if comparison
            else ""
        )
        return _Decision(
            "control.unavailable",
            f"{words}{extra} but {_no_control_words(f.m)}, so a server fault cannot be ruled out.",
            (*ids, *(o.id for o in comparison)),
        )
    same_ip = [c for c in control_tls if c.ip in {t.ip for t in targets}]
    done = [c for c in same_ip if _handshake_done(c)]
    if not done:
        if same_ip:
            return _Decision(
                "tls.failure_in_control_too",
                f"{words}, and the control's handshake with the same address failed too "
                f"({_failure(same_ip[0])}, {_ids(same_ip)}).",
                (*ids, *(c.id for c in same_ip)),
            )
        if comparison:
            return _Decision(
                "tls.sni_filtering",
                f"{words}, while a handshake with another name to the same address completed "
                f"({comparison[0].id}) and the control loaded the page: the name in the ClientHello "
                "was filtered (SNI-based blocking).",
                (*ids, comparison[0].id),
            )
        return _Decision(
            "tls.handshake_unverified",
            f"{words}; the control did not try the same address, so a fault of that server cannot be "
            "ruled out.",
            tuple(ids),
        )
    ctrl = done[0]
    if comparison:
        return _Decision(
            "tls.sni_filtering",
            f"{words}, while a handshake with another name to the same address completed "
            f"({comparison[0].id}) and the control's handshake for {f.host} completed ({ctrl.id}): the name "
            "in the ClientHello was filtered (SNI-based blocking).",
            (*ids, comparison[0].id, ctrl.id),
        )
    if comparison_failed:
        return _Decision(
            "tcp.interference_any_name",
            f"{words}, a handshake with an innocuous name to the same address failed too "
            f"({_failure(comparison_failed[0])}, {comparison_failed[0].id}), while the control's completed "
            f"({ctrl.id}): connections to {obs.ip} are cut whatever the name (IP-based blocking).",
            (*ids, comparison_failed[0].id, ctrl.id),
        )
    return _Decision(
        "tls.handshake_vs_control",
        f"{words} while the control's handshake with the same address completed ({ctrl.id}).",
        (*ids, ctrl.id),
    )


def _http_failure(f: _Facts) -> _Decision | None:
    final = f.final
    if final is None or final.failure is None:
        return None
    chain_ids = [o.id for o in f.m.http]
    control_chain = f.control.http if f.control is not None else []
    control_ids = [o.id for o in control_chain]
    if not f.control_full:
        return _Decision(
            "control.unavailable",
            f"The probe's request to {final.url} failed ({final.failure}, {final.id}), but "
            f"{_no_control_words(f.m)}, so a server fault cannot be ruled out.",
            tuple(chain_ids),
        )
    control_hosts = {_host(urlsplit(o.url).hostname or "") for o in control_chain}
    elsewhere = [
        o for o in f.m.http[1:] if _host(urlsplit(o.url).hostname or "") not in control_hosts | {f.host}
    ]
    if final.ip is None and final.failure == Failure.DNS_NXDOMAIN:
        target = _host(urlsplit(final.url).hostname or "")
        if target in control_hosts and not elsewhere:
            dns_ids = [o.id for o in f.m.dns if _host(o.hostname) == target]
            return _Decision(
                "dns.redirect_target_vs_control",
                f"The site redirected to {target}, which the probe could not resolve ({final.id}, "
                f"{_list(dns_ids)}) while the control loaded it ({_list(control_ids)}).",
                (*chain_ids, *dns_ids, *control_ids),
            )
    if elsewhere:
        hop = elsewhere[0]
        return _Decision(
            "http.redirect_elsewhere",
            f"The probe was redirected to {hop.url} ({hop.id}), a host the control never saw, and its "
            "request "
            f"then failed ({final.failure}, {final.id}); no blockpage fingerprint matched, so this is not "
            "confirmed.",
            (*chain_ids, *control_ids),
        )
    return _Decision(
        "http.failure_vs_control",
        f"The probe's request to {final.url} failed ({final.failure}, {final.id}) after connecting, while "
        f"the control loaded it with status {f.control_final.status_code if f.control_final else '?'} "
        f"({_list(control_ids)}).",
        (*chain_ids, *control_ids),
    )


def _fallback(f: _Facts) -> _Decision:
    probe_words, probe_ids = _probe_failure_words(f)
    if not f.control_full:
        return _Decision(
            "control.unavailable",
            f"{probe_words[0].upper()}{probe_words[1:]}, but {_no_control_words(f.m)}, so an outage "
            "cannot be "
            "ruled out.",
            tuple(probe_ids),
        )
    return _Decision(
        "unexplained",
        f"{probe_words[0].upper()}{probe_words[1:]} while the control loaded the page, and no rule explains "
        "how.",
        tuple(probe_ids),
    )


# --- public entry points --------------------------------------------------------------------


def judge(
    measurement: Measurement,
    *,
    fingerprints: FingerprintSet,
    probe_offline: bool = False,
    asns: AsnLookup | None = None,
) -> Verdict:
    """The verdict on one target measurement.

    ``probe_offline`` comes from the run's canaries (see :func:`judge_all`); when true
    the verdict is ``probe_offline`` whatever was observed.  ``asns`` (an ASN database,
    :mod:`analysis.asn`) lets answers in the control's network count as consistent.
    Never raises for odd records: a measurement no rule explains is ``inconclusive``
    (``unexplained``).
    """
    m = measurement
    if probe_offline:
        return _make(
            m,
            _Decision(
                "probe.offline",
                f"Every canary of run {m.run_id} failed, so the probe's own connection was down and nothing "
                f"can be said about {m.domain}.",
            ),
        )
    if not (m.dns or m.tcp or m.tls or m.http):
        return _make(
            m,
            _Decision(
                "probe.no_observations",
                f"The measurement of {m.url} recorded no DNS, TCP, TLS or HTTP observation.",
            ),
        )
    f = _Facts.of(m, fingerprints, asns)
    lie = _dns_lie(f)
    if lie is not None and not _answered(f.final):
        return _make(m, lie)
    blockpage = _http_blockpage(f)
    if blockpage is not None:
        return _make(m, lie or blockpage)
    answered = _answered_page(f, lie)
    if answered is not None:
        return _make(m, answered)
    for rule in (
        _dns_failure,
        _ghost_dns,
        _control_also_failed,
        _sni_evidence,
        _control_address_handshake,
        _dns_inconsistent,
        _tcp,
        _tls,
        _http_failure,
    ):
        decision = rule(f)
        if decision is not None:
            return _make(m, decision)
    return _make(m, _fallback(f))


def canary_failed(canary: Measurement) -> bool:
    """A canary failed when no page came back: DNS, TCP, TLS or the request itself failed.
    A 5xx still proves the probe's link works."""
    return not _answered(_final(canary.http))


def judge_all(
    measurements: Iterable[Measurement], *, fingerprints: FingerprintSet, asns: AsnLookup | None = None
) -> list[Verdict]:
    """Verdicts for every target measurement, in input order; none for canaries.

    Measurements are grouped by ``run_id``: when a run has canaries and every one of
    them failed, all of that run's targets are ``probe_offline``.  A run without
    canaries, or a measurement without a run, is judged on its own.  Without ``asns``
    the ASN database named by ``KUZOT_ASN_DB`` is used when that variable is set.
    """
    if asns is None:
        asns = default_lookup()
    items = list(measurements)
    canaries: dict[str, list[Measurement]] = {}
    for m in items:
        if m.role == "canary" and m.run_id is not None:
            canaries.setdefault(m.run_id, []).append(m)
    offline = {run for run, group in canaries.items() if all(canary_failed(c) for c in group)}
    return [
        judge(m, fingerprints=fingerprints, probe_offline=m.run_id in offline, asns=asns)
        for m in items
        if m.role != "canary"
    ]


def verdicts_frame(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    """One row per verdict, columns :data:`VERDICT_COLUMNS`; ``measured_at`` is a UTC
    timestamp, ``probe_asn`` a nullable integer, ``observation_ids`` a list."""
    rows = [{name: getattr(v, name) for name in VERDICT_COLUMNS} for v in verdicts]
    frame = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    frame["measured_at"] = pd.to_datetime(frame["measured_at"], utc=True)
    frame["probe_asn"] = frame["probe_asn"].astype("Int64")
    frame["confirmed"] = frame["confirmed"].astype(bool)
    frame["observation_ids"] = [list(ids) for ids in frame["observation_ids"]]
    return frame

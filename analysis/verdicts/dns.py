"""The DNS rules: answers that are not the site's, names that do not resolve.

Why one module: every way a resolver can block (injected replies, blockpage and bogon
addresses, ghost answers, NXDOMAIN and errors, answers disjoint from the control's) is
judged against the same control answers; the order among them is :mod:`~analysis.verdicts.judge`'s.
"""

from __future__ import annotations

from analysis.bogons import special_kind
from analysis.verdicts.compare import HttpDiff
from analysis.verdicts.facts import (
    DNS_REFUSALS,
    Facts,
    answered,
    control_only_addresses,
    own_addresses_failed,
    unique,
)
from analysis.verdicts.reasons import (
    elsewhere_words,
    failure_words,
    ids_of,
    listed,
    no_control_words,
    probe_failure_words,
    resolver_words,
)
from analysis.verdicts.verdict import Decision
from probe.failures import Failure
from probe.records import HttpObservation


def dns_lie(f: Facts) -> Decision | None:
    """Injected replies, known blockpage addresses, bogons: answers that are not the site's."""
    if f.ip_literal:
        return None
    for rule in (_injected_reply, _blockpage_address, _bogon_answer):
        decision = rule(f)
        if decision is not None:
            return decision
    return None


def _injected_reply(f: Facts) -> Decision | None:
    """Injection: one query, two replies that disagree."""
    control_set = set(f.control_addresses)
    ctrl_ids = f.control_dns_ids()
    for obs in f.dns:
        first = set(obs.addresses())
        for extra in obs.extra_responses:
            later = {a.value for a in extra.answers if a.rrtype in ("A", "AAAA")}
            if later == first and extra.rcode == (obs.rcode or extra.rcode):
                continue
            shown = listed(sorted(first)) or (obs.rcode or "no address")
            fps = [
                fp
                for a in first
                if (fp := f.fingerprints.match_dns(a)) is not None and fp.confirms_in(f.m.probe_cc)
            ]
            words = (
                f"{resolver_words(obs)} sent two different replies to one query for {f.host} ({obs.id}): "
                f"first {shown}, then {listed(sorted(later)) or extra.rcode}"
            )
            if fps:
                return Decision(
                    "dns.injected_blockpage_address",
                    f"{words}; the first is a known blockpage address ({fps[0].name}), "
                    "the mark of an on-path injector.",
                    (obs.id, *ctrl_ids),
                    frozenset(first - later),
                )
            if f.has_dns_control:
                return Decision(
                    "dns.injected_reply",
                    f"{words}, while the control resolved it to {listed(f.control_addresses) or 'no address'}"
                    f" ({ids_of(f.control_dns)}): an on-path injector raced the real resolver.",
                    (obs.id, *ctrl_ids),
                    frozenset(first - later - control_set),
                )
            return Decision(
                "dns.injected_reply_unverified",
                f"{words}, but without a DNS control it cannot be ruled out that the resolver itself "
                "answers inconsistently.",
                (obs.id,),
                frozenset(first - later),
            )
    return None


def _blockpage_address(f: Facts) -> Decision | None:
    """Known blockpage addresses."""
    control_set = set(f.control_addresses)
    ctrl_ids = f.control_dns_ids()
    for obs in f.dns:
        for address in [a.value for a in obs.answers]:
            fp = f.fingerprints.match_dns(address)
            if fp is None or fp.is_false_positive or address in control_set:
                continue
            if fp.confirms:
                fits = fp.confirms_in(f.m.probe_cc)
                return Decision(
                    "dns.blockpage_address" if fits else "dns.blockpage_address_unconfirmed",
                    f"{resolver_words(obs)} answered {address} for {f.host} ({obs.id}), a known blockpage "
                    f"address ({fp.name})" + ("." if fits else f"{elsewhere_words(fp, f.m.probe_cc)}."),
                    (obs.id, *ctrl_ids),
                    frozenset({address}),
                )
            if special_kind(address) and any(special_kind(c) for c in control_set):
                continue  # a vague "0.0.0.0" or "127.0.0.1" where the control's internet is private too
            if f.has_dns_control:
                return Decision(
                    "dns.vague_blockpage_address",
                    f"{resolver_words(obs)} answered {address} for {f.host} ({obs.id}), an address commonly "
                    f"used to block ({fp.name}), while the control resolved it to "
                    f"{listed(f.control_addresses) or 'no address'} ({ids_of(f.control_dns)}).",
                    (obs.id, *ctrl_ids),
                    frozenset({address}),
                )
    return None


def _bogon_answer(f: Facts) -> Decision | None:
    """Bogons, only when the control's answers are all public (the lab lives on 127/8)."""
    if not f.control_addresses or any(special_kind(a) for a in f.control_addresses):
        return None
    for obs in f.dns:
        for address in obs.addresses():
            kind = special_kind(address)
            if kind is not None:
                return Decision(
                    "dns.bogon_answer",
                    f"{resolver_words(obs)} answered the {kind} address {address} for {f.host} ({obs.id}), "
                    f"while the control resolved it to public addresses "
                    f"{listed(f.control_addresses)} ({ids_of(f.control_dns)}).",
                    (obs.id, *f.control_dns_ids()),
                    frozenset({address}),
                )
    return None


def unresolved_but_reached(f: Facts, final: HttpObservation) -> Decision | None:
    """The probe's DNS gave no address, yet the probe loaded the page from an address
    the control resolved: the DNS rules decide, and the page shows the site is up."""
    if f.ip_literal or f.probe_addresses or not f.dns or final.ip not in f.control_addresses:
        return None
    decision = dns_failure(f)
    if decision is None:
        return None
    return Decision(
        decision.rule_id,
        f"{decision.reason.rstrip('.')}; the probe itself loaded the page from the control's address "
        f"{final.ip} ({final.id}, status {final.status_code}), so the site is up.",
        (*decision.observation_ids, *(o.id for o in f.m.http)),
    )


def ghost_dns(f: Facts) -> Decision | None:
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
    refusals = listed(unique(str(o.failure) for o in f.control_dns if o.failure)) or "no address"
    words = (
        f"The control found no address for {f.host} ({ids_of(f.control_dns)}: {refusals}), yet the probe's "
        f"DNS answered {listed(f.probe_addresses)} ({ids_of(f.dns)})"
    )
    ids = (*(o.id for o in f.dns), *f.control_dns_ids())
    final = f.final
    if answered(final) and final is not None:
        return Decision(
            "dns.ghost_answer",
            f"{words}, and that address served a page ({final.id}, status {final.status_code}): the "
            "resolver answers for a name that does not exist, as a censor's does for its list.",
            (*ids, *(o.id for o in f.m.http)),
        )
    probe_words, probe_ids = probe_failure_words(f)
    return Decision(
        "dns.ghost_answer",
        f"{words}, and {probe_words}: the resolver answers for a name that does not exist, as a censor's "
        "does for its list.",
        (*ids, *probe_ids),
    )


def dns_failure(f: Facts) -> Decision | None:
    """No address at all for the site's name."""
    if f.ip_literal or f.probe_addresses or not f.dns:
        return None
    failures = [o.failure for o in f.dns if o.failure is not None]
    ids = [o.id for o in f.dns]
    shown = listed(unique(str(x) for x in failures)) or "no address"
    if f.control_addresses:
        words = (
            f"The probe's DNS gave no address for {f.host} ({', '.join(ids)}: {shown}) while the control "
            f"resolved it to {listed(f.control_addresses)} ({ids_of(f.control_dns)})"
        )
        both = (*ids, *f.control_dns_ids())
        if Failure.DNS_NXDOMAIN in failures:
            return Decision("dns.nxdomain_vs_control", words + ".", both)
        if failures and all(x in DNS_REFUSALS for x in failures):
            return Decision("dns.error_vs_control", words + ".", both)
        return Decision(
            "dns.timeout_vs_control",
            words + "; a resolver that is slow or broken rather than censoring cannot be ruled out.",
            both,
        )
    if f.control_dns:
        control_failures = listed(unique(str(o.failure) for o in f.control_dns if o.failure)) or "no address"
        return Decision(
            "dns.failure_in_control_too",
            f"Neither the probe ({', '.join(ids)}: {shown}) nor the control ({ids_of(f.control_dns)}: "
            f"{control_failures}) could resolve {f.host}.",
            (*ids, *f.control_dns_ids()),
        )
    return Decision(
        "dns.failure_without_control",
        f"The probe's DNS gave no address for {f.host} ({', '.join(ids)}: {shown}), but "
        f"{no_control_words(f.m)}, so a name that no longer exists cannot be ruled out.",
        tuple(ids),
    )


def dns_inconsistent(f: Facts) -> Decision | None:
    if f.ip_literal or not f.dns_disjoint() or f.tls_validated_ids():
        return None
    probe_set = set(f.probe_addresses)
    bad_certs = [
        o
        for o in f.m.tls
        if o.purpose == "target" and o.ip in probe_set and o.certificates and o.validated is False
    ]
    words = (
        f"The probe's DNS answers {listed(f.probe_addresses)} ({ids_of(f.dns)}) share no address with the "
        f"control's {listed(f.control_addresses)} ({ids_of(f.control_dns)})"
    )
    ids = (*(o.id for o in f.dns), *f.control_dns_ids())
    if bad_certs:
        obs = bad_certs[0]
        return Decision(
            "dns.inconsistent_bad_certificate",
            f"{words}, and {obs.ip} presented a certificate not valid for {f.host} "
            f"({obs.failure}, issuer {obs.certificates[0].issuer!r}, {obs.id}).",
            (*ids, obs.id),
        )
    probe_words, probe_ids = probe_failure_words(f)
    return Decision(
        "dns.inconsistent_unverified",
        f"{words} and {probe_words}; with no valid certificate to check them, a content delivery network "
        "giving different addresses cannot be ruled out.",
        (*ids, *probe_ids),
    )


def reached_through_control_addresses(
    f: Facts, final: HttpObservation, diff: HttpDiff | None
) -> Decision | None:
    """The resolver's addresses failed, the control's worked for the probe itself.

    OONI's probe also connects to the addresses the control resolved: when those give
    the site (a certificate valid for the name, or a page consistent with the
    control's) while every address the resolver gave fails, the resolver is what
    blocks.  ``diff`` is the comparison of ``final`` with the control's page.
    """
    if f.ip_literal or not f.dns_disjoint() or final.ip is None:
        return None
    if final.ip not in control_only_addresses(f):
        return None
    failed = own_addresses_failed(f)
    if not failed:
        return None
    validated = [o for o in f.m.tls if o.ip == final.ip and o.purpose == "target" and o.validated is True]
    consistent = diff is not None and not diff.blocking
    if not (validated or consistent):
        return None
    how = (
        f"over TLS validated for {f.host} ({validated[0].id})"
        if validated
        else f"with a page consistent with the control's ({final.id})"
    )
    return Decision(
        "dns.control_addresses_reachable",
        f"The probe's DNS answers {listed(f.probe_addresses)} ({ids_of(f.dns)}) share no address with the "
        f"control's {listed(f.control_addresses)}, and every one of them failed ({failure_words(failed[0])}, "
        f"{ids_of(failed)}), while the probe itself reached the site at the control's address {final.ip} "
        f"{how}: the resolver, not the site, is what fails.",
        (
            *(o.id for o in f.dns),
            *f.control_dns_ids(),
            *(o.id for o in failed),
            *(o.id for o in validated),
            *(o.id for o in f.m.http),
        ),
    )


def control_address_handshake(f: Facts) -> Decision | None:
    """No page, but a handshake to a control's address validated for the name while the
    resolver's addresses failed (see :func:`reached_through_control_addresses`)."""
    if f.ip_literal or not f.dns_disjoint() or not f.control_full:
        return None
    extra = set(control_only_addresses(f))
    validated = [o for o in f.m.tls if o.ip in extra and o.purpose == "target" and o.validated is True]
    failed = own_addresses_failed(f)
    if not validated or not failed:
        return None
    return Decision(
        "dns.control_addresses_reachable",
        f"The probe's DNS answers {listed(f.probe_addresses)} ({ids_of(f.dns)}) share no address with the "
        f"control's {listed(f.control_addresses)}, and every one of them failed ({failure_words(failed[0])}, "
        f"{ids_of(failed)}), while the probe's own handshake with the control's address {validated[0].ip} "
        f"validated for {f.host} ({validated[0].id}): the resolver, not the site, is what fails.",
        (*(o.id for o in f.dns), *f.control_dns_ids(), *(o.id for o in failed), validated[0].id),
    )


def bypassed(f: Facts, lie: Decision, final: HttpObservation) -> Decision:
    return Decision(
        "dns.lie_bypassed",
        f"The page loaded ({final.id}, status {final.status_code}) through another address, but "
        f"{lie.reason[0].lower()}{lie.reason[1:].rstrip('.')}; readers using that resolver may be blocked.",
        (*lie.observation_ids, *(o.id for o in f.m.http)),
    )

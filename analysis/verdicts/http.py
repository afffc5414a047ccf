"""The HTTP rules: blockpage fingerprints, the page compared with the control's, failed requests.

Why one module: the final page decides most verdicts (a page consistent with the
control's is not blocked whatever happened on the way), so its rules, and the DNS and
TLS facts they consult, read in one place.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from analysis.verdicts.compare import HttpDiff, compare_http, same_server
from analysis.verdicts.dns import (
    bypassed,
    ghost_dns,
    reached_through_control_addresses,
    unresolved_but_reached,
)
from analysis.verdicts.facts import Facts, answered, host_name, is_2xx, page_ok
from analysis.verdicts.reasons import (
    control_failure_words,
    diff_words,
    elsewhere_words,
    ids_of,
    listed,
    no_control_words,
    probe_failure_words,
    size_words,
)
from analysis.verdicts.tls import authenticated_answer
from analysis.verdicts.verdict import Decision
from probe.failures import Failure
from probe.records import DnsObservation, HttpObservation, TcpObservation, TlsObservation


def http_blockpage(f: Facts) -> Decision | None:
    found = f.http_fingerprint(confirming=True)
    if found is None:
        return None
    obs, fp = found
    where = "page" if fp.location_found == "body" else f"{fp.location_found.removeprefix('header.')} header"
    fits = fp.confirms_in(f.m.probe_cc)
    served_from_lie = (
        obs.ip is not None and obs.ip in f.probe_addresses and obs.ip not in f.control_addresses
    ) and (f.dns_suspicious() or ghost_dns(f) is not None)
    ids = (obs.id, *(o.id for o in f.m.http[: f.m.http.index(obs)]))
    if served_from_lie and fits:
        return Decision(
            "dns.blockpage_served",
            f"The response from {obs.ip} ({obs.id}) matches the blockpage fingerprint {fp.name} in its "
            f"{where}, and that address came only from the probe's DNS ({ids_of(f.dns)}), not the control's.",
            (*ids, *(o.id for o in f.dns), *f.control_dns_ids()),
        )
    if not fits:
        return Decision(
            "http.blockpage_fingerprint_unconfirmed",
            f"The response to {obs.url} ({obs.id}) matches the blockpage fingerprint {fp.name} in its "
            f"{where}{elsewhere_words(fp, f.m.probe_cc)}.",
            ids,
        )
    return Decision(
        "http.blockpage_fingerprint",
        f"The response to {obs.url} ({obs.id}) matches the blockpage fingerprint {fp.name} in its {where}.",
        ids,
    )


def answered_page(f: Facts, lie: Decision | None) -> Decision | None:
    """The probe's final request got an answer: compare it with the control's, if any."""
    final, control = f.final, f.control_final
    if final is None or not answered(final):
        return None
    unresolved = unresolved_but_reached(f, final)
    if unresolved is not None:
        return unresolved
    if final.status_code is not None and final.status_code >= 500:
        error = _server_error(f, final, control)
        if error is not None:
            return error
    comparable = page_ok(control) and control is not None
    if comparable and control is not None and is_2xx(final.status_code) and not is_2xx(control.status_code):
        comparable = False  # the control got no page (a 403 challenge, say): the probe's 200 stands
    if not comparable or control is None:
        return _without_control_page(f, lie, final)
    return _compared_with_control(f, lie, final, control)


def _chain_ids(f: Facts) -> tuple[list[str], list[str]]:
    """The ids of the probe's and the control's redirect chains."""
    return [o.id for o in f.m.http], ([o.id for o in f.control.http] if f.control is not None else [])


def _server_error(f: Facts, final: HttpObservation, control: HttpObservation | None) -> Decision | None:
    """A 5xx for the probe: down for everyone, or no control to tell; ``None`` when the
    control got a page (the comparison decides)."""
    probe_ids, control_ids = _chain_ids(f)
    if answered(control) and control is not None and control.status_code is not None:
        if control.status_code >= 500:
            return Decision(
                "http.server_error_everywhere",
                f"The server answered status {final.status_code} to the probe ({final.id}) and "
                f"{control.status_code} to the control ({control.id}): the site is failing for everyone.",
                (*probe_ids, *control_ids),
            )
        return None
    if f.control_full:
        return Decision(
            "control.also_failed",
            f"The server answered status {final.status_code} to the probe ({final.id}) and "
            f"{control_failure_words(f)}: the site is failing for everyone.",
            (*probe_ids, *control_ids),
        )
    return Decision(
        "http.server_error_without_control",
        f"The server answered status {final.status_code} to the probe ({final.id}), but "
        f"{no_control_words(f.m)}, so a server fault cannot be told from a block.",
        tuple(probe_ids),
    )


def _without_control_page(f: Facts, lie: Decision | None, final: HttpObservation) -> Decision:
    """The probe got a page and the control none to compare it with."""
    probe_ids, control_ids = _chain_ids(f)
    if lie is not None:
        if any(o.ip in lie.addresses for o in f.m.http):
            # Nothing to compare the page with, and it came from an address that is not the site's.
            return Decision(lie.rule_id, lie.reason, (*lie.observation_ids, *probe_ids), lie.addresses)
        return bypassed(f, lie, final)
    ghost = ghost_dns(f)
    if ghost is not None:
        return ghost
    without = no_control_words(f.m) if not f.control_full else control_failure_words(f)
    return Decision(
        "http.reached_without_control_page",
        f"The probe loaded {final.url} with status {final.status_code} ({final.id}) and no blockpage "
        f"fingerprint matched; {without}.",
        (*probe_ids, *control_ids),
    )


def _compared_with_control(
    f: Facts, lie: Decision | None, final: HttpObservation, control: HttpObservation
) -> Decision:
    """Both got a page: OONI's comparison, then what may excuse or explain a difference."""
    probe_ids, control_ids = _chain_ids(f)
    diff = compare_http(final, control)
    both = (*probe_ids, *control_ids)
    if diff.any and lie is not None:
        return lie
    via_control = reached_through_control_addresses(f, final, diff)
    if via_control is not None:
        return via_control
    if diff.any:
        differing = _differing_page(f, final, control, diff, both)
        if differing is not None:
            return differing
    if lie is not None:
        return bypassed(f, lie, final)
    return Decision(
        "http.consistent_with_control",
        f"The probe loaded {final.url} with status {final.status_code} ({final.id}), consistent with "
        f"the control ({control.id}).",
        both,
    )


def _differing_page(
    f: Facts, final: HttpObservation, control: HttpObservation, diff: HttpDiff, both: tuple[str, ...]
) -> Decision | None:
    """The pages differ: a known false positive, a block, a vague hint, or (``None``) too
    little difference to matter."""
    hint = f.http_fingerprint(confirming=False)
    false_positive = f.false_positive_page(final)
    if false_positive is not None and (diff.blocking or hint is not None):
        # A known false positive may stop a differing page from counting as a
        # blockpage; it never demotes a page the rules below find consistent.
        return Decision(
            "http.known_false_positive_page",
            f"The probe's page ({final.id}) differs from the control's ({control.id}) but matches "
            f"{false_positive.name}, a page known not to be a blockpage.",
            both,
        )
    if diff.blocking:
        return _blocking_difference(f, final, control, diff, both)
    if hint is not None:
        obs, fp = hint
        return Decision(
            "http.vague_blockpage_words",
            f"The probe's page ({obs.id}) contains words typical of blockpages ({fp.name}) and "
            f"differs from the control's ({control.id}): {diff_words(diff, final, control)}.",
            both,
        )
    if diff.body_mismatch:
        return Decision(
            "http.body_length_hint",
            f"{size_words(final, control, diff)} but "
            f"{'the status and title agree' if diff.title_match else 'the status agrees'}: a hint of a "
            "blockpage, not enough to call it one.",
            both,
        )
    return None


def _blocking_difference(
    f: Facts, final: HttpObservation, control: HttpObservation, diff: HttpDiff, both: tuple[str, ...]
) -> Decision:
    """Several signals agree the page is not the control's: unless TLS or the server's
    own headers vouch for it, a block (by DNS when the answers were not the site's)."""
    authenticated = authenticated_answer(f, final, control, diff)
    if authenticated is not None:
        return authenticated
    signals = diff_words(diff, final, control)
    if f.dns_suspicious():
        return Decision(
            "dns.inconsistent_then_http_diff",
            f"The probe's DNS answers {listed(f.probe_addresses)} ({ids_of(f.dns)}) share no address "
            f"with the control's {listed(f.control_addresses)} and the page served from them "
            f"({final.id}) differs from the control's ({control.id}): {signals}.",
            (*both, *(o.id for o in f.dns), *f.control_dns_ids()),
        )
    if not diff.status_mismatch and same_server(final, control, diff):
        return Decision(
            "http.same_server_page_differs",
            f"The probe's page ({final.id}) differs from the control's ({control.id}): {signals}; "
            "but the status and the server's own headers match the control's, so it looks like the "
            "same server's page (a dynamic or cut page), not a blockpage.",
            both,
        )
    rule = "http.status_mismatch" if diff.status_mismatch else "http.body_and_title_mismatch"
    return Decision(
        rule,
        f"The probe's page ({final.id}) differs from the control's ({control.id}): {signals}; "
        "no blockpage fingerprint matched, so this is not confirmed.",
        both,
    )


def http_failure(f: Facts) -> Decision | None:
    final = f.final
    if final is None or final.failure is None:
        return None
    chain_ids = [o.id for o in f.m.http]
    control_chain = f.control.http if f.control is not None else []
    control_ids = [o.id for o in control_chain]
    if not f.control_full:
        return Decision(
            "control.unavailable",
            f"The probe's request to {final.url} failed ({final.failure}, {final.id}), but "
            f"{no_control_words(f.m)}, so a server fault cannot be ruled out.",
            tuple(chain_ids),
        )
    control_hosts = {host_name(urlsplit(o.url).hostname or "") for o in control_chain}
    elsewhere = [
        o for o in f.m.http[1:] if host_name(urlsplit(o.url).hostname or "") not in control_hosts | {f.host}
    ]
    if final.ip is None and final.failure == Failure.DNS_NXDOMAIN:
        target = host_name(urlsplit(final.url).hostname or "")
        if target in control_hosts and not elsewhere:
            dns_ids = [o.id for o in f.m.dns if host_name(o.hostname) == target]
            return Decision(
                "dns.redirect_target_vs_control",
                f"The site redirected to {target}, which the probe could not resolve ({final.id}, "
                f"{listed(dns_ids)}) while the control loaded it ({listed(control_ids)}).",
                (*chain_ids, *dns_ids, *control_ids),
            )
    if elsewhere:
        hop = elsewhere[0]
        return Decision(
            "http.redirect_elsewhere",
            f"The probe was redirected to {hop.url} ({hop.id}), a host the control never saw, and its "
            "request "
            f"then failed ({final.failure}, {final.id}); no blockpage fingerprint matched, so this is not "
            "confirmed.",
            (*chain_ids, *control_ids),
        )
    return Decision(
        "http.failure_vs_control",
        f"The probe's request to {final.url} failed ({final.failure}, {final.id}) after connecting, while "
        f"the control loaded it with status {f.control_final.status_code if f.control_final else '?'} "
        f"({listed(control_ids)}).",
        (*chain_ids, *control_ids),
    )


def control_also_failed(f: Facts) -> Decision | None:
    if not f.control_full or page_ok(f.control_final):
        return None
    probe_words, probe_ids = probe_failure_words(f)
    control_ids = [o.id for o in f.control.http] if f.control is not None else []
    if not control_ids and f.control is not None:
        earlier: list[TlsObservation | TcpObservation | DnsObservation] = [
            *f.control.tls,
            *f.control.tcp,
            *f.control.dns,
        ]
        control_ids = [o.id for o in earlier if o.failure is not None]
    return Decision(
        "control.also_failed",
        f"{probe_words[0].upper()}{probe_words[1:]}, and {control_failure_words(f)}: the site is failing "
        "for everyone, not only for this network.",
        (*probe_ids, *control_ids),
    )

"""The TLS rules: failed handshakes (SNI filtering, middlebox certificates) and pages
that validated TLS proves are the site's own answer.
"""

from __future__ import annotations

from analysis.verdicts.compare import HttpDiff
from analysis.verdicts.facts import CERTIFICATE_FAILURES, Facts, handshake_done, leaf_sha256, page_ok
from analysis.verdicts.reasons import diff_words, failure_words, ids_of, no_control_words
from analysis.verdicts.verdict import Decision
from probe.records import HttpObservation, TlsObservation


def tls_handshakes(f: Facts) -> Decision | None:
    """Every handshake for the site's name failed."""
    targets = [o for o in f.m.tls if o.purpose == "target"]
    if not targets or any(o.failure is None for o in targets):
        return None
    control_tls = [o for o in f.control.tls if o.purpose == "target"] if f.control is not None else []
    ids = [o.id for o in targets]
    bad_certs = [o for o in targets if o.certificates and o.failure in CERTIFICATE_FAILURES]
    if bad_certs:
        return _bad_certificate(f, bad_certs[0], control_tls, ids)
    return _handshake_failed(f, targets, control_tls, ids)


def _bad_certificate(
    f: Facts, obs: TlsObservation, control_tls: list[TlsObservation], ids: list[str]
) -> Decision:
    """A certificate was presented and did not validate: a middlebox's, unless the control
    validated the very same one."""
    same_ip = [c for c in control_tls if c.ip == obs.ip and c.validated is True]
    valid = same_ip or [c for c in control_tls if c.validated is True]
    words = (
        f"The probe's TLS handshake with {obs.ip} for {f.host} got a certificate that does not validate "
        f"({obs.failure}, issuer {obs.certificates[0].issuer!r}, {obs.id})"
    )
    if not f.control_full:
        return Decision(
            "control.unavailable",
            f"{words}, but {no_control_words(f.m)}, so a misconfigured site cannot be ruled out.",
            tuple(ids),
        )
    if not valid:
        return Decision(
            "unexplained",
            f"{words}; the control loaded the page but recorded no valid certificate to compare with.",
            tuple(ids),
        )
    ctrl = valid[0]
    if leaf_sha256(ctrl) is not None and leaf_sha256(ctrl) == leaf_sha256(obs):
        return Decision(
            "tls.untrusted_same_certificate",
            f"{words}, yet it is the very certificate the control validated ({ctrl.id}): the probe's "
            "trust store, not the network, is the likelier cause.",
            (obs.id, ctrl.id),
        )
    return Decision(
        "tls.invalid_certificate_vs_control",
        f"{words}, while the control got a valid certificate from {ctrl.ip} ({ctrl.id}): a middlebox "
        "substituted its own certificate.",
        (obs.id, ctrl.id),
    )


def _handshake_failed(
    f: Facts, targets: list[TlsObservation], control_tls: list[TlsObservation], ids: list[str]
) -> Decision:
    """Handshakes cut (reset, timeout, EOF): compared with a handshake for an innocuous
    name to the same address, and with the control's."""
    obs = targets[0]
    target_ips = {t.ip for t in targets}
    comparison = [
        o for o in f.m.tls if o.purpose == "comparison" and o.ip in target_ips and handshake_done(o)
    ]
    comparison_failed = [
        o for o in f.m.tls if o.purpose == "comparison" and o.ip in target_ips and not handshake_done(o)
    ]
    words = f"The probe's TLS handshake for {f.host} with {obs.ip} failed ({obs.failure}, {ids_of(targets)})"
    if not f.control_full:
        extra = (
            f"; a handshake with another name to the same address completed ({comparison[0].id}), "
            "which points "
            "to SNI filtering,"
            if comparison
            else ""
        )
        return Decision(
            "control.unavailable",
            f"{words}{extra} but {no_control_words(f.m)}, so a server fault cannot be ruled out.",
            (*ids, *(o.id for o in comparison)),
        )
    same_ip = [c for c in control_tls if c.ip in target_ips]
    done = [c for c in same_ip if handshake_done(c)]
    if not done:
        return _control_handshake_failed(words, ids, same_ip, comparison)
    ctrl = done[0]
    if comparison:
        return Decision(
            "tls.sni_filtering",
            f"{words}, while a handshake with another name to the same address completed "
            f"({comparison[0].id}) and the control's handshake for {f.host} completed ({ctrl.id}): the name "
            "in the ClientHello was filtered (SNI-based blocking).",
            (*ids, comparison[0].id, ctrl.id),
        )
    if comparison_failed:
        return Decision(
            "tcp.interference_any_name",
            f"{words}, a handshake with an innocuous name to the same address failed too "
            f"({failure_words(comparison_failed[0])}, {comparison_failed[0].id}), "
            "while the control's completed "
            f"({ctrl.id}): connections to {obs.ip} are cut whatever the name (IP-based blocking).",
            (*ids, comparison_failed[0].id, ctrl.id),
        )
    return Decision(
        "tls.handshake_vs_control",
        f"{words} while the control's handshake with the same address completed ({ctrl.id}).",
        (*ids, ctrl.id),
    )


def _control_handshake_failed(
    words: str, ids: list[str], same_ip: list[TlsObservation], comparison: list[TlsObservation]
) -> Decision:
    """No handshake of the control's with those addresses completed."""
    if same_ip:
        return Decision(
            "tls.failure_in_control_too",
            f"{words}, and the control's handshake with the same address failed too "
            f"({failure_words(same_ip[0])}, {ids_of(same_ip)}).",
            (*ids, *(c.id for c in same_ip)),
        )
    if comparison:
        return Decision(
            "tls.sni_filtering",
            f"{words}, while a handshake with another name to the same address completed "
            f"({comparison[0].id}) and the control loaded the page: the name in the ClientHello "
            "was filtered (SNI-based blocking).",
            (*ids, comparison[0].id),
        )
    return Decision(
        "tls.handshake_unverified",
        f"{words}; the control did not try the same address, so a fault of that server cannot be ruled out.",
        tuple(ids),
    )


def sni_evidence(f: Facts) -> Decision | None:
    """SNI filtering decides before any DNS comparison: a handshake for the site's name
    cut while one with an innocuous name to the same address completed is evidence about
    the name itself, whatever addresses the resolver gave."""
    if not f.control_full or not page_ok(f.control_final):
        return None
    decision = tls_handshakes(f)
    if decision is not None and decision.rule_id == "tls.sni_filtering":
        return decision
    return None


def authenticated_answer(
    f: Facts, final: HttpObservation, control: HttpObservation, diff: HttpDiff
) -> Decision | None:
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
    signals = diff_words(diff, final, control)
    both = (*(o.id for o in f.m.http), control.id, mine.id)
    if same is not None:
        return Decision(
            "http.authenticated_site_answer",
            f"The probe's page ({final.id}) differs from the control's ({control.id}): {signals}; but it "
            f"came over TLS validated for {f.host} ({mine.id}) with the very certificate the control saw "
            f"({same.id}), so it is the site's own answer (a challenge or error page), not a block.",
            (*both, same.id),
        )
    return Decision(
        "http.authenticated_page_differs",
        f"The probe's page ({final.id}) differs from the control's ({control.id}): {signals}; it came over "
        f"TLS validated for {f.host} ({mine.id}), but the control saw another certificate, so a content "
        "delivery network's own page cannot be told from interception with a trusted certificate.",
        both,
    )

"""The order of precedence: which rule decides a measurement, and the entry points.

The principles behind the order are in :mod:`analysis.verdicts` and ``docs/verdicts.md``;
each layer's rules are in :mod:`~analysis.verdicts.dns`, :mod:`~analysis.verdicts.tcp`,
:mod:`~analysis.verdicts.tls` and :mod:`~analysis.verdicts.http`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from analysis.asn import AsnLookup, default_lookup
from analysis.fingerprints import FingerprintSet
from analysis.verdicts.dns import (
    control_address_handshake,
    dns_failure,
    dns_inconsistent,
    dns_lie,
    ghost_dns,
)
from analysis.verdicts.facts import Facts, answered, final_response
from analysis.verdicts.http import answered_page, control_also_failed, http_blockpage, http_failure
from analysis.verdicts.reasons import no_control_words, probe_failure_words
from analysis.verdicts.tcp import tcp_connects
from analysis.verdicts.tls import sni_evidence, tls_handshakes
from analysis.verdicts.verdict import Decision, Verdict, make_verdict
from probe.records import Measurement

#: When the probe's final request got no answer: the failing layer, in this order.
_WHEN_NO_PAGE: tuple[Callable[[Facts], Decision | None], ...] = (
    dns_failure,
    ghost_dns,
    control_also_failed,
    sni_evidence,
    control_address_handshake,
    dns_inconsistent,
    tcp_connects,
    tls_handshakes,
    http_failure,
)


def _fallback(f: Facts) -> Decision:
    probe_words, probe_ids = probe_failure_words(f)
    if not f.control_full:
        return Decision(
            "control.unavailable",
            f"{probe_words[0].upper()}{probe_words[1:]}, but {no_control_words(f.m)}, so an outage "
            "cannot be "
            "ruled out.",
            tuple(probe_ids),
        )
    return Decision(
        "unexplained",
        f"{probe_words[0].upper()}{probe_words[1:]} while the control loaded the page, and no rule explains "
        "how.",
        tuple(probe_ids),
    )


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
        return make_verdict(
            m,
            Decision(
                "probe.offline",
                f"Every canary of run {m.run_id} failed, so the probe's own connection was down and nothing "
                f"can be said about {m.domain}.",
            ),
        )
    if not (m.dns or m.tcp or m.tls or m.http):
        return make_verdict(
            m,
            Decision(
                "probe.no_observations",
                f"The measurement of {m.url} recorded no DNS, TCP, TLS or HTTP observation.",
            ),
        )
    f = Facts.of(m, fingerprints, asns)
    lie = dns_lie(f)
    if lie is not None and not answered(f.final):
        return make_verdict(m, lie)
    blockpage = http_blockpage(f)
    if blockpage is not None:
        return make_verdict(m, lie or blockpage)
    page = answered_page(f, lie)
    if page is not None:
        return make_verdict(m, page)
    for rule in _WHEN_NO_PAGE:
        decision = rule(f)
        if decision is not None:
            return make_verdict(m, decision)
    return make_verdict(m, _fallback(f))


def canary_failed(canary: Measurement) -> bool:
    """A canary failed when no page came back: DNS, TCP, TLS or the request itself failed.
    A 5xx still proves the probe's link works."""
    return not answered(final_response(canary.http))


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

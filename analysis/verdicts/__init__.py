"""Per-measurement verdicts: was this URL accessible, blocked, down, or can we not tell?

Pure functions over archival records (:mod:`probe.records`): no I/O, no clock, so any
stored measurement can be re-judged with newer rules and give the same answer for the
same ``RULES_VERSION``.  The rules follow OONI Web Connectivity (compare what the probe
saw with what an uncensored control saw, layer by layer: DNS, TCP, TLS, HTTP) and OONI's
newer pipeline (every verdict names the rule that fired; a block is *confirmed* only
with an artefact: a blockpage fingerprint, a bogon DNS answer, a middlebox certificate).

The highest principle: **a false "blocked" is the worst bug**, since journalists cite
these verdicts.  Hence, in this order of precedence:

1. ``probe_offline`` (every canary of the run failed) beats everything: no verdict on
   the site can be drawn from a dead link.
2. A blockpage fingerprint (a known address or page) is proof, even without a control.
3. When the probe reached the site and its page is consistent with the control's (or
   there is no control page to compare with), the site is not blocked, whatever DNS,
   TCP or TLS oddities were recorded on the way.  If a resolver lied while the page
   still loaded through other addresses the verdict is ``inconclusive``, never blocked.
4. When the probe failed, the failing layer is compared with the control: the control
   failing too means ``down``; the control succeeding where the probe failed means
   ``blocked`` at that layer; no control means ``inconclusive``, and the reason says
   what could not be ruled out.
5. An HTTP difference without a fingerprint is ``blocked`` only when signals agree: a
   status code the control did not get, or a body whose length differs (smaller/larger
   at most 0.7) *and* a title that differs.  A length difference alone is a hint
   (Jones et al. 2014: about 95 % true positives) and gives ``inconclusive``.

``blocking`` is set only when ``status == "blocked"``; for other statuses the suspected
layer is in the reason.

Rule ids (each verdict carries one, with :data:`RULES_VERSION`); see :data:`RULES` and
``docs/verdicts.md`` for the full table::

    probe.offline                       probe_offline  -
    probe.no_observations               inconclusive   -
    dns.injected_blockpage_address      blocked        dns           confirmed
    dns.injected_reply                  blocked        dns
    dns.injected_reply_unverified       inconclusive   -
    dns.blockpage_address               blocked        dns           confirmed
    dns.blockpage_address_unconfirmed   blocked        dns
    dns.vague_blockpage_address         blocked        dns
    dns.bogon_answer                    blocked        dns           confirmed
    dns.lie_bypassed                    inconclusive   -
    http.blockpage_fingerprint          blocked        http-diff     confirmed
    http.blockpage_fingerprint_unconfirmed  blocked    http-diff
    dns.blockpage_served                blocked        dns           confirmed
    dns.control_addresses_reachable     blocked        dns
    dns.ghost_answer                    blocked        dns
    http.authenticated_site_answer      accessible     -
    http.authenticated_page_differs     inconclusive   -
    http.consistent_with_control        accessible     -
    http.reached_without_control_page   accessible     -
    http.status_mismatch                blocked        http-diff
    http.body_and_title_mismatch        blocked        http-diff
    http.same_server_page_differs       inconclusive   -
    http.vague_blockpage_words          blocked        http-diff
    dns.inconsistent_then_http_diff     blocked        dns
    http.known_false_positive_page      inconclusive   -
    http.body_length_hint               inconclusive   -
    http.server_error_everywhere        down           -
    http.server_error_without_control   inconclusive   -
    dns.nxdomain_vs_control             blocked        dns
    dns.error_vs_control                blocked        dns
    dns.timeout_vs_control              inconclusive   -
    dns.failure_in_control_too          down           -
    dns.failure_without_control         inconclusive   -
    control.also_failed                 down           -
    dns.inconsistent_bad_certificate    blocked        dns
    dns.inconsistent_unverified         inconclusive   -
    tcp.connect_vs_control              blocked        tcp_ip
    tcp.connect_unverified              inconclusive   -
    tcp.connect_failed_in_control_too   down           -
    tcp.interference_any_name           blocked        tcp_ip
    tls.sni_filtering                   blocked        tls
    tls.handshake_vs_control            blocked        tls
    tls.invalid_certificate_vs_control  blocked        tls           confirmed
    tls.untrusted_same_certificate      inconclusive   -
    tls.handshake_unverified            inconclusive   -
    tls.failure_in_control_too          down           -
    http.redirect_elsewhere             blocked        http-diff
    http.failure_vs_control             blocked        http-failure
    http.failure_in_control_too         down           -
    dns.redirect_target_vs_control      blocked        dns
    control.unavailable                 inconclusive   -
    unexplained                         inconclusive   -
"""

from analysis.verdicts.judge import (
    BLOCKING_KINDS,
    BODY_PROPORTION_THRESHOLD,
    CERTIFICATE_FAILURES,
    DNS_REFUSALS,
    RULES,
    RULES_VERSION,
    STATUSES,
    TITLE_WORD_MIN,
    VERDICT_COLUMNS,
    Blocking,
    HttpDiff,
    Rule,
    Status,
    Verdict,
    body_proportion,
    canary_failed,
    compare_http,
    headers_match,
    judge,
    judge_all,
    title_match,
    verdicts_frame,
)

__all__ = [
    "BLOCKING_KINDS",
    "RULES",
    "RULES_VERSION",
    "STATUSES",
    "VERDICT_COLUMNS",
    "Blocking",
    "HttpDiff",
    "Rule",
    "Status",
    "Verdict",
    "body_proportion",
    "canary_failed",
    "compare_http",
    "headers_match",
    "judge",
    "judge_all",
    "title_match",
    "verdicts_frame",
]

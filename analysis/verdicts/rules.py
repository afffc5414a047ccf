"""The rules a verdict can be reached by, as data: id, status, blocking, confirmed, summary.

Why literal data rather than a table parsed at import: a reader (and a type checker)
sees each rule as it is, a typo in a status is a type error, not a parse error at
start-up; and ``docs/verdicts.md``'s rule table is generated from this list
(:func:`markdown_table`, ``python -m analysis.verdicts docs/verdicts.md``), so the
two cannot drift apart (``tests/test_verdicts.py`` checks the document is current).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Bumped whenever a rule changes what it decides; stored with every verdict.
RULES_VERSION = "2026.12.1"

Status = Literal["accessible", "blocked", "down", "probe_offline", "inconclusive"]
Blocking = Literal["dns", "tcp_ip", "tls", "http-failure", "http-diff"]
STATUSES: tuple[Status, ...] = ("accessible", "blocked", "down", "probe_offline", "inconclusive")
BLOCKING_KINDS: tuple[Blocking, ...] = ("dns", "tcp_ip", "tls", "http-failure", "http-diff")


@dataclass(frozen=True, slots=True)
class Rule:
    """One way a verdict can be reached; its id is stable across versions."""

    id: str
    status: Status
    blocking: Blocking | None
    confirmed: bool
    summary: str


#: In the order the documentation lists them (roughly the order of precedence).
RULE_LIST: tuple[Rule, ...] = (
    Rule(
        "probe.offline",
        "probe_offline",
        None,
        False,
        "Every canary of the run failed: the probe was offline.",
    ),
    Rule("probe.no_observations", "inconclusive", None, False, "The measurement recorded no observation."),
    Rule(
        "dns.injected_blockpage_address",
        "blocked",
        "dns",
        True,
        "Two differing replies to one query, the first a known blockpage address.",
    ),
    Rule(
        "dns.injected_reply",
        "blocked",
        "dns",
        False,
        "Two differing replies to one DNS query; the control resolved the name.",
    ),
    Rule(
        "dns.injected_reply_unverified",
        "inconclusive",
        None,
        False,
        "Two differing replies to one DNS query; no control to compare with.",
    ),
    Rule("dns.blockpage_address", "blocked", "dns", True, "A DNS answer is a known blockpage address."),
    Rule(
        "dns.blockpage_address_unconfirmed",
        "blocked",
        "dns",
        False,
        "A DNS answer matches a blockpage fingerprint whose scope or country does not fit the probe.",
    ),
    Rule(
        "dns.vague_blockpage_address",
        "blocked",
        "dns",
        False,
        "An answer is an address conventionally used to block; the control's differ.",
    ),
    Rule(
        "dns.bogon_answer",
        "blocked",
        "dns",
        True,
        "An answer is a private/loopback/unspecified address; the control's are all public.",
    ),
    Rule(
        "dns.lie_bypassed",
        "inconclusive",
        None,
        False,
        "A resolver gave a blocking answer, but the page loaded through other addresses.",
    ),
    Rule(
        "http.blockpage_fingerprint",
        "blocked",
        "http-diff",
        True,
        "A response in the chain matches a blockpage fingerprint (body or header).",
    ),
    Rule(
        "http.blockpage_fingerprint_unconfirmed",
        "blocked",
        "http-diff",
        False,
        "A response matches a blockpage fingerprint whose scope or country does not fit the probe.",
    ),
    Rule(
        "dns.blockpage_served",
        "blocked",
        "dns",
        True,
        "A blockpage came from an address only the probe's resolver gave.",
    ),
    Rule(
        "dns.control_addresses_reachable",
        "blocked",
        "dns",
        False,
        "The resolver's addresses failed; the site answered the probe at the control's addresses.",
    ),
    Rule(
        "dns.ghost_answer",
        "blocked",
        "dns",
        False,
        "The control found no address for the name; the probe's resolver invented one.",
    ),
    Rule(
        "http.authenticated_site_answer",
        "accessible",
        None,
        False,
        "The page differs, but came over TLS validated with the certificate the control saw.",
    ),
    Rule(
        "http.authenticated_page_differs",
        "inconclusive",
        None,
        False,
        "The page differs over validated TLS, with a certificate the control did not see.",
    ),
    Rule(
        "http.consistent_with_control",
        "accessible",
        None,
        False,
        "The final page matches the control's (status, length or title).",
    ),
    Rule(
        "http.reached_without_control_page",
        "accessible",
        None,
        False,
        "The probe loaded the page; no control page to compare; no fingerprint.",
    ),
    Rule(
        "http.status_mismatch",
        "blocked",
        "http-diff",
        False,
        "The probe got a non-2xx status the control did not get.",
    ),
    Rule(
        "http.body_and_title_mismatch",
        "blocked",
        "http-diff",
        False,
        "Body length (proportion <= 0.7) and title both differ from the control's.",
    ),
    Rule(
        "http.same_server_page_differs",
        "inconclusive",
        None,
        False,
        "Body and title differ, but the status and an uncommon header match the control's.",
    ),
    Rule(
        "http.vague_blockpage_words",
        "blocked",
        "http-diff",
        False,
        "The page has vague blocking words and differs from the control's.",
    ),
    Rule(
        "dns.inconsistent_then_http_diff",
        "blocked",
        "dns",
        False,
        "Answers share nothing with the control's; the page from them differs.",
    ),
    Rule(
        "http.known_false_positive_page",
        "inconclusive",
        None,
        False,
        "The page differs but matches a known non-blockpage fingerprint.",
    ),
    Rule(
        "http.body_length_hint",
        "inconclusive",
        None,
        False,
        "Only the body length differs: a hint, not enough for a verdict.",
    ),
    Rule(
        "http.server_error_everywhere",
        "down",
        None,
        False,
        "The server answered 5xx to both probe and control.",
    ),
    Rule(
        "http.server_error_without_control",
        "inconclusive",
        None,
        False,
        "The server answered 5xx to the probe; no control page.",
    ),
    Rule(
        "dns.nxdomain_vs_control",
        "blocked",
        "dns",
        False,
        "The probe's resolvers said NXDOMAIN while the control resolved the name.",
    ),
    Rule(
        "dns.error_vs_control",
        "blocked",
        "dns",
        False,
        "No address (no answer, SERVFAIL, REFUSED) while the control resolved.",
    ),
    Rule(
        "dns.timeout_vs_control",
        "inconclusive",
        None,
        False,
        "Resolvers timed out or failed while the control resolved: maybe the resolver.",
    ),
    Rule(
        "dns.failure_in_control_too",
        "down",
        None,
        False,
        "Neither the probe nor the control could resolve the name.",
    ),
    Rule(
        "dns.failure_without_control",
        "inconclusive",
        None,
        False,
        "The probe could not resolve the name; no DNS control.",
    ),
    Rule(
        "control.also_failed",
        "down",
        None,
        False,
        "The probe failed and the control failed to load the page too.",
    ),
    Rule(
        "dns.inconsistent_bad_certificate",
        "blocked",
        "dns",
        False,
        "Answers share nothing with the control's and give an invalid certificate.",
    ),
    Rule(
        "dns.inconsistent_unverified",
        "inconclusive",
        None,
        False,
        "Answers share nothing with the control's; no TLS check possible (a CDN?).",
    ),
    Rule(
        "tcp.connect_vs_control",
        "blocked",
        "tcp_ip",
        False,
        "Connects failed; the control's connects to the same addresses worked.",
    ),
    Rule(
        "tcp.connect_unverified",
        "inconclusive",
        None,
        False,
        "Connects failed; the control did not try the same addresses, or no control.",
    ),
    Rule(
        "tcp.connect_failed_in_control_too",
        "down",
        None,
        False,
        "Connects to the same addresses failed for the control too.",
    ),
    Rule(
        "tcp.interference_any_name",
        "blocked",
        "tcp_ip",
        False,
        "Connections cut after connect for any name, control fine (IP blocking).",
    ),
    Rule(
        "tls.sni_filtering",
        "blocked",
        "tls",
        False,
        "Handshake for the site's name failed; another name to the same address worked.",
    ),
    Rule(
        "tls.handshake_vs_control",
        "blocked",
        "tls",
        False,
        "Handshake reset/timeout/EOF; the control's to the same address completed.",
    ),
    Rule(
        "tls.invalid_certificate_vs_control",
        "blocked",
        "tls",
        True,
        "Certificate does not validate and differs from the control's valid one.",
    ),
    Rule(
        "tls.untrusted_same_certificate",
        "inconclusive",
        None,
        False,
        "The probe distrusts the certificate the control validated (trust store?).",
    ),
    Rule(
        "tls.handshake_unverified",
        "inconclusive",
        None,
        False,
        "The TLS handshake failed; the control did not try the same address.",
    ),
    Rule("tls.failure_in_control_too", "down", None, False, "The TLS handshake failed for the control too."),
    Rule(
        "http.redirect_elsewhere",
        "blocked",
        "http-diff",
        False,
        "Redirected to a host the control never saw, then failed.",
    ),
    Rule(
        "http.failure_vs_control",
        "blocked",
        "http-failure",
        False,
        "The request failed (reset, timeout, EOF) while the control's succeeded.",
    ),
    Rule("http.failure_in_control_too", "down", None, False, "The HTTP request failed for the control too."),
    Rule(
        "dns.redirect_target_vs_control",
        "blocked",
        "dns",
        False,
        "A redirect's host did not resolve for the probe but did for the control.",
    ),
    Rule(
        "control.unavailable",
        "inconclusive",
        None,
        False,
        "The probe failed and no control could tell blocking from an outage.",
    ),
    Rule("unexplained", "inconclusive", None, False, "No rule explains what was observed."),
)

#: Every rule by id; the table in ``docs/verdicts.md`` lists the same ids.
RULES: dict[str, Rule] = {rule.id: rule for rule in RULE_LIST}

#: The lines around the generated table in ``docs/verdicts.md``.
TABLE_START = "<!-- generated from analysis/verdicts/rules.py: python -m analysis.verdicts -->"
TABLE_END = "<!-- end of rule table -->"


def markdown_table() -> str:
    """The rule table of ``docs/verdicts.md``, one row per rule."""
    rows = [
        "| rule id | status | blocking | confirmed | when |",
        "|---|---|---|---|---|",
        *(
            f"| `{r.id}` | {r.status} | {r.blocking or '-'} | {'yes' if r.confirmed else 'no'} "
            f"| {r.summary} |"
            for r in RULE_LIST
        ),
    ]
    return "\n".join(rows) + "\n"


def with_current_table(document: str) -> str:
    """``document`` with the text between :data:`TABLE_START` and :data:`TABLE_END` replaced
    by :func:`markdown_table`; a document without the markers is a :class:`ValueError`."""
    head, start, rest = document.partition(TABLE_START + "\n")
    _, end, tail = rest.partition(TABLE_END)
    if not start or not end:
        raise ValueError(f"the document has no {TABLE_START!r} ... {TABLE_END!r} section")
    return f"{head}{start}{markdown_table()}{end}{tail}"

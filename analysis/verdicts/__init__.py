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

Each verdict carries the id of the rule that decided it, with :data:`RULES_VERSION`; the
rules are data in :mod:`analysis.verdicts.rules`, and ``docs/verdicts.md``'s table is
generated from them.

The package, bottom-up: :mod:`~analysis.verdicts.rules` (the rule table, as data),
:mod:`~analysis.verdicts.verdict` (the verdict record and a rule's decision),
:mod:`~analysis.verdicts.facts` (what a measurement shows, computed once),
:mod:`~analysis.verdicts.compare` (OONI's page comparisons),
:mod:`~analysis.verdicts.reasons` (the words of a reason), one module of rules per layer
(:mod:`~analysis.verdicts.dns`, :mod:`~analysis.verdicts.tcp`,
:mod:`~analysis.verdicts.tls`, :mod:`~analysis.verdicts.http`), and
:mod:`~analysis.verdicts.judge` (the order of precedence and the entry points).
"""

from analysis.verdicts.compare import (
    BODY_PROPORTION_THRESHOLD,
    TITLE_WORD_MIN,
    HttpDiff,
    body_proportion,
    compare_http,
    headers_match,
    title_match,
)
from analysis.verdicts.facts import CERTIFICATE_FAILURES, DNS_REFUSALS
from analysis.verdicts.judge import canary_failed, judge, judge_all
from analysis.verdicts.rules import BLOCKING_KINDS, RULES, RULES_VERSION, STATUSES, Blocking, Rule, Status
from analysis.verdicts.verdict import VERDICT_COLUMNS, Verdict, compact_verdicts, verdicts_frame

__all__ = [
    "BLOCKING_KINDS",
    "BODY_PROPORTION_THRESHOLD",
    "CERTIFICATE_FAILURES",
    "DNS_REFUSALS",
    "RULES",
    "RULES_VERSION",
    "STATUSES",
    "TITLE_WORD_MIN",
    "VERDICT_COLUMNS",
    "Blocking",
    "HttpDiff",
    "Rule",
    "Status",
    "Verdict",
    "body_proportion",
    "canary_failed",
    "compact_verdicts",
    "compare_http",
    "headers_match",
    "judge",
    "judge_all",
    "title_match",
    "verdicts_frame",
]

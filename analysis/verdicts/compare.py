"""OONI Web Connectivity's comparisons of the probe's final response with the control's.

Why apart: these are OONI's published heuristics (body proportion, title word,
uncommon headers), public API on their own (``compare_http`` is used by the export),
and the thresholds should be read in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.verdicts.facts import is_2xx
from probe.records import HttpObservation

#: OONI's threshold: bodies "match" when the smaller is over 0.7 of the larger.
BODY_PROPORTION_THRESHOLD = 0.7


#: OONI compares the first word of ``<title>`` only when it is longer than this.
TITLE_WORD_MIN = 5


# OONI's list of headers every server sends; only the others say which software answered.
COMMON_HEADERS = frozenset(
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


def is_html(obs: HttpObservation) -> bool:
    """Whether the recorded body is an HTML document: only then does a missing ``<title>``
    make a different page (a bare or placeholder body without markup says nothing)."""
    head = obs.body_sample[:2048].lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<?xml")) or b"<head" in head or b"<body" in head


def headers_match(probe: HttpObservation, control: HttpObservation) -> bool:
    """OONI's check: every uncommon header name appears on both sides."""
    ours = {k.lower() for k, _ in probe.headers} - COMMON_HEADERS
    theirs = {k.lower() for k, _ in control.headers} - COMMON_HEADERS
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
    status_mismatch = probe.status_code != control.status_code and not is_2xx(probe.status_code)
    # A probe body cut at the byte cap is at least that long: never a blockpage, and its
    # length says nothing about the real page's (an imported OONI probe body may be cut
    # where the control's never is).  A truncated control only makes the ratio an upper
    # bound, so a small probe body still counts as a mismatch.
    proportion = 1.0 if probe.body_truncated else body_proportion(probe.body_length, control.body_length)
    return HttpDiff(
        status_mismatch=status_mismatch,
        body_proportion=proportion,
        body_mismatch=proportion <= BODY_PROPORTION_THRESHOLD,
        title_match=title_match(probe.title, control.title) if is_html(probe) or probe.title else None,
        headers_match=headers_match(probe, control),
    )


def same_server(final: HttpObservation, control: HttpObservation, diff: HttpDiff) -> bool:
    """OONI's exculpation (Web Connectivity LTE): the same status and at least one
    uncommon header name in common (``X-Varnish``, a backend id...) mean the same server
    answered, whatever its body; a blockpage box does not send the site's own headers.
    ``diff`` is unused but keeps the call site's facts together."""
    del diff
    if final.status_code != control.status_code:
        return False
    ours = {k.lower() for k, _ in final.headers} - COMMON_HEADERS
    theirs = {k.lower() for k, _ in control.headers} - COMMON_HEADERS
    return bool(ours & theirs)

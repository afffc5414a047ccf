"""Words for reasons: the phrases a verdict's one-sentence reason is built from.

Why apart: the reason is what a journalist quotes, so its wording is kept together
and consistent across layers; the rules decide, these functions only describe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from analysis.fingerprints import Fingerprint
from analysis.verdicts.compare import HttpDiff
from analysis.verdicts.facts import Facts
from probe.records import DnsObservation, HttpObservation, Measurement


def resolver_words(obs: DnsObservation) -> str:
    return (
        "the system resolver" if obs.transport == "system" else f"resolver {obs.resolver} ({obs.transport})"
    )


def listed(values: Iterable[str], limit: int = 3) -> str:
    items = list(values)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def ids_of(observations: Iterable[Any]) -> str:
    return ", ".join(o.id for o in observations)


def failure_words(obs: Any) -> str:
    return str(obs.failure) if obs.failure is not None else "no failure"


def control_failure_words(f: Facts) -> str:
    final = f.control_final
    if final is None:
        return "the control loaded no page"
    if final.failure is not None:
        return f"the control's request failed too ({final.failure}, {final.id})"
    return f"the control got status {final.status_code} ({final.id})"


def no_control_words(m: Measurement) -> str:
    if m.control is None:
        return "no control measurement was made"
    if m.control.failure is not None:
        return f"the control helper could not be asked ({m.control.failure})"
    return "only a DNS control was available"


def elsewhere_words(fp: Fingerprint, probe_cc: str | None) -> str:
    """Why a blockpage match is not proof of blocking by the probe's state or ISP."""
    if fp.expected_countries:
        return (
            f"; that fingerprint is known from {listed(fp.expected_countries)}, not from "
            f"{probe_cc or 'an unknown country'}, so this is not confirmed"
        )
    return (
        f"; that fingerprint (scope {fp.scope}) is a product also used by companies and schools, "
        "so a block by the ISP is not confirmed"
    )


def size_words(final: HttpObservation, control: HttpObservation, diff: HttpDiff) -> str:
    """The size comparison the right way round: the smaller page is N% of the larger."""
    probe_words = f"the probe's page ({final.id}, {final.body_length} bytes)"
    control_words = f"the control's page ({control.id}, {control.body_length} bytes)"
    small, large = (probe_words, control_words)
    if final.body_length > control.body_length:
        small, large = large, small
    text = f"{small} is {diff.body_proportion:.0%} the size of {large}"
    return text[0].upper() + text[1:]


def diff_words(diff: HttpDiff, probe: HttpObservation, control: HttpObservation) -> str:
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


def probe_failure_words(f: Facts) -> tuple[str, list[str]]:
    """The probe's first failing step, for a reason."""
    if f.final is not None and f.final.failure is not None:
        return f"the probe's request to {f.final.url} failed ({f.final.failure}, {f.final.id})", [f.final.id]
    failed_tls = [o for o in f.m.tls if o.purpose == "target" and o.failure is not None]
    if failed_tls:
        return f"the probe's TLS handshakes failed ({failure_words(failed_tls[0])}, {ids_of(failed_tls)})", [
            o.id for o in failed_tls
        ]
    failed_tcp = [o for o in f.m.tcp if o.failure is not None]
    if failed_tcp:
        return f"the probe's connects failed ({failure_words(failed_tcp[0])}, {ids_of(failed_tcp)})", [
            o.id for o in failed_tcp
        ]
    return "the probe loaded no page", [o.id for o in f.m.http]

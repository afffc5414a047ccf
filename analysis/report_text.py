"""Every sentence a report prints, written once in English and translated through the
gettext catalogs (:mod:`analysis.i18n`).

Why one module: journalists quote these sentences, so their wording is part of the
evidence.  Each sentence is one message with named placeholders, so a translator can
reorder it; counts go through ``ngettext`` so Russian gets its three plural forms;
days come from Babel's CLDR data.  Durations are brackets ("between 59 and 62 days"),
and never say "0": a block shorter than the unit is "less than an hour".
"""

from __future__ import annotations

import math
from datetime import datetime

from analysis.i18n import LANGUAGES, format_day, gettext_, ngettext_


def N_(message: str) -> str:
    """Mark a message for extraction; translated where it is used."""
    return message


METHOD_MESSAGES: dict[str | None, str] = {
    "dns": N_("DNS tampering"),
    "tcp_ip": N_("IP blocking"),
    "tls": N_("TLS/SNI interference"),
    "http-failure": N_("a cut HTTP connection"),
    "http-diff": N_("a blockpage"),
    None: N_("an unidentified method"),
}


def method_words(method: str | None, lang: str) -> str:
    return gettext_(lang, METHOD_MESSAGES.get(method, METHOD_MESSAGES[None]))


def day(t: datetime, lang: str) -> str:
    return format_day(t, lang)


def _hours(n: int, lang: str) -> str:
    return ngettext_(lang, "{n} hour", "{n} hours", n).format(n=n)


def _days(n: int, lang: str) -> str:
    return ngettext_(lang, "{n} day", "{n} days", n).format(n=n)


def duration(low: float, high: float | None, lang: str, *, ongoing: bool = False) -> str:
    """The duration bracket in words, in hours below two days and in days above.

    The lower figure is rounded down and the upper one up, so the bracket only widens.
    Each form is its own message: in Russian "at least" and "up to" govern the case of
    the noun, so "{n} hours" cannot simply be put inside them."""
    open_ended = high is None or ongoing
    # mypy: high is not None when the bracket is not open-ended
    in_hours = (low if open_ended else high) < 2  # type: ignore[operator]
    scale = 24.0 if in_hours else 1.0
    lo = math.floor(low * scale + 1e-9)
    if open_ended:
        if lo == 0:
            return gettext_(lang, "just begun, duration not yet known")
        if in_hours:
            return ngettext_(lang, "at least {n} hour", "at least {n} hours", lo).format(n=lo)
        return ngettext_(lang, "at least {n} day", "at least {n} days", lo).format(n=lo)
    # mypy: as above, high is set on this path
    hi = max(1, math.ceil(high * scale - 1e-9))  # type: ignore[operator]
    if lo == hi:
        return _hours(lo, lang) if in_hours else _days(lo, lang)
    if lo == 0:
        if in_hours:
            return ngettext_(lang, "up to {n} hour", "up to {n} hours", hi).format(n=hi)
        return ngettext_(lang, "up to {n} day", "up to {n} days", hi).format(n=hi)
    # The noun follows the upper number, as it does when read aloud.
    if in_hours:
        words = ngettext_(lang, "between {low} and {high} hour", "between {low} and {high} hours", hi)
    else:
        words = ngettext_(lang, "between {low} and {high} day", "between {low} and {high} days", hi)
    return words.format(low=lo, high=hi)


def _of_measurements(blocked: int, total: int, lang: str) -> str:
    return ngettext_(
        lang, "{blocked} of {total} measurement", "{blocked} of {total} measurements", total
    ).format(blocked=blocked, total=total)


def blocked_sentence(
    *,
    lang: str,
    domain: str,
    network: str,
    method: str | None,
    first: datetime,
    last: datetime,
    low: float,
    high: float | None,
    ongoing: bool,
    blocked: int,
    total: int,
) -> str:
    values = {
        "domain": domain,
        "network": network,
        "method": method_words(method, lang),
        "first": day(first, lang),
        "last": day(last, lang),
        "duration": duration(low, high, lang, ongoing=ongoing),
        "counts": _of_measurements(blocked, total, lang),
    }
    if ongoing and first.date() == last.date():
        values |= {"start": f"{first:%H:%M}", "end": f"{last:%H:%M}"}
        message = gettext_(
            lang,
            "{domain} was blocked by {method} on {network} on {first} from {start} UTC, still blocked at the "
            "last measurement at {end} UTC: {duration}, {counts}.",
        )
    elif ongoing:
        message = gettext_(
            lang,
            "{domain} was blocked by {method} on {network} from {first}, still blocked at the last "
            "measurement on {last}: {duration}, {counts}.",
        )
    elif first.date() == last.date():
        message = gettext_(
            lang, "{domain} was blocked by {method} on {network} on {first}: {duration}, {counts}."
        )
    else:
        message = gettext_(
            lang,
            "{domain} was blocked by {method} on {network} from {first} to {last}: {duration}, {counts}.",
        )
    return message.format(**values)


def open_sentence(
    *, lang: str, domain: str, network: str, accessible: int, conclusive: int, first: datetime, last: datetime
) -> str:
    counts = ngettext_(
        lang,
        "{accessible} of {conclusive} conclusive measurement",
        "{accessible} of {conclusive} conclusive measurements",
        conclusive,
    ).format(accessible=accessible, conclusive=conclusive)
    if first.date() == last.date():
        message = gettext_(
            lang, "On {network}, {domain} was not seen blocked: {counts} on {first} found it accessible."
        )
    else:
        message = gettext_(
            lang,
            "On {network}, {domain} was not seen blocked: {counts} from {first} to {last} "
            "found it accessible.",
        )
    return message.format(
        network=network, domain=domain, counts=counts, first=day(first, lang), last=day(last, lang)
    )


def too_few_sentence(*, lang: str, domain: str, network: str, conclusive: int) -> str:
    return ngettext_(
        lang,
        "On {network}, only {n} conclusive measurement of {domain}: too few to say anything.",
        "On {network}, only {n} conclusive measurements of {domain}: too few to say anything.",
        conclusive,
    ).format(network=network, n=conclusive, domain=domain)


#: The notice on every report and Explorer page (and in citation.txt) built from lab or
#: synthetic measurements: one sentence for both, so it reads the same wherever it is shown.
SIMULATED_MESSAGE = N_(
    "SIMULATED DATA: {count} of the {total} measurements shown here are from a lab or synthetic, "
    "not from real volunteers' connections. They say nothing about any real network or website."
)


def simulated_sentence(lang: str, count: int, total: int) -> str:
    return gettext_(lang, SIMULATED_MESSAGE).format(count=count, total=total)


__all__ = [
    "LANGUAGES",
    "METHOD_MESSAGES",
    "N_",
    "SIMULATED_MESSAGE",
    "blocked_sentence",
    "day",
    "duration",
    "method_words",
    "open_sentence",
    "simulated_sentence",
    "too_few_sentence",
]

"""The Explorer's languages: the 'web' gettext domain, dates and ages.

The catalogs are read by :mod:`probe.catalogs`, like the report's and the CLI's.  The
Explorer's pages include the report's partials (the simulated-data banner, the citation
block), whose sentences are translated in the report's catalog, so a page looks a message
up in the 'web' catalog first and then in the 'report' one: each sentence has one
translation.  English is the source language.
"""

from __future__ import annotations

import functools
import gettext
from datetime import UTC, datetime, timedelta

from babel.dates import format_date, format_datetime, format_timedelta

from probe import catalogs
from probe.catalogs import LANGUAGE_NAMES, LANGUAGES

DOMAIN = "web"
#: The report's domain, for the partials the Explorer shares with it.
SHARED_DOMAIN = "report"


def translations(lang: str) -> gettext.NullTranslations:
    """The Explorer's catalog in ``lang``, falling back to the report's."""
    return catalogs.chained(lang, DOMAIN, SHARED_DOMAIN)


def _parse(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when(value: object, lang: str) -> str:
    """A moment in UTC, in the reader's language."""
    return _when(str(value) if value is not None else None, lang)


@functools.lru_cache(maxsize=65536)
def _when(value: str | None, lang: str) -> str:
    moment = _parse(value)
    if moment is None:
        return "—"
    return format_datetime(moment, "d MMM y, HH:mm", tzinfo=UTC, locale=lang) + " UTC"


def day(value: object, lang: str) -> str:
    return _day(str(value) if value is not None else None, lang)


@functools.lru_cache(maxsize=16384)
def _day(value: str | None, lang: str) -> str:
    moment = _parse(value)
    return "—" if moment is None else format_date(moment, "d MMM y", locale=lang)


def age(seconds: object, lang: str) -> str:
    """How long ago, e.g. "3 hours ago"."""
    if seconds is None:
        return "—"
    # mypy: seconds is a number (a pandas scalar or float), typed object by the caller
    return _age(int(seconds) // 60, lang)  # type: ignore[call-overload]


@functools.lru_cache(maxsize=4096)
def _age(minutes: int, lang: str) -> str:
    # Babel's formatting is slow next to a page's other work; a minute's rounding is all it shows.
    return format_timedelta(
        timedelta(minutes=-minutes), granularity="minute", add_direction=True, locale=lang
    )


__all__ = ["DOMAIN", "LANGUAGES", "LANGUAGE_NAMES", "SHARED_DOMAIN", "age", "day", "translations", "when"]

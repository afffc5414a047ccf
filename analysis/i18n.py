"""The report's languages: gettext catalogs (English source, Russian and Kyrgyz
translations) and Babel's locale data for dates and plurals.

Why catalogs and not dicts: a translator works on a ``.po`` file with standard tools,
plural forms follow each language's own rule (Russian has three, Kyrgyz one), and
month names come from CLDR instead of a hand-made list.  The catalogs live in
``analysis/locale/<lang>/LC_MESSAGES/report.po`` and are read by :mod:`probe.catalogs`,
the one loader of every domain (report, cli, web).  The Russian and Kyrgyz sentences
still need a native speaker's review (docs/report.md).
"""

from __future__ import annotations

import gettext
from datetime import date, datetime

from babel.dates import format_date

from probe import catalogs
from probe.catalogs import LANGUAGE_NAMES, LANGUAGES

DOMAIN = "report"


def translations(lang: str) -> gettext.NullTranslations:
    """The report's catalog in ``lang``; English is the source, so it has none."""
    return catalogs.translations(DOMAIN, lang)


def gettext_(lang: str, message: str) -> str:
    return translations(lang).gettext(message)


def ngettext_(lang: str, singular: str, plural: str, n: int) -> str:
    return translations(lang).ngettext(singular, plural, n)


def format_day(value: date | datetime, lang: str) -> str:
    """A day as its readers write it: "26 October 2022", "26 октября 2022 г."."""
    day = value.date() if isinstance(value, datetime) else value
    return format_date(day, format="long", locale="en_GB" if lang == "en" else lang)


def format_moment(value: datetime, lang: str) -> str:
    """Day and UTC time, for tables: the ISO form reads the same in every language."""
    return f"{value:%Y-%m-%d %H:%M} UTC"


__all__ = [
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "format_day",
    "format_moment",
    "gettext_",
    "ngettext_",
    "translations",
]

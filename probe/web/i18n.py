"""The Explorer's languages: the 'web' gettext domain (Babel catalogs), dates and ages.

Why catalogs read from ``.po`` at start-up rather than compiled ``.mo`` files: the
package ships text only (reviewable, diffable, no build step), and Babel compiles a
catalog in memory in milliseconds.  English is the source language.
"""

from __future__ import annotations

import functools
import gettext
import io
from datetime import UTC, datetime, timedelta
from importlib import resources

from babel.dates import format_date, format_datetime, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES: tuple[str, ...] = ("en", "ru", "ky")
LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "ky": "Кыргызча"}
DOMAIN = "web"


def catalog_path(lang: str):  # -> importlib.resources.abc.Traversable
    return resources.files("probe.web").joinpath("locale", lang, "LC_MESSAGES", f"{DOMAIN}.po")


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    if lang == "en":
        return gettext.NullTranslations()
    text = catalog_path(lang).read_text(encoding="utf-8")
    catalog = read_po(io.StringIO(text), locale=lang, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


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

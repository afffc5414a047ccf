"""The probe's own sentences (consent screen, ``kuzot run``'s summary) in English,
Russian or Kyrgyz, from gettext catalogs.

Why a catalog here and another in ``analysis``: the layers stay apart (the probe never
imports the analysis package), and a volunteer's install needs only this one.  The
language is ``KUZOT_LANG``, else the usual ``LANGUAGE``/``LC_ALL``/``LC_MESSAGES``/``LANG``
when it names Russian or Kyrgyz, else English.  Catalogs are in
``probe/locale/<lang>/LC_MESSAGES/cli.po`` with committed ``.mo`` files (see docs/report.md),
read through importlib.resources so a wheel works.
"""

from __future__ import annotations

import functools
import gettext as _gettext
import os
from importlib import resources

LANGUAGES: tuple[str, ...] = ("en", "ru", "ky")
DOMAIN = "cli"


def N_(message: str) -> str:
    """Mark a message for extraction; translated where it is used."""
    return message


def language() -> str:
    """The language to speak to the person at this terminal."""
    for name in ("KUZOT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        for part in value.split(":"):
            code = part.split(".")[0].split("_")[0].lower()
            if code in LANGUAGES:
                return code
        if name == "KUZOT_LANG" and value:
            break
    return "en"


@functools.cache
def translations(lang: str) -> _gettext.NullTranslations:
    if lang not in LANGUAGES or lang == "en":
        return _gettext.NullTranslations()
    with resources.files("probe").joinpath("locale", lang, "LC_MESSAGES", f"{DOMAIN}.mo").open("rb") as fh:
        return _gettext.GNUTranslations(fh)


def gettext(message: str, lang: str | None = None) -> str:
    return translations(lang or language()).gettext(message)


def ngettext(singular: str, plural: str, n: int, lang: str | None = None) -> str:
    return translations(lang or language()).ngettext(singular, plural, n)


__all__ = ["LANGUAGES", "N_", "gettext", "language", "ngettext", "translations"]

"""The probe's own sentences (consent screen, every CLI message a person reads) in
English, Russian or Kyrgyz, from gettext catalogs.

Why a catalog here and another in ``analysis``: the layers stay apart (the probe never
imports the analysis package), and a volunteer's install needs only this one.  The
language is ``KUZOT_LANG``, else the config's ``language`` (``kuzot config set language ru``),
else the usual ``LANGUAGE``/``LC_ALL``/``LC_MESSAGES``/``LANG`` when it names Russian or
Kyrgyz, else English.  Catalogs are in
``probe/locale/<lang>/LC_MESSAGES/cli.po``, read by :mod:`probe.catalogs` like every other
domain (see docs/translations.md).
"""

from __future__ import annotations

import gettext as _gettext
import os

from probe import catalogs
from probe.catalogs import LANGUAGES

DOMAIN = "cli"


def N_(message: str) -> str:
    """Mark a message for extraction; translated where it is used."""
    return message


#: The language the volunteer chose in config.toml (``kuzot config set language ru``), set
#: by the CLI at start-up; this module cannot read the config itself (it is below it).
_configured: str | None = None


def use_configured(lang: str | None) -> None:
    """Speak ``lang`` (from the config file) unless ``KUZOT_LANG`` says otherwise; it
    comes before the locale's variables, which a volunteer may not control."""
    global _configured
    _configured = lang if lang in LANGUAGES else None


def language() -> str:
    """The language to speak to the person at this terminal: ``KUZOT_LANG``, else the
    config's ``language``, else the locale's variables, else English."""
    for name in ("KUZOT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        if name == "LANGUAGE" and _configured:
            return _configured
        value = os.environ.get(name, "")
        for part in value.split(":"):
            code = part.split(".")[0].split("_")[0].lower()
            if code in LANGUAGES:
                return code
        if name == "KUZOT_LANG" and value:
            break
    return "en"


def translations(lang: str) -> _gettext.NullTranslations:
    """The terminal's catalog; a language Kuzot does not speak falls back to English."""
    return catalogs.translations(DOMAIN, lang if lang in LANGUAGES else catalogs.SOURCE_LANGUAGE)


def gettext(message: str, lang: str | None = None) -> str:
    return translations(lang or language()).gettext(message)


def ngettext(singular: str, plural: str, n: int, lang: str | None = None) -> str:
    return translations(lang or language()).ngettext(singular, plural, n)


__all__ = ["LANGUAGES", "N_", "gettext", "language", "ngettext", "translations", "use_configured"]

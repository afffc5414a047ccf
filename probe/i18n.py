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


class Message(str):
    """A sentence that is English wherever it is kept as data (JSON output, stored
    records, which scripts parse) and still shown translated to a person
    (:func:`localized`).  Its value is the English text; ``msgid`` and ``params`` let the
    terminal say it in another language.  Mark the msgid with :func:`N_` so it is extracted."""

    msgid: str
    params: dict[str, object]

    def __new__(cls, msgid: str, /, **params: object) -> Message:
        self = super().__new__(cls, msgid.format(**params))
        self.msgid = msgid
        self.params = params
        return self

    def localized(self, lang: str | None = None) -> str:
        """The sentence in ``lang`` (else the terminal's language), its parts too."""
        values = {name: localized(value, lang) for name, value in self.params.items()}
        return gettext(self.msgid, lang).format(**values)

    def __copy__(self) -> Message:
        return self

    def __deepcopy__(self, memo: object) -> Message:
        return self

    def __reduce__(self) -> tuple[object, ...]:
        return (_message, (self.msgid, self.params))


def _message(msgid: str, params: dict[str, object]) -> Message:
    return Message(msgid, **params)


def localized(text: object, lang: str | None = None) -> str:
    """``text`` for a person: a :class:`Message` translated, anything else as it is."""
    return text.localized(lang) if isinstance(text, Message) else str(text)


def reason(exc: BaseException) -> str:
    """The :class:`Message` an exception was raised with (``str(exc)`` would lose it)."""
    first = exc.args[0] if len(exc.args) == 1 else None
    return first if isinstance(first, Message) else str(exc)


__all__ = [
    "LANGUAGES",
    "N_",
    "Message",
    "gettext",
    "language",
    "localized",
    "ngettext",
    "reason",
    "translations",
    "use_configured",
]

"""Every gettext catalog of the project, loaded one way: the report's (domain ``report``),
the probe's terminal sentences (``cli``) and the Explorer's (``web``).

Why one loader: three packages, three domains, one rule for finding and reading them, so
a catalog that works in the tests works in an installed wheel too.  A catalog is
``<package>/locale/<lang>/LC_MESSAGES/<domain>.po`` (what translators edit) with its
compiled ``.mo`` committed beside it (what is read: the standard library reads it, so a
volunteer's install needs no compiler, and a test checks every ``.mo`` against its
``.po``; docs/translations.md has the ``pybabel`` commands).  Files are found through
importlib.resources.  English is the source language of every message, so it has no
catalog.  This module imports nothing of the project: ``probe`` and ``analysis`` both use it.
"""

from __future__ import annotations

import functools
import gettext
from importlib import resources

#: The languages, English (the source) first.
LANGUAGES: tuple[str, ...] = ("en", "ru", "ky")
#: Each language's name in itself.
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "ru": "Русский", "ky": "Кыргызча"}
SOURCE_LANGUAGE = "en"

#: domain -> the package whose ``locale/`` folder holds it.
DOMAINS: dict[str, str] = {"report": "analysis", "cli": "probe", "web": "probe.web"}


def catalog_file(domain: str, lang: str, suffix: str = ".mo"):  # -> importlib.resources.abc.Traversable
    """Where the catalog of ``domain`` in ``lang`` is (``.mo`` compiled, ``.po`` source)."""
    return resources.files(DOMAINS[domain]).joinpath("locale", lang, "LC_MESSAGES", f"{domain}{suffix}")


def _load(domain: str, lang: str) -> gettext.NullTranslations:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; one of {', '.join(LANGUAGES)}")
    if domain not in DOMAINS:
        raise ValueError(f"unknown gettext domain {domain!r}; one of {', '.join(DOMAINS)}")
    if lang == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    with catalog_file(domain, lang).open("rb") as fh:
        return gettext.GNUTranslations(fh)


@functools.cache
def translations(domain: str, lang: str) -> gettext.NullTranslations:
    """The catalog of ``domain`` in ``lang`` (read once per process)."""
    return _load(domain, lang)


@functools.cache
def chained(lang: str, *domains: str) -> gettext.NullTranslations:
    """The catalogs of ``domains`` in ``lang`` as one: a message missing from the first is
    looked up in the next.  The Explorer's templates include the report's partials, whose
    messages are in the report's catalog, so that each sentence is translated once."""
    first, *rest = [_load(domain, lang) for domain in domains]
    for other in rest:
        first.add_fallback(other)
    return first


__all__ = [
    "DOMAINS",
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "SOURCE_LANGUAGE",
    "catalog_file",
    "chained",
    "translations",
]

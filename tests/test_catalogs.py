"""Every gettext domain (report, cli, web) translated into Russian and Kyrgyz the way Babel's
locale data says, with every placeholder kept, and the CLI speaking the terminal's language."""

from __future__ import annotations

import io
import re
from importlib import resources

import pytest
from babel.messages.mofile import read_mo
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from probe.catalogs import DOMAINS, LANGUAGES, SOURCE_LANGUAGE

TRANSLATED = [lang for lang in LANGUAGES if lang != SOURCE_LANGUAGE]
CATALOGS = [(domain, lang) for domain in DOMAINS for lang in TRANSLATED]
#: ``{name}`` (str.format) and ``%(name)s`` (Jinja2's gettext) placeholders.
_PLACEHOLDER = re.compile(r"\{(\w*)[^{}]*\}|%\((\w+)\)[sd]")


def _file(domain: str, *parts: str):
    return resources.files(DOMAINS[domain]).joinpath("locale", *parts)


def _po(domain: str, lang: str):
    data = _file(domain, lang, "LC_MESSAGES", f"{domain}.po").read_bytes()
    return read_po(io.BytesIO(data), locale=lang)


def _forms(value) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _placeholders(text: str) -> set[str]:
    return {a or b for a, b in _PLACEHOLDER.findall(text)}


def test_every_domain_and_language_has_a_catalog():
    """If a domain is registered with the loader, then it has a template and a .po and .mo for each translated language."""
    assert set(DOMAINS) == {"report", "cli", "web"}
    assert TRANSLATED == ["ru", "ky"]
    for domain in DOMAINS:
        assert _file(domain, f"{domain}.pot").is_file(), domain
        for lang in TRANSLATED:
            for suffix in (".po", ".mo"):
                assert _file(domain, lang, "LC_MESSAGES", f"{domain}{suffix}").is_file(), (domain, lang, suffix)


@pytest.mark.parametrize(("domain", "lang"), CATALOGS)
def test_plural_forms_follow_babels_locale_data(domain, lang):
    """If a message has plurals, then its catalog has exactly as many forms as Babel's plural rule for the language (three in Russian, two in Kyrgyz)."""
    catalog = _po(domain, lang)
    rule = get_plural(lang)
    assert catalog.num_plurals == rule.num_plurals, catalog.plural_forms
    assert catalog.plural_expr.replace(" ", "") == rule.plural_expr.replace(" ", "")
    wrong = [m.id for m in catalog if isinstance(m.id, list | tuple) and len(_forms(m.string)) != rule.num_plurals]
    assert not wrong, wrong


@pytest.mark.parametrize(("domain", "lang"), CATALOGS)
def test_every_message_is_translated_keeping_its_placeholders(domain, lang):
    """If a message is in a domain's template, then its translation exists, is not fuzzy, fills every plural form and uses the same placeholders."""
    template = read_po(io.BytesIO(_file(domain, f"{domain}.pot").read_bytes()))
    catalog = _po(domain, lang)
    missing, broken = [], []
    for message in template:
        if not message.id:
            continue
        found = catalog.get(message.id)
        if found is None or found.fuzzy or not all(_forms(found.string)):
            missing.append(message.id)
            continue
        wanted = set().union(*(_placeholders(s) for s in _forms(message.id)))
        if any(_placeholders(s) != wanted for s in _forms(found.string)):
            broken.append(message.id)
    assert not missing, missing
    assert not broken, broken


@pytest.mark.parametrize(("domain", "lang"), CATALOGS)
def test_the_compiled_catalog_is_the_source_compiled(domain, lang):
    """If a .po file changes, then its committed .mo holds the same messages and translations (pybabel compile, docs/translations.md)."""
    compiled = read_mo(io.BytesIO(_file(domain, lang, "LC_MESSAGES", f"{domain}.mo").read_bytes()))

    def plain(catalog) -> dict:
        return {_forms(m.id): _forms(m.string) for m in catalog if m.id and not m.fuzzy}

    assert plain(compiled) == plain(_po(domain, lang))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "kuzot report: a report is about one site: add --domain DOMAIN"),
        ({"KUZOT_LANG": "ru"}, "kuzot report: отчёт составляется об одном сайте: добавьте --domain ДОМЕН"),
        ({"LANG": "ky_KG.UTF-8"}, "kuzot report: отчёт бир сайт жөнүндө түзүлөт: --domain ДОМЕН кошуңуз"),
        ({"KUZOT_LANG": "en", "LANG": "ru_RU.UTF-8"}, "kuzot report: a report is about one site"),
    ],
)
def test_a_cli_error_speaks_the_terminals_language(tmp_path, monkeypatch, capsys, env, expected):
    """If KUZOT_LANG or LANG names Russian or Kyrgyz, then a command's error is in it; without either, or with KUZOT_LANG=en, it is the English text."""
    from probe.cli import main

    for name in ("KUZOT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["report", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(expected)


def test_the_configs_language_comes_after_kuzot_lang_and_before_lang(tmp_path, monkeypatch, capsys):
    """If config.toml says language = "ky", then the CLI speaks Kyrgyz even when LANG is Russian, and KUZOT_LANG still wins."""
    from probe import i18n
    from probe.cli import main

    monkeypatch.setattr(i18n, "_configured", None)
    monkeypatch.setenv("KUZOT_CONFIG_DIR", str(tmp_path / "config"))
    for name in ("KUZOT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "ru_RU.UTF-8")
    assert main(["config", "set", "language", "ky"]) == 0
    assert main(["report", "--out", str(tmp_path / "out")]) == 2
    assert "отчёт бир сайт жөнүндө түзүлөт" in capsys.readouterr().err
    monkeypatch.setenv("KUZOT_LANG", "en")
    assert main(["report", "--out", str(tmp_path / "out")]) == 2
    assert "a report is about one site" in capsys.readouterr().err
    monkeypatch.delenv("KUZOT_LANG")
    assert main(["config", "unset", "language"]) == 0
    assert main(["report", "--out", str(tmp_path / "out")]) == 2
    assert "отчёт составляется об одном сайте" in capsys.readouterr().err
    i18n.use_configured(None)

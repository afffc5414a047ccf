"""The gettext catalogs (the report's, the probe's for the consent screen and the CLI, and the
Explorer's): every message translated, compiled catalogs current, plurals and dates from Babel."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from importlib import resources

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from analysis import report_text as text
from analysis.i18n import LANGUAGES

#: (package, gettext domain, extraction keywords)
DOMAINS = [
    ("analysis", "report", ["-k", "N_", "-k", "gettext_:2", "-k", "ngettext_:2,3"]),
    ("probe", "cli", ["-k", "N_"]),
    ("probe.web", "web", ["-k", "N_"]),
]
CATALOGS = [(package, domain, lang) for package, domain, _ in DOMAINS for lang in LANGUAGES if lang != "en"]


def _po(package: str, domain: str, lang: str):
    path = resources.files(package).joinpath("locale", lang, "LC_MESSAGES", f"{domain}.po")
    return read_po(io.BytesIO(path.read_bytes()), locale=lang)


def _pot(package: str, domain: str):
    return read_po(io.BytesIO(resources.files(package).joinpath("locale", f"{domain}.pot").read_bytes()))


@pytest.mark.parametrize(("package", "domain", "lang"), CATALOGS)
def test_every_message_of_the_template_has_a_translation(package, domain, lang):
    """If a message is in a .pot template, then the ru and ky catalogs translate it, every plural form included."""
    template = _pot(package, domain)
    catalog = _po(package, domain, lang)
    missing = []
    for message in template:
        if not message.id:
            continue
        found = catalog.get(message.id)
        strings = found.string if found is not None else ""
        strings = strings if isinstance(strings, tuple) else (strings,)
        if found is None or not all(strings) or found.fuzzy:
            missing.append(message.id)
    assert not missing, missing


@pytest.mark.parametrize(("package", "domain", "lang"), CATALOGS)
def test_compiled_catalog_matches_its_source(package, domain, lang):
    """If the .po file changed, then its committed .mo was compiled again (pybabel compile, docs/report.md)."""

    def plain(catalog) -> dict:
        return {_key(m.id): _key(m.string) for m in catalog if m.id and not m.fuzzy}

    path = resources.files(package).joinpath("locale", lang, "LC_MESSAGES", f"{domain}.mo")
    compiled = read_mo(io.BytesIO(path.read_bytes()))
    assert plain(compiled) == plain(_po(package, domain, lang))


def _key(value):
    return tuple(value) if isinstance(value, list | tuple) else value


@pytest.mark.parametrize(("package", "domain", "keywords"), DOMAINS)
def test_every_message_in_the_code_is_in_the_template(tmp_path, package, domain, keywords):
    """If the code or a template has a message, then its .pot has it (pybabel extract was run)."""
    from pathlib import Path

    from babel.messages.frontend import CommandLineInterface

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "fresh.pot"
    CommandLineInterface().run(
        ["pybabel", "-q", "extract", "-F", str(root.joinpath(*package.split(".")) / "locale" / "babel.cfg"), *keywords,
         "--no-location", "-o", str(out), str(root)]
    )  # fmt: skip
    fresh = {m.id for m in read_po(out.open("rb")) if m.id}
    committed = {m.id for m in _pot(package, domain) if m.id}
    assert fresh - committed == set(), sorted(map(str, fresh - committed))


@pytest.mark.parametrize(("package", "domain", "lang"), CATALOGS)
def test_one_loader_reads_every_domain(package, domain, lang):
    """If a domain's catalog is loaded through probe.catalogs, then it comes from its package and translates its messages."""
    from probe import catalogs

    assert catalogs.DOMAINS[domain] == package
    loaded = catalogs.translations(domain, lang)
    message = next(m for m in _po(package, domain, lang) if m.id and isinstance(m.id, str) and m.string)
    assert loaded.gettext(message.id) == message.string
    assert catalogs.translations(domain, "en").gettext(message.id) == message.id


def test_the_explorer_falls_back_to_the_report_catalog():
    """If an Explorer page says a sentence of the report's shared partials, then the report's catalog translates it."""
    from probe.web import i18n

    assert i18n.translations("ru").gettext("Copy") == "Копировать"
    assert i18n.translations("ky").gettext(text.SIMULATED_MESSAGE).startswith("СИМУЛЯЦИЯЛАНГАН МААЛЫМАТ")
    assert i18n.translations("ru").gettext("Which networks block which sites") != "Which networks block which sites"


def test_durations_never_say_zero_and_agree_with_their_numbers():
    """If a block is short, open or counted, then the words say hours, never "0", with each language's plural."""
    assert text.duration(0.5, 0.6, "en") == "between 12 and 15 hours"
    assert text.duration(0.0, None, "en", ongoing=True) == "just begun, duration not yet known"
    assert text.duration(0.0, 0.2, "en") == "up to 5 hours"
    assert text.duration(59.2, 61.1, "en") == "between 59 and 62 days"
    assert text.duration(25.4, None, "en", ongoing=True) == "at least 25 days"
    assert text.duration(20.5, 21.0, "ru") == "от 20 до 21 дня"
    assert text.duration(2.0, 3.5, "ru") == "от 2 до 4 дней"
    assert text.duration(21.3, None, "ru", ongoing=True) == "не менее 21 дня"
    assert text.duration(22.3, None, "ru", ongoing=True) == "не менее 22 дней"
    assert text.duration(0.9, 1.0, "ru") == "от 21 до 24 часов"
    assert text.duration(2.0, 3.5, "ky") == "2–4 күн"


def test_a_one_day_block_is_not_from_a_day_to_the_same_day():
    """If the first and last blocked measurements fall on one day, then the sentence names that day once."""
    first = datetime(2022, 10, 26, 9, tzinfo=UTC)
    last = datetime(2022, 10, 26, 21, tzinfo=UTC)
    words = {
        lang: text.blocked_sentence(
            lang=lang, domain="azattyk.org", network="ElCat (AS8449)", method="dns", first=first, last=last,
            low=0.5, high=0.6, ongoing=False, blocked=7, total=12,
        )
        for lang in LANGUAGES
    }  # fmt: skip
    assert words["en"] == (
        "azattyk.org was blocked by DNS tampering on ElCat (AS8449) on 26 October 2022: "
        "between 12 and 15 hours, 7 of 12 measurements."
    )
    assert "to 26 October" not in words["en"]
    assert "26 октября 2022" in words["ru"] and "7 из 12 измерений" in words["ru"]
    assert "26-октябрь" in words["ky"]


def test_consent_and_run_summary_speak_the_volunteers_language(monkeypatch):
    """If KUZOT_LANG names Russian or Kyrgyz, then the run summary is in it, with its plural; the consent text exists in all three."""
    from probe.cli.commands.run import _plain_summary
    from probe.volunteer.consent import CONSENT_TEXT

    assert sorted(CONSENT_TEXT) == ["en", "ky", "ru"]
    assert "ПЕРЕД НАЧАЛОМ" in CONSENT_TEXT["ru"] and "БАШТООДОН МУРУН" in CONSENT_TEXT["ky"]

    class V:
        def __init__(self, domain):
            self.domain = domain

    verdicts = [V("a.kg"), V("b.kg"), V("c.kg"), V("d.kg"), V("e.kg")]
    monkeypatch.setenv("KUZOT_LANG", "ru")
    assert (
        _plain_summary(verdicts, [], False) == "Ни один из 5 сайтов не выглядит заблокированным в вашей сети."
    )
    monkeypatch.setenv("KUZOT_LANG", "ky")
    assert "5 сайттын 2 бөгөттөлгөн окшойт: a.kg, b.kg" in _plain_summary(verdicts, ["a.kg", "b.kg"], False)
    monkeypatch.setenv("KUZOT_LANG", "en")
    assert _plain_summary(verdicts[:1], [], False) == "None of the 1 site looks blocked on your network."

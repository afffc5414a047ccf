"""Every sentence a report prints, in English, Russian and Kyrgyz: one catalogue.

Why one module: journalists quote these sentences, so their wording is part of the
evidence.  Keeping all languages side by side makes a change in one visible in the
others.  The Russian and Kyrgyz texts avoid grammar that depends on the number or the
date (Kyrgyz case endings follow vowel harmony), using ISO dates and "label: value"
phrasing where a sentence would need it.  Native speakers should review them; see
docs/evidence.md.
"""

from __future__ import annotations

from datetime import datetime

LANGUAGES = ("en", "ru", "ky")

METHODS: dict[str, dict[str, str]] = {
    "dns": {"en": "DNS tampering", "ru": "подмена DNS", "ky": "DNS алмаштыруу"},
    "tcp_ip": {"en": "IP blocking", "ru": "блокировка по IP-адресу", "ky": "IP дарек боюнча бөгөттөө"},
    "tls": {"en": "TLS/SNI interference", "ru": "вмешательство в TLS (SNI)", "ky": "TLS (SNI) кийлигишүү"},
    "http-failure": {
        "en": "a cut HTTP connection",
        "ru": "обрыв HTTP-соединения",
        "ky": "HTTP байланышын үзүү",
    },
    "http-diff": {"en": "a blockpage", "ru": "страница блокировки", "ky": "бөгөттөө барагы"},
    None: {"en": "an unidentified method", "ru": "метод не установлен", "ky": "ыкмасы аныкталган жок"},  # type: ignore[dict-item]
}

_RU_MONTHS = (
    "января", "февраля", "марта", "апреля", "мая", "июня",
    "июля", "августа", "сентября", "октября", "ноября", "декабря",
)  # fmt: skip


def day_en(t: datetime) -> str:
    return f"{t.day} {t:%B %Y}"


def day_ru(t: datetime) -> str:
    return f"{t.day} {_RU_MONTHS[t.month - 1]} {t.year} года"


def day_iso(t: datetime) -> str:
    return f"{t:%Y-%m-%d}"


def ru_days(n: int) -> str:
    """ "день", "дня" or "дней" after ``n``."""
    if n % 10 == 1 and n % 100 != 11:
        return "день"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "дня"
    return "дней"


def _hours(low: float, high: float | None, lang: str, ongoing: bool) -> str:
    lo = int(low * 24)
    if high is None or ongoing:
        return {"en": f"at least {lo} hours", "ru": f"не менее {lo} ч", "ky": f"кеминде {lo} саат"}[lang]
    hi = int(-(-(high * 24) // 1))
    if lo == hi:
        return {"en": f"{lo} hours", "ru": f"{lo} ч", "ky": f"{lo} саат"}[lang]
    return {"en": f"between {lo} and {hi} hours", "ru": f"{lo}–{hi} ч", "ky": f"{lo}–{hi} саат"}[lang]


def duration(low: float, high: float | None, lang: str, *, ongoing: bool = False) -> str:
    """The duration bracket in words: "between 59 and 62 days", "at least 25 days"; in
    hours when the block is shorter than two days (a day's rounding would say "0 days")."""
    if (high if high is not None and not ongoing else low) < 2:
        return _hours(low, high, lang, ongoing)
    lo = int(low)  # whole days certainly blocked (rounded down)
    if high is None or ongoing:
        return {"en": f"at least {lo} days", "ru": f"не менее {lo} {ru_days(lo)}", "ky": f"кеминде {lo} күн"}[
            lang
        ]
    hi = int(-(-high // 1))  # rounded up: the bracket only widens
    if lo == hi:
        return {"en": f"{lo} days", "ru": f"{lo} {ru_days(lo)}", "ky": f"{lo} күн"}[lang]
    return {
        "en": f"between {lo} and {hi} days",
        "ru": f"{lo}–{hi} {ru_days(hi)}",  # the noun agrees with the last number
        "ky": f"{lo}–{hi} күн",
    }[lang]


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
    how = METHODS.get(method, METHODS[None])[lang]  # type: ignore[index]
    span = duration(low, high, lang, ongoing=ongoing)
    if lang == "en":
        when = (
            f"from {day_en(first)}, still blocked at the last measurement on {day_en(last)}"
            if ongoing
            else f"from {day_en(first)} to {day_en(last)}"
        )
        return (
            f"{domain} was blocked by {how} on {network} {when}: {span}, {blocked} of {total} measurements."
        )
    if lang == "ru":
        when = (
            f"с {day_ru(first)}; на момент последнего измерения {day_ru(last)} блокировка продолжалась"
            if ongoing
            else f"с {day_ru(first)} по {day_ru(last)}"
        )
        return (
            f"Сайт {domain} был заблокирован в сети {network} ({how}) {when}. "
            f"Длительность: {span}; {blocked} из {total} измерений."
        )
    when = (
        f"{day_iso(first)} баштап; акыркы өлчөөдө ({day_iso(last)}) дагы эле бөгөттөлгөн"
        if ongoing
        else f"{day_iso(first)} – {day_iso(last)}"
    )
    return (
        f"{domain} сайты {network} тармагында бөгөттөлгөн ({how}). Мезгили: {when}. "
        f"Узактыгы: {span}. Өлчөөлөр: {total} өлчөөнүн ичинен {blocked} бөгөттөлгөн."
    )


def open_sentence(
    *, lang: str, domain: str, network: str, accessible: int, conclusive: int, first: datetime, last: datetime
) -> str:
    if lang == "en":
        return (
            f"On {network}, {domain} was not seen blocked: {accessible} of {conclusive} "
            "conclusive measurements "
            f"from {day_en(first)} to {day_en(last)} found it accessible."
        )
    if lang == "ru":
        return (
            f"В сети {network} блокировка сайта {domain} не обнаружена: {accessible} из {conclusive} "
            f"измерений с {day_ru(first)} по {day_ru(last)} показали, что сайт доступен."
        )
    return (
        f"{network} тармагында {domain} сайтынын бөгөттөлүшү байкалган жок. Өлчөөлөр: {conclusive} өлчөөнүн "
        f"ичинен {accessible} сайт жеткиликтүү экенин көрсөттү ({day_iso(first)} – {day_iso(last)})."
    )


def too_few_sentence(*, lang: str, domain: str, network: str, conclusive: int) -> str:
    return {
        "en": f"On {network}, only {conclusive} conclusive measurements of {domain}: "
        "too few to say anything.",
        "ru": f"В сети {network} только {conclusive} измерений сайта {domain}: "
        "этого недостаточно для вывода.",
        "ky": f"{network} тармагында {domain} боюнча {conclusive} гана өлчөө бар: жыйынтык чыгарууга аз.",
    }[lang]


HEADINGS: dict[str, dict[str, str]] = {
    "summary": {"en": "Summary", "ru": "Кратко", "ky": "Кыскача"},
}

__all__ = [
    "HEADINGS",
    "LANGUAGES",
    "METHODS",
    "blocked_sentence",
    "day_en",
    "day_iso",
    "day_ru",
    "duration",
    "open_sentence",
    "ru_days",
    "too_few_sentence",
]

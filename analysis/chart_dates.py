"""Date axes in a chart reader's language: month names and day order from Babel's
CLDR data (not strftime, which follows the machine's locale), the year always shown,
hours only where the span is short.

Why its own module: charts.py draws; this decides how a moment is written, the same way
for the timeline and the heatmap, in English, Russian and Kyrgyz.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import matplotlib.dates as mdates
import matplotlib.ticker as ticker
import pandas as pd
from babel.dates import format_skeleton

from analysis.i18n import gettext_


def locale_of(lang: str) -> str:
    """Babel's locale for a report language (British English: day before month)."""
    return "en_GB" if lang == "en" else lang


def day_with_year(moment: datetime, lang: str) -> str:
    """A tick's day with its year, as the language writes it: "26 Oct 2022", "26 окт. 2022 г."."""
    return format_skeleton("yMMMd", moment, locale=locale_of(lang))


class _DayAndTime(ticker.Formatter):
    """Hours on every tick, the full date (with its year) under the first tick of each day."""

    def __init__(self, lang: str = "en") -> None:
        self.lang = lang

    def __call__(self, x: float, pos: int | None = None) -> str:
        moment = mdates.num2date(x)
        return f"{moment:%H:%M}\n{day_with_year(moment, self.lang)}"

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        out, previous = [], None
        for value in values:
            moment = mdates.num2date(value)
            day = moment.date()
            below = "" if day == previous else f"\n{day_with_year(moment, self.lang)}"
            out.append(f"{moment:%H:%M}{below}")
            previous = day
        return out


class _Day(ticker.Formatter):
    """Day and month over the year, in the language's own order and month names."""

    def __init__(self, lang: str = "en") -> None:
        self.lang = lang

    def __call__(self, x: float, pos: int | None = None) -> str:
        moment = mdates.num2date(x)
        where = locale_of(self.lang)
        day, year = format_skeleton("MMMd", moment, locale=where), format_skeleton("y", moment, locale=where)
        return f"{day}\n{year}"


def date_axis(ax, start: pd.Timestamp, end: pd.Timestamp, lang: str = "en") -> None:
    """Dates a reader can copy: the year always shown, hours only for short spans."""
    short = end - start <= pd.Timedelta(days=3)
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=9))
    ax.xaxis.set_major_formatter(_DayAndTime(lang) if short else _Day(lang))
    ax.set_xlabel(gettext_(lang, "Date and time (UTC)") if short else gettext_(lang, "Date (UTC)"))


__all__ = ["date_axis", "day_with_year", "locale_of"]

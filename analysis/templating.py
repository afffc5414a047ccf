"""HTML from Jinja2 templates with automatic escaping, translated through gettext.

Why templates: every value a page shows comes from measurements, which come from the
network, which is hostile; escaping by default means a forgotten call is not an
injection.  The templates live in ``analysis/templates`` (``base.html`` and
``partials/``), loaded through the package so a wheel works.  The web Explorer puts its
own folder in front of this one (:func:`shared_loader`) and extends ``report/base.html``,
so the banner, the language links, the citation block and the duration wording are
written once for both.
"""

from __future__ import annotations

import functools

import jinja2
import pandas as pd

from analysis import report_text
from analysis.i18n import format_day, translations
from analysis.networks import network_label

#: The prefix under which other environments see these templates ("report/base.html").
PREFIX = "report"


def report_loader() -> jinja2.BaseLoader:
    return jinja2.PackageLoader("analysis", "templates")


def shared_loader(first: jinja2.BaseLoader) -> jinja2.BaseLoader:
    """``first``'s templates, then the report's: under ``report/`` (to extend the report's
    ``base.html`` from a template of the same name) and unprefixed (its ``partials/``)."""
    report = report_loader()
    return jinja2.ChoiceLoader([first, jinja2.PrefixLoader({PREFIX: report}), report])


def install_shared(env: jinja2.Environment, lang: str) -> None:
    """What every Kuzot page may say in words: duration brackets and network names."""
    env.globals["duration"] = lambda low, high, ongoing=False: report_text.duration(
        float(low), None if high is None else float(high), lang, ongoing=bool(ongoing)
    )
    env.globals["network_label"] = network_label


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def moment(value: object) -> str:
    """A UTC time for tables, or a dash when there is none."""
    if _missing(value):
        return "—"
    stamp = pd.Timestamp(value)
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def days(value: object) -> str:
    # mypy: value is a number or a numeric string once missing values are ruled out
    return "—" if _missing(value) else f"{float(value):.1f}"  # type: ignore[arg-type]


@functools.cache
def environment(lang: str = "en") -> jinja2.Environment:
    env = jinja2.Environment(
        loader=report_loader(),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # mypy: jinja2's i18n extension adds this method to the environment at run time
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters["moment"] = moment
    env.filters["days"] = days
    env.filters["day"] = lambda v: "—" if _missing(v) else format_day(pd.Timestamp(v).to_pydatetime(), lang)
    env.globals["lang"] = lang
    install_shared(env, lang)
    return env


def render(template: str, lang: str = "en", **context: object) -> str:
    return environment(lang).get_template(template).render(**context)


__all__ = [
    "PREFIX",
    "days",
    "environment",
    "install_shared",
    "moment",
    "render",
    "report_loader",
    "shared_loader",
]

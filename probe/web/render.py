"""Jinja2 environments (autoescape always on), one per language: the Explorer's templates,
then the report's (its base page and partials, see :func:`analysis.templating.shared_loader`)."""

from __future__ import annotations

import functools
import json
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from analysis import report_text
from analysis.templating import install_shared, shared_loader
from probe.web import i18n

#: The text beside every status colour: colour alone is never the only signal.
STATUS_CLASS = {
    "blocked": "st-blocked",
    "accessible": "st-ok",
    "down": "st-down",
    "inconclusive": "st-unknown",
    "probe_offline": "st-offline",
    None: "st-none",
}


def N_(message: str) -> str:
    """Marks a message for extraction; translated where it is shown."""
    return message


#: The same messages as the ``status_text`` macro, for hot loops (one call, not a macro).
STATUS_WORDS = {
    "blocked": N_("blocked"),
    "accessible": N_("accessible"),
    "down": N_("down for everyone"),
    "inconclusive": N_("inconclusive"),
    "probe_offline": N_("probe offline"),
    None: N_("not measured"),
}


def _timeline_rects(points: list[dict[str, Any]]) -> Markup:
    """The verdict marks of one timeline as SVG, built in one pass: a site page draws
    thousands, and a template loop costs far more per mark.  Only numbers and the fixed
    class names go in, so nothing needs escaping."""
    return Markup(
        "".join(
            f'<rect class="pt {STATUS_CLASS.get(p["status"], "st-none")}" x="{float(p["x"]) * 997:.1f}" '
            'y="4" width="2.5" height="18"></rect>'
            for p in points
        )
    )


def _days(value: object) -> str:
    if value is None:
        return "—"
    # mypy: value is a number or a numeric string once missing values are ruled out
    return f"{float(value):.1f}"  # type: ignore[arg-type]


def _with_query(query: dict[str, str], **changes: object) -> str:
    """The current query string with ``changes`` (paging links keep the filters)."""
    merged = {**query, **{k: str(v) for k, v in changes.items()}}
    return "?" + urlencode({k: v for k, v in merged.items() if v != ""})


@functools.cache
def environment(lang: str) -> Environment:
    env = Environment(
        loader=shared_loader(PackageLoader("probe.web", "templates")),
        autoescape=select_autoescape(["html", "xml", "atom"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # mypy: jinja2's i18n extension adds this method to the environment at run time
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = lambda v: i18n.when(v, lang)
    env.filters["day"] = lambda v: i18n.day(v, lang)
    env.filters["age"] = lambda v: i18n.age(v, lang)
    env.filters["days"] = _days
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)
    env.filters["pct"] = lambda v: f"{100 * float(v):.3f}"
    install_shared(env, lang)
    words = {key: i18n.translations(lang).gettext(text) for key, text in STATUS_WORDS.items()}
    env.globals["status_label"] = lambda s: words.get(s, words[None])
    env.globals["with_query"] = _with_query
    env.globals["timeline_rects"] = _timeline_rects
    env.globals["status_class"] = lambda s: STATUS_CLASS.get(s, "st-none")
    env.globals["languages"] = i18n.LANGUAGES
    env.globals["language_names"] = i18n.LANGUAGE_NAMES
    return env


def simulated_banner(lang: str, count: int, total: int) -> list[tuple[str, str]]:
    """The report's simulated/lab notice, in every language, the page's own first; empty
    when nothing shown is simulated."""
    if not count:
        return []
    order = [lang, *[code for code in i18n.LANGUAGES if code != lang]]
    return [(code, report_text.simulated_sentence(code, count, total)) for code in order]


def render(
    lang: str,
    name: str,
    *,
    alternates: dict[str, str] | None = None,
    simulated: list[tuple[str, str]] | None = None,
    **context: Any,
) -> str:
    """``name`` in ``lang``; ``alternates`` are the same page's addresses in the other languages."""
    pages = [(code, i18n.LANGUAGE_NAMES[code], (alternates or {}).get(code)) for code in i18n.LANGUAGES]
    return (
        environment(lang)
        .get_template(name)
        .render(
            lang=lang, alternates=alternates or {}, language_pages=pages, simulated=simulated or [], **context
        )
    )

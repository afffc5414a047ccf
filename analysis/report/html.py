"""A :class:`~analysis.report.compose.Report` rendered as one self-contained page.

Pure: the page is returned as a string (the writer saves it), its chart images passed
in as data URIs.
"""

from __future__ import annotations

import pandas as pd

from analysis import report_text as text
from analysis.episodes import DEFAULT_RULE
from analysis.i18n import LANGUAGE_NAMES, LANGUAGES, gettext_
from analysis.networks import network_label
from analysis.report.compose import GAP_HOURS, MIN_CONCLUSIVE, PAGE_NAMES, Report
from analysis.report_sources import Provenance
from analysis.templating import render
from analysis.verdicts import RULES_VERSION


def _span(low: object, high: object, ongoing: bool, lang: str) -> str:
    if low is None or pd.isna(low):
        return "—"
    # mypy: low and high are pandas scalars (numbers), typed object
    return text.duration(float(low), None if pd.isna(high) else float(high), lang, ongoing=ongoing)  # type: ignore[arg-type]


def _label_of(labels: dict[int | None, str], asn: object) -> str:
    key = None if asn is None or pd.isna(asn) else int(asn)  # type: ignore[call-overload]  # asn: a pandas scalar, int or float
    return labels.get(key) or network_label(key)


def _episode_rows(report: Report, labels: dict[int | None, str], lang: str) -> list[dict[str, object]]:
    unexplained = set(report.unexplained["episode_id"]) if len(report.unexplained) else set()
    verdicts = report.verdicts.set_index("measurement_id")
    rows = []
    for _, ep in report.episodes.iterrows():
        orders = [
            oid
            for oid, ids in zip(
                report.correlation["order_id"], report.correlation["episode_ids"], strict=True
            )
            if ep["episode_id"] in ids
        ]
        measurements = []
        for mid in ep["measurement_ids"]:
            v = verdicts.loc[mid]
            measurements.append(
                {"id": mid, "measured_at": v["measured_at"], "status": v["status"], "reason": v["reason"]}
            )
        rows.append(
            {
                "id": ep["episode_id"],
                "network": _label_of(labels, ep["probe_asn"]),
                "method": text.method_words(ep["blocking"], lang),
                "confirmed": bool(ep["confirmed"]),
                "first": ep["first_blocked"],
                "last": ep["last_blocked"],
                "span": _span(ep["duration_days_min"], ep["duration_days_max"], bool(ep["ongoing"]), lang),
                "ongoing": bool(ep["ongoing"]),
                "blocked": int(ep["measurements_blocked"]),
                "total": int(ep["measurements_total"]),
                "orders": orders,
                "no_order": not orders and ep["episode_id"] in unexplained,
                "measurements": measurements,
            }
        )
    return rows


def _correlation_rows(report: Report, labels: dict[int | None, str], lang: str) -> list[dict[str, object]]:
    rows = []
    for _, r in report.correlation.iterrows():
        rows.append(
            {
                "order_id": r["order_id"],
                "network": None if pd.isna(r["probe_asn"]) else _label_of(labels, r["probe_asn"]),
                "status": r["status"],
                "lag": r["enforcement_lag_days"],
                "blocked": _span(r["blocked_days_min"], r["blocked_days_max"], False, lang)
                if not pd.isna(r["blocked_days_min"])
                else "—",
                "past_end": r["days_past_order_end"],
                "after_withdrawal": r["days_after_withdrawal"],
                "measurements_blocked": int(r["measurements_blocked"]),
                "measurements_total": int(r["measurements_total"]),
                "episode_ids": list(r["episode_ids"]),
            }
        )
    return rows


def render_html(
    report: Report,
    orders: pd.DataFrame,
    images: dict[str, str],
    labels: dict[int | None, str],
    provenance: Provenance,
    *,
    lang: str = "en",
) -> str:
    """The page in ``lang``; the summary sentences of the other languages follow its own."""
    ooni_links = {mid: src.ooni_url for mid, src in provenance.sources.items() if src.ooni_url is not None}
    status_counts = report.verdicts["status"].value_counts()
    context = {
        "report": report,
        "domain": report.domain,
        "generated_at": report.generated_at,
        "rules_version": RULES_VERSION,
        "episode_rule": DEFAULT_RULE,
        "simulated": [
            (code, report.simulated_notice(code)) for code in [lang, *[c for c in LANGUAGES if c != lang]]
        ]
        if report.simulated
        else [],
        "simulated_reasons": report.simulated_reasons,
        "summaries": [
            {
                "lang": code,
                "name": LANGUAGE_NAMES[code],
                "heading": gettext_(code, "Summary"),
                "sentences": [(n, s) for n in report.networks for s in n.sentences[code]],
            }
            for code in [lang, *[c for c in LANGUAGES if c != lang]]
        ],
        "pages": [(code, LANGUAGE_NAMES[code], PAGE_NAMES[code]) for code in LANGUAGES],
        "images": images,
        "episodes": _episode_rows(report, labels, lang),
        "orders": orders.to_dict(orient="records"),
        "correlation": _correlation_rows(report, labels, lang),
        "unexplained": bool(len(report.unexplained[report.unexplained["domain"] == report.domain])),
        "networks": report.networks,
        "min_conclusive": MIN_CONCLUSIVE,
        "gap_hours": GAP_HOURS,
        "other": {
            "down": int(status_counts.get("down", 0)),
            "probe_offline": int(status_counts.get("probe_offline", 0)),
            "inconclusive": int(status_counts.get("inconclusive", 0)),
        },
        "controls": report.controls,
        "ooni_links": ooni_links,
    }
    return render("report.html", lang, **context)



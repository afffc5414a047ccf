"""The evidence report: one folder a journalist can publish from and anyone can verify.

Layout of ``DIR`` (a stable interface; docs/evidence.md explains it to readers)
- ``index.html``: one self-contained page (charts embedded, no network fetches), in
  English; ``index.ru.html`` and ``index.ky.html`` the same in Russian and Kyrgyz.  Pages
  built from simulated or lab data open with a notice saying so in all three languages
  (so does ``citation.txt``), and real and simulated data are never mixed in one report.
- ``citation.txt``: the sentences to quote, in English, Russian and Kyrgyz, each with
  its measurement counts and duration bracket.
- ``episodes.csv``, ``orders.csv``, ``verdicts.csv``: the tables behind the page.
- ``charts/timeline.{png,svg}``, ``charts/heatmap.{png,svg}``.
- ``evidence/measurements.jsonl``: every measurement behind every figure, with its
  content hash and signature; ``evidence/MANIFEST.sha256`` covers every file.

The page comes from Jinja2 templates (``analysis/templates``) and its words from gettext
catalogs (``analysis/locale``); docs/report.md shows a sample report's structure.

Why every figure links to measurements: a figure nobody can trace is an assertion, and
this project's output is cited against governments that will dispute it.
"""

from __future__ import annotations

import base64
import csv
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from analysis import charts
from analysis import report_text as text
from analysis.data import canary_ids, iter_measurements
from analysis.episodes import DEFAULT_RULE, EPISODE_COLUMNS, bare_domain, find_episodes
from analysis.evidence import write_evidence, write_manifest
from analysis.i18n import LANGUAGE_NAMES, LANGUAGES, gettext_
from analysis.networks import network_label
from analysis.orders import CORRELATION_COLUMNS, correlate, unexplained_episodes
from analysis.report_sources import Provenance
from analysis.templating import render
from analysis.verdicts import RULES_VERSION, judge_all, verdicts_frame
from probe.errors import ReportError

#: Fewer conclusive measurements than this on a network, and the report says so
#: instead of drawing a conclusion.
MIN_CONCLUSIVE = 10
#: Gaps in a network's measurements longer than this are listed as "not measured".
GAP_HOURS = 48
#: Pages written besides index.html (English): one per other language.
PAGE_NAMES = {"en": "index.html", "ru": "index.ru.html", "ky": "index.ky.html"}


@dataclass
class NetworkSummary:
    asn: int | None
    label: str
    measurements: int
    conclusive: int
    accessible: int
    blocked: int
    first: datetime | None
    last: datetime | None
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)
    sentences: dict[str, list[str]] = field(default_factory=dict)

    @property
    def anchor(self) -> str:
        return f"net-{self.asn}" if self.asn is not None else "net-unknown"


@dataclass
class Report:
    domain: str
    out_dir: Path
    verdicts: pd.DataFrame
    episodes: pd.DataFrame
    correlation: pd.DataFrame
    unexplained: pd.DataFrame
    networks: list[NetworkSummary]
    evidence_ids: list[str]
    generated_at: datetime
    #: How many of the report's measurements are simulated or from a lab (all or none).
    simulated: int = 0
    simulated_reasons: list[str] = field(default_factory=list)
    #: The kinds of control the measurements had: "helper", "doh".
    controls: set[str] = field(default_factory=set)

    def simulated_notice(self, lang: str) -> str | None:
        if not self.simulated:
            return None
        return text.simulated_sentence(lang, self.simulated, len(self.verdicts))

    def citation(self) -> str:
        lines = []
        if self.simulated:
            # mypy: simulated_notice is a str whenever the report is simulated (this branch)
            lines += ["*** " + self.simulated_notice(lang) + " ***" for lang in LANGUAGES]  # type: ignore[operator]
            lines.append("")
        lines += [
            f"Kuzot evidence report: {self.domain}",
            f"Generated {self.generated_at:%Y-%m-%d %H:%M} UTC",
            "",
        ]
        for lang in LANGUAGES:
            lines.append(f"[{LANGUAGE_NAMES[lang]}]")
            for network in self.networks:
                lines.extend(network.sentences[lang])
            lines.append("")
        lines.append(
            "Each figure is computed from the measurements in evidence/measurements.jsonl; "
            "check them with: kuzot verify <this folder>."
        )
        return "\n".join(lines) + "\n"


def _gaps(times: pd.Series) -> list[tuple[datetime, datetime]]:
    ordered = times.sort_values().reset_index(drop=True)
    delta = ordered.diff()
    out = []
    for i in delta.index[delta > pd.Timedelta(hours=GAP_HOURS)]:
        out.append((ordered[i - 1].to_pydatetime(), ordered[i].to_pydatetime()))
    return out


def network_labels(verdicts: pd.DataFrame, provenance: Provenance) -> dict[int | None, str]:
    """``Name (ASn)`` for each network of ``verdicts``, named from the table or from
    what its measurements recorded."""
    labels: dict[int | None, str] = {}
    for asn, group in verdicts.groupby("probe_asn", dropna=False):
        key = None if pd.isna(asn) else int(asn)
        labels[key] = network_label(key, provenance.network_name(group["measurement_id"]))
    return labels


def _network_summaries(
    domain: str, verdicts: pd.DataFrame, episodes: pd.DataFrame, labels: dict[int | None, str]
) -> list[NetworkSummary]:
    out = []
    for asn, group in verdicts.groupby("probe_asn", dropna=False):
        key = None if pd.isna(asn) else int(asn)
        label = labels[key]
        times = pd.to_datetime(group["measured_at"], utc=True).dropna()
        status = group["status"]
        conclusive = int(status.isin(["blocked", "accessible"]).sum())
        summary = NetworkSummary(
            asn=key,
            label=label,
            measurements=len(group),
            conclusive=conclusive,
            accessible=int((status == "accessible").sum()),
            blocked=int((status == "blocked").sum()),
            first=times.min().to_pydatetime() if len(times) else None,
            last=times.max().to_pydatetime() if len(times) else None,
            gaps=_gaps(times),
        )
        if key is None:
            mine = episodes[episodes["probe_asn"].isna()]
        else:
            mine = episodes[episodes["probe_asn"] == key]
        for lang in LANGUAGES:
            sentences = []
            if mine.empty and (conclusive < MIN_CONCLUSIVE or summary.first is None):
                # An episode is stated whatever the count (its own figures say how many
                # measurements back it); "not seen blocked" needs enough of them.
                sentences.append(
                    text.too_few_sentence(lang=lang, domain=domain, network=label, conclusive=conclusive)
                )
            elif mine.empty:
                sentences.append(
                    text.open_sentence(
                        lang=lang,
                        domain=domain,
                        network=label,
                        accessible=summary.accessible,
                        conclusive=conclusive,
                        # mypy: first and last are set for every network with measurements (all listed here)
                        first=summary.first,  # type: ignore[arg-type]
                        last=summary.last,  # type: ignore[arg-type]
                    )
                )
            for _, ep in mine.iterrows():
                high = ep["duration_days_max"]
                sentences.append(
                    text.blocked_sentence(
                        lang=lang,
                        domain=domain,
                        network=label,
                        method=ep["blocking"],
                        first=ep["first_blocked"].to_pydatetime(),
                        last=ep["last_blocked"].to_pydatetime(),
                        low=float(ep["duration_days_min"]),
                        high=None if pd.isna(high) else float(high),
                        ongoing=bool(ep["ongoing"]),
                        blocked=int(ep["measurements_blocked"]),
                        total=int(ep["measurements_total"]),
                    )
                )
            summary.sentences[lang] = sentences
        out.append(summary)
    return out


def _load(db_url: str, domain: str, since: datetime | None, until: datetime | None):
    """Verdicts of the domain's measurements and where each came from, in one pass."""
    from analysis.fingerprints import load_fingerprints

    measurements = list(iter_measurements(db_url, domain=domain, since=since, until=until))
    verdicts = verdicts_frame(judge_all(measurements, fingerprints=load_fingerprints()))
    return verdicts, Provenance.of(measurements)


def build_report(
    db_url: str,
    domain: str,
    out_dir: Path,
    *,
    orders: pd.DataFrame,
    since: datetime | None = None,
    until: datetime | None = None,
    replace_existing: bool = False,
) -> Report:
    """Compute, write and seal the report; returns what it wrote.

    Everything is written to a temporary folder beside ``out_dir`` and moved into place
    at the end, so a failure never leaves half a report; with ``replace_existing`` an
    earlier report in ``out_dir`` is swapped out only once the new one is complete."""
    domain = bare_domain(domain)
    verdicts, provenance = _load(db_url, domain, since, until)
    if verdicts.empty:
        raise ReportError(f"no measurements of {domain} in the database for that period")
    ids = list(verdicts["measurement_id"])
    simulated = provenance.simulated(ids)
    if simulated and len(simulated) != len(ids):
        reasons = ", ".join(provenance.reasons(ids))
        raise ReportError(
            f"the measurements of {domain} mix {len(simulated)} simulated or lab ones ({reasons}) with "
            f"{len(ids) - len(simulated)} real ones; a report must be one or the other. Keep them in "
            "separate databases, or narrow the report with --since/--until"
        )
    episodes = find_episodes(verdicts)
    correlation = correlate(orders, episodes, verdicts)
    correlation = correlation[correlation["domain"] == domain].reset_index(drop=True)
    unexplained = unexplained_episodes(orders, episodes)
    labels = network_labels(verdicts, provenance)
    networks = _network_summaries(domain, verdicts, episodes, labels)
    targets = sorted(set(ids))
    evidence_ids = sorted(set(targets) | set(canary_ids(db_url, targets)))

    report = Report(
        domain=domain,
        out_dir=out_dir,
        verdicts=verdicts,
        episodes=episodes,
        correlation=correlation,
        unexplained=unexplained,
        networks=networks,
        evidence_ids=evidence_ids,
        generated_at=datetime.now(UTC),
        simulated=len(simulated),
        simulated_reasons=provenance.reasons(ids),
        controls=provenance.controls(ids),
    )
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not replace_existing)):
        raise ReportError(f"{out_dir} is not an empty folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        _write_all(report, work, db_url, orders, labels, provenance)
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f"{work.name}.old")
            os.replace(out_dir, old)
        os.replace(work, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def _draw_charts(
    report: Report,
    out: Path,
    orders: pd.DataFrame,
    labels: dict[int | None, str],
    notice: list[str] | None,
) -> dict[str, dict[str, str]]:
    """Both charts in each language, saved under ``charts/`` (English without a suffix,
    ``timeline-ru.png`` and so on for the others); returns each page's images."""
    images: dict[str, dict[str, str]] = {}
    domain = report.domain
    for lang in LANGUAGES:
        suffix = "" if lang == "en" else f"-{lang}"
        timeline = charts.save(
            charts.timeline(
                domain, report.episodes, report.verdicts, orders, labels=labels, simulated=notice, lang=lang
            ),
            out / "charts" / f"timeline{suffix}",
        )
        heatmap = charts.save(
            charts.heatmap(report.verdicts, domain, labels=labels, simulated=notice, lang=lang),
            out / "charts" / f"heatmap{suffix}",
        )
        images[lang] = {"timeline": _data_uri(timeline[0]), "heatmap": _data_uri(heatmap[0])}
    return images


def _write_all(
    report: Report,
    out: Path,
    db_url: str,
    orders: pd.DataFrame,
    labels: dict[int | None, str],
    provenance: Provenance,
) -> None:
    domain = report.domain
    relevant_orders = orders[[domain in list(d) for d in orders["domains"]]]
    notices = (report.simulated_notice(lang) for lang in LANGUAGES)
    notice = [n for n in notices if n] if report.simulated else None
    images = _draw_charts(report, out, relevant_orders, labels, notice)
    episodes = report.episodes.copy()
    episodes["network"] = [labels.get(None if pd.isna(a) else int(a), "") for a in episodes["probe_asn"]]
    _write_csv(
        out / "episodes.csv", episodes, [*EPISODE_COLUMNS, "episode_id", "confirmed", "methods", "network"]
    )
    _write_csv(out / "orders.csv", report.correlation, list(CORRELATION_COLUMNS))
    verdicts = report.verdicts.copy()
    verdicts["network"] = [labels.get(None if pd.isna(a) else int(a), "") for a in verdicts["probe_asn"]]
    verdicts["simulated"] = [provenance.sources[i].simulated or "" for i in verdicts["measurement_id"]]
    verdicts["ooni_url"] = [provenance.sources[i].ooni_url or "" for i in verdicts["measurement_id"]]
    _write_csv(
        out / "verdicts.csv",
        verdicts,
        [
            "measurement_id",
            "measured_at",
            "probe_asn",
            "url",
            "status",
            "blocking",
            "confirmed",
            "rule_id",
            "reason",
            "observation_ids",
            "network",
            "simulated",
            "ooni_url",
        ],
    )
    (out / "citation.txt").write_text(report.citation(), encoding="utf-8")
    write_evidence(db_url, report.evidence_ids, out)
    for lang in LANGUAGES:
        (out / PAGE_NAMES[lang]).write_text(
            render_html(report, relevant_orders, images[lang], labels, provenance, lang=lang),
            encoding="utf-8",
        )
    write_manifest(out)  # last: it seals every file above


def _write_csv(path: Path, frame: pd.DataFrame, columns: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in frame.to_dict(orient="records"):
            writer.writerow([_csv_cell(row.get(c)) for c in columns])


def _csv_cell(value: object) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


# --- HTML ------------------------------------------------------------------------------


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


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


__all__ = [
    "GAP_HOURS",
    "MIN_CONCLUSIVE",
    "PAGE_NAMES",
    "Report",
    "ReportError",
    "build_report",
    "network_labels",
    "render_html",
]

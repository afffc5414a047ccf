"""The evidence report: one folder a journalist can publish from and anyone can verify.

Layout of ``DIR`` (a stable interface; docs/evidence.md explains it to readers)
- ``index.html``: one self-contained page (charts embedded, no network fetches).
- ``citation.txt``: the sentences to quote, in English, Russian and Kyrgyz, each with
  its measurement counts and duration bracket.
- ``episodes.csv``, ``orders.csv``, ``verdicts.csv``: the tables behind the page.
- ``charts/timeline.{png,svg}``, ``charts/heatmap.{png,svg}``.
- ``evidence/measurements.jsonl``: every measurement behind every figure, with its
  content hash and signature; ``evidence/MANIFEST.sha256`` covers every file.

Why every figure links to measurements: a figure nobody can trace is an assertion, and
this project's output is cited against governments that will dispute it.
"""

from __future__ import annotations

import base64
import csv
import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from analysis import charts
from analysis import report_text as text
from analysis.data import canary_ids, load_verdicts
from analysis.episodes import DEFAULT_RULE, EPISODE_COLUMNS, bare_domain, find_episodes
from analysis.evidence import write_evidence, write_manifest
from analysis.orders import CORRELATION_COLUMNS, correlate, unexplained_episodes
from analysis.verdicts import RULES_VERSION

#: Fewer conclusive measurements than this on a network, and the report says so
#: instead of drawing a conclusion.
MIN_CONCLUSIVE = 10
#: Gaps in a network's measurements longer than this are listed as "not measured".
GAP_HOURS = 48


class ReportError(Exception):
    """Nothing to report (no measurements match), or the output folder is unusable."""


@dataclass
class NetworkSummary:
    asn: int
    label: str
    measurements: int
    conclusive: int
    accessible: int
    blocked: int
    first: datetime | None
    last: datetime | None
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)
    sentences: dict[str, list[str]] = field(default_factory=dict)


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

    def citation(self) -> str:
        lines = [
            f"Kuzot evidence report: {self.domain}",
            f"Generated {self.generated_at:%Y-%m-%d %H:%M} UTC",
            "",
        ]
        names = {"en": "English", "ru": "Русский", "ky": "Кыргызча"}
        for lang in text.LANGUAGES:
            lines.append(f"[{names[lang]}]")
            for network in self.networks:
                lines.extend(network.sentences[lang])
            lines.append("")
        lines.append(
            "Each figure is computed from the measurements in evidence/measurements.jsonl; "
            "check them with: kuzot verify <this folder>."
        )
        return "\n".join(lines) + "\n"


def _label(asn: int) -> str:
    return f"AS{asn}"


def _gaps(times: pd.Series) -> list[tuple[datetime, datetime]]:
    ordered = times.sort_values().reset_index(drop=True)
    delta = ordered.diff()
    out = []
    for i in delta.index[delta > pd.Timedelta(hours=GAP_HOURS)]:
        out.append((ordered[i - 1].to_pydatetime(), ordered[i].to_pydatetime()))
    return out


def _network_summaries(domain: str, verdicts: pd.DataFrame, episodes: pd.DataFrame) -> list[NetworkSummary]:
    out = []
    for asn, group in verdicts.groupby("probe_asn"):
        asn = int(asn)
        label = _label(asn)
        times = pd.to_datetime(group["measured_at"], utc=True)
        status = group["status"]
        conclusive = int(status.isin(["blocked", "accessible"]).sum())
        summary = NetworkSummary(
            asn=asn,
            label=label,
            measurements=len(group),
            conclusive=conclusive,
            accessible=int((status == "accessible").sum()),
            blocked=int((status == "blocked").sum()),
            first=times.min().to_pydatetime() if len(times) else None,
            last=times.max().to_pydatetime() if len(times) else None,
            gaps=_gaps(times),
        )
        mine = episodes[episodes["probe_asn"] == asn]
        for lang in text.LANGUAGES:
            sentences = []
            if mine.empty and conclusive < MIN_CONCLUSIVE:
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
                        first=summary.first,
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


def build_report(
    db_url: str,
    domain: str,
    out_dir: Path,
    *,
    orders: pd.DataFrame,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Report:
    """Compute, write and seal the report; returns what it wrote."""
    domain = bare_domain(domain)
    verdicts = load_verdicts(db_url, domain=domain, since=since, until=until)
    if verdicts.empty:
        raise ReportError(f"no measurements of {domain} in the database for that period")
    episodes = find_episodes(verdicts)
    correlation = correlate(orders, episodes, verdicts)
    correlation = correlation[correlation["domain"] == domain].reset_index(drop=True)
    unexplained = unexplained_episodes(orders, episodes)
    networks = _network_summaries(domain, verdicts, episodes)
    targets = sorted(set(verdicts["measurement_id"]))
    evidence_ids = sorted(set(targets) | set(canary_ids(db_url, targets)))

    out_dir.mkdir(parents=True, exist_ok=True)
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
    )
    relevant_orders = orders[[domain in list(d) for d in orders["domains"]]]
    timeline = charts.save(
        charts.timeline(domain, episodes, verdicts, relevant_orders), out_dir / "charts" / "timeline"
    )
    heatmap = charts.save(charts.heatmap(verdicts, domain), out_dir / "charts" / "heatmap")
    _write_csv(out_dir / "episodes.csv", episodes, [*EPISODE_COLUMNS, "episode_id", "confirmed", "methods"])
    _write_csv(out_dir / "orders.csv", correlation, list(CORRELATION_COLUMNS))
    _write_csv(
        out_dir / "verdicts.csv",
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
        ],
    )
    (out_dir / "citation.txt").write_text(report.citation(), encoding="utf-8")
    write_evidence(db_url, evidence_ids, out_dir)
    (out_dir / "index.html").write_text(
        render_html(report, relevant_orders, timeline[0], heatmap[0]), encoding="utf-8"
    )
    write_manifest(out_dir)  # last: it seals every file above
    return report


def _write_csv(path: Path, frame: pd.DataFrame, columns: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in frame.to_dict(orient="records"):
            writer.writerow([_csv_cell(row.get(c)) for c in columns])


def _csv_cell(value: object) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[arg-type]
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


# --- HTML ------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:72rem;margin:2rem auto;
padding:0 1rem;line-height:1.5;color:#1a1a1a}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}
.meta{color:#555}.sentence{font-size:1.1rem;margin:.4rem 0}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.6rem 0}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}
.blocked{color:#b00020;font-weight:600}.tag{font-family:monospace;font-size:.85rem}
details{margin:.4rem 0}summary{cursor:pointer}
"""


def _e(value: object) -> str:
    if value is None or (not isinstance(value, str | list) and pd.isna(value)):  # type: ignore[arg-type]
        return "—"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return html.escape(str(value))


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _days(value: object) -> str:
    return "—" if value is None or pd.isna(value) else f"{float(value):.1f}"  # type: ignore[arg-type]


def render_html(report: Report, orders: pd.DataFrame, timeline_png: Path, heatmap_png: Path) -> str:
    d = report.domain
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # A report must not fetch anything: no scripts, no remote images, no fonts.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">",
        f"<title>Kuzot evidence report: {_e(d)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Blocking of {_e(d)}: evidence report</h1>",
        f'<p class="meta">Generated {report.generated_at:%d %B %Y, %H:%M} UTC by Kuzot from '
        f"{len(report.verdicts)} measurements on {len(report.networks)} networks. "
        f"Verdict rules {RULES_VERSION}; episode rule: {DEFAULT_RULE.open_after} blocked measurements open "
        f"an episode (one if confirmed by a fingerprint), {DEFAULT_RULE.close_after} accessible ones "
        "close it.</p>",
        "<h2>Summary</h2>",
    ]
    for network in report.networks:
        for sentence in network.sentences["en"]:
            parts.append(f'<p class="sentence">{_e(sentence)} <a href="#net-{network.asn}">details</a></p>')
    for lang, heading in (("ru", "Кратко (по-русски)"), ("ky", "Кыскача (кыргызча)")):
        parts.append(f'<details lang="{lang}"><summary>{heading}</summary>')
        for network in report.networks:
            parts.extend(f'<p class="sentence">{_e(s)}</p>' for s in network.sentences[lang])
        parts.append("</details>")
    parts += [
        "<h2>Timeline</h2>",
        "<p>One row per network. Solid bars: the time between the first and the last blocked measurement "
        "(certainly blocked). Pale bars: up to the accessible measurements around them (the block began and "
        "ended somewhere in there). Dashed lines: orders; yellow: the ordered period. "
        "Ticks: measurements.</p>",
        _img(timeline_png, f"Timeline of blocking of {d} per network"),
        ' <p>Files: <a href="charts/timeline.png">PNG</a>, <a href="charts/timeline.svg">SVG</a></p>',
        "<h2>Blocked share by day</h2>",
        _img(heatmap_png, f"Share of measurements of {d} that were blocked, by day and network"),
        ' <p>Files: <a href="charts/heatmap.png">PNG</a>, <a href="charts/heatmap.svg">SVG</a></p>',
        "<h2>Block episodes</h2>",
    ]
    parts.append(_episodes_table(report))
    parts.append("<h2>Orders and their enforcement</h2>")
    parts.append(_orders_table(report, orders))
    if len(report.unexplained[report.unexplained["domain"] == d]):
        parts.append(
            '<p class="blocked">Some blocks of this site match no known order: see the episodes marked '
            "“no order” above.</p>"
        )
    parts.append("<h2>What was not measured</h2>")
    parts.append(_coverage(report))
    parts.append(_how_we_measured())
    parts.append("<h2>Measurements behind each figure</h2>")
    parts.append(_episode_details(report))
    parts.append(
        '<p>Every measurement is in <a href="evidence/measurements.jsonl">evidence/measurements.jsonl</a> '
        "(one JSON object a line, with its SHA-256 content hash and the probe's ed25519 signature), every "
        'verdict in <a href="verdicts.csv">verdicts.csv</a>; <a href="evidence/MANIFEST.sha256">'
        "MANIFEST.sha256</a> lists the hash of every file. Check the folder with <code>kuzot verify</code> "
        "or <code>sha256sum -c evidence/MANIFEST.sha256</code>.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _episodes_table(report: Report) -> str:
    eps = report.episodes
    if eps.empty:
        return "<p>No block episode was found in this period.</p>"
    explained = set(report.unexplained["episode_id"]) if len(report.unexplained) else set()
    rows = [
        "<table><tr><th>Network</th><th>Method</th><th>First blocked</th><th>Last blocked</th>"
        "<th>Duration (days)</th><th>Measurements</th><th>Order</th></tr>"
    ]
    for _, ep in eps.iterrows():
        low, high = ep["duration_days_min"], ep["duration_days_max"]
        span = f"{_days(low)} – {_days(high)}" if not pd.isna(high) else f"at least {_days(low)}"
        if ep["ongoing"]:
            span += " (ongoing)"
        order_ids = [
            oid
            for oid, ids in zip(
                report.correlation["order_id"], report.correlation["episode_ids"], strict=True
            )
            if ep["episode_id"] in ids
        ]
        order = ", ".join(order_ids) if order_ids else ("no order" if ep["episode_id"] in explained else "—")
        confirmed = " (confirmed)" if ep["confirmed"] else ""
        rows.append(
            f'<tr id="row-{ep["episode_id"]}"><td>AS{int(ep["probe_asn"])}</td>'
            f"<td>{_e(text.METHODS.get(ep['blocking'], text.METHODS[None])['en'])}{confirmed}</td>"  # type: ignore[index]
            f"<td>{_e(ep['first_blocked'])}</td><td>{_e(ep['last_blocked'])}</td><td>{span}</td>"
            f'<td><a href="#ep-{ep["episode_id"]}">{int(ep["measurements_blocked"])} of '
            f"{int(ep['measurements_total'])}</a></td><td>{_e(order)}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _orders_table(report: Report, orders: pd.DataFrame) -> str:
    if orders.empty:
        return "<p>No order in the orders file names this site.</p>"
    parts = [
        "<table><tr><th>Order</th><th>Issued</th><th>Ordered end</th><th>Withdrawn</th><th>Source</th></tr>"
    ]
    for _, o in orders.iterrows():
        source = f'<a href="{html.escape(o["source_url"])}">source</a>' if o["source_url"] else "—"
        parts.append(
            f"<tr><td>{_e(o['order_id'])}<br><small>{_e(o['authority'])}; {_e(o['legal_basis'])}</small></td>"
            f"<td>{_e(o['issued_on'])}</td><td>{_e(o['ordered_end'])}</td><td>{_e(o['withdrawn_on'])}</td>"
            f"<td>{source}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        "<table><tr><th>Order</th><th>Network</th><th>Status</th><th>Lag (days)</th><th>Blocked (days)</th>"
        "<th>Days past the ordered end</th><th>Days after withdrawal</th><th>Measurements</th></tr>"
    )
    for _, r in report.correlation.iterrows():
        network = f"AS{int(r['probe_asn'])}" if not pd.isna(r["probe_asn"]) else "none measured"
        blocked = "—"
        if not pd.isna(r["blocked_days_min"]):
            high = r["blocked_days_max"]
            blocked = (
                f"{_days(r['blocked_days_min'])} – {_days(high)}"
                if not pd.isna(high)
                else (f"at least {_days(r['blocked_days_min'])}")
            )
        links = " ".join(f'<a href="#ep-{eid}">episode</a>' for eid in r["episode_ids"])
        parts.append(
            f"<tr><td>{_e(r['order_id'])}</td><td>{network}</td><td>{_e(r['status'])}</td>"
            f"<td>{_days(r['enforcement_lag_days'])}</td><td>{blocked}</td>"
            f"<td>{_days(r['days_past_order_end'])}</td><td>{_days(r['days_after_withdrawal'])}</td>"
            f"<td>{int(r['measurements_blocked'])} of {int(r['measurements_total'])} {links}</td></tr>"
        )
    parts.append("</table>")
    return "\n".join(parts)


def _coverage(report: Report) -> str:
    parts = [
        "<table><tr><th>Network</th><th>Measurements</th><th>Conclusive</th><th>From</th><th>To</th>"
        "<th>Gaps over 48 hours</th></tr>"
    ]
    for n in report.networks:
        gaps = "; ".join(f"{a:%Y-%m-%d %H:%M} → {b:%Y-%m-%d %H:%M}" for a, b in n.gaps[:10]) or "none"
        if len(n.gaps) > 10:
            gaps += f"; and {len(n.gaps) - 10} more"
        few = " (too few to conclude)" if n.conclusive < MIN_CONCLUSIVE else ""
        parts.append(
            f'<tr id="net-{n.asn}"><td>{n.label}</td><td>{n.measurements}</td><td>{n.conclusive}{few}</td>'
            f"<td>{_e(n.first and pd.Timestamp(n.first))}</td><td>{_e(n.last and pd.Timestamp(n.last))}</td>"
            f"<td>{_e(gaps)}</td></tr>"
        )
    parts.append("</table>")
    other = report.verdicts["status"].value_counts()
    parts.append(
        "<p>Measurements that cannot say anything about blocking are not counted as blocked or as "
        f"accessible: site down for everyone ({int(other.get('down', 0))}), volunteer's own connection down "
        f"({int(other.get('probe_offline', 0))}), inconclusive ({int(other.get('inconclusive', 0))}). "
        "Networks with no volunteer are not in this report at all: absence of a row is absence of data, "
        "not absence of blocking.</p>"
    )
    return "\n".join(parts)


def _how_we_measured() -> str:
    return (
        "<h2>How we measured</h2><p>Volunteers in Kyrgyzstan run the Kuzot probe on their own connections. "
        "For each site it resolves the name (through the system and the network's resolvers, listening for "
        "injected replies), connects to every address, completes a TLS handshake with the site's name, and "
        "loads the page. A control server outside the country does the same at the same time. A measurement "
        "is called <em>blocked</em> only when the probe fails in a way the control does not (or a known "
        "blockpage appears); when both fail, the site is <em>down</em>, not blocked; "
        "when the probe's own test "
        "sites (canaries) fail too, the volunteer's connection is down and nothing is concluded. Each "
        "verdict names the rule and the observations that decided it (see verdicts.csv). The probe never "
        "records the volunteer's IP address.</p>"
        "<p>Dates are UTC. A block's duration is an interval: the lower figure counts only the time between "
        "blocked measurements; the upper figure reaches to the accessible measurements around them.</p>"
    )


def _episode_details(report: Report) -> str:
    if report.episodes.empty:
        return "<p>No episode.</p>"
    verdicts = report.verdicts.set_index("measurement_id")
    parts = []
    for _, ep in report.episodes.iterrows():
        parts.append(
            f'<details id="ep-{ep["episode_id"]}"><summary>AS{int(ep["probe_asn"])}, from '
            f"{_e(ep['first_blocked'])}: {len(ep['measurement_ids'])} measurements</summary>"
            "<table><tr><th>Measurement id</th><th>Time</th><th>Verdict</th><th>Why</th></tr>"
        )
        for mid in ep["measurement_ids"]:
            v = verdicts.loc[mid]
            status = (
                f'<span class="blocked">{_e(v["status"])}</span>'
                if v["status"] == "blocked"
                else _e(v["status"])
            )
            parts.append(
                f'<tr><td class="tag">{_e(mid)}</td><td>{_e(v["measured_at"])}</td><td>{status}</td>'
                f"<td>{_e(v['reason'])}</td></tr>"
            )
        parts.append("</table></details>")
    return "\n".join(parts)


__all__ = ["GAP_HOURS", "MIN_CONCLUSIVE", "Report", "ReportError", "build_report", "render_html"]

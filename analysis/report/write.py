"""The one writer of a report folder: reads the database and the fingerprints, has
:func:`~analysis.report.compose.compose_report` compose, then draws, writes and seals.

Everything is written to a temporary folder beside the destination and moved into place
at the end, so a failure never leaves half a report.
"""

from __future__ import annotations

import base64
import csv
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd

from analysis import charts
from analysis.data import canary_ids, iter_measurements
from analysis.episodes import EPISODE_COLUMNS, bare_domain
from analysis.evidence import write_evidence, write_manifest
from analysis.i18n import LANGUAGES
from analysis.orders import CORRELATION_COLUMNS
from analysis.report.compose import PAGE_NAMES, Report, compose_report, target_ids
from analysis.report.html import render_html
from probe.errors import ReportError

#: The columns of ``verdicts.csv``, in order.
VERDICT_CSV_COLUMNS = [
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
]


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

    With ``replace_existing`` an earlier report in ``out_dir`` is swapped out only once
    the new one is complete."""
    from analysis.fingerprints import load_fingerprints

    domain = bare_domain(domain)
    measurements = list(iter_measurements(db_url, domain=domain, since=since, until=until))
    targets = target_ids(measurements)
    report = compose_report(
        domain,
        measurements,
        orders=orders,
        fingerprints=load_fingerprints(),
        canaries=canary_ids(db_url, targets) if targets else (),
        out_dir=out_dir,
    )
    write_report(report, db_url, replace_existing=replace_existing)
    return report


def write_report(report: Report, db_url: str, *, replace_existing: bool = False) -> None:
    """Write ``report`` into ``report.out_dir`` (its evidence read from ``db_url``),
    all or nothing."""
    out_dir = report.out_dir
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not replace_existing)):
        raise ReportError(f"{out_dir} is not an empty folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        _write_all(report, work, db_url)
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


def _with_network(frame: pd.DataFrame, labels: dict[int | None, str]) -> pd.DataFrame:
    out = frame.copy()
    out["network"] = [labels.get(None if pd.isna(a) else int(a), "") for a in out["probe_asn"]]
    return out


def _draw_charts(report: Report, out: Path, notice: list[str] | None) -> dict[str, dict[str, str]]:
    """Both charts in each language, saved under ``charts/`` (English without a suffix,
    ``timeline-ru.png`` and so on for the others); returns each page's images."""
    images: dict[str, dict[str, str]] = {}
    labels, domain = report.labels, report.domain
    for lang in LANGUAGES:
        suffix = "" if lang == "en" else f"-{lang}"
        timeline = charts.save(
            charts.timeline(
                domain,
                report.episodes,
                report.verdicts,
                report.orders,
                labels=labels,
                simulated=notice,
                lang=lang,
            ),
            out / "charts" / f"timeline{suffix}",
        )
        heatmap = charts.save(
            charts.heatmap(report.verdicts, domain, labels=labels, simulated=notice, lang=lang),
            out / "charts" / f"heatmap{suffix}",
        )
        images[lang] = {"timeline": _data_uri(timeline[0]), "heatmap": _data_uri(heatmap[0])}
    return images


def _write_all(report: Report, out: Path, db_url: str) -> None:
    labels, provenance = report.labels, report.provenance
    notice = report.simulated_notices() or None
    images = _draw_charts(report, out, notice)
    _write_csv(
        out / "episodes.csv",
        _with_network(report.episodes, labels),
        [*EPISODE_COLUMNS, "episode_id", "confirmed", "methods", "network"],
    )
    _write_csv(out / "orders.csv", report.correlation, list(CORRELATION_COLUMNS))
    verdicts = _with_network(report.verdicts, labels)
    verdicts["simulated"] = [provenance.sources[i].simulated or "" for i in verdicts["measurement_id"]]
    verdicts["ooni_url"] = [provenance.sources[i].ooni_url or "" for i in verdicts["measurement_id"]]
    _write_csv(out / "verdicts.csv", verdicts, VERDICT_CSV_COLUMNS)
    (out / "citation.txt").write_text(report.citation(), encoding="utf-8")
    write_evidence(db_url, report.evidence_ids, out)
    for lang in LANGUAGES:
        page = render_html(report, report.orders, images[lang], labels, provenance, lang=lang)
        (out / PAGE_NAMES[lang]).write_text(page, encoding="utf-8")
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


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()

"""What a report says, computed from data it is given: measurements and orders in, a
:class:`Report` out.

No I/O here (the layer test holds it to that): the one writer,
:mod:`analysis.report.write`, reads the database and the fingerprints and writes the
folder, so the same composition can be tested and reused without a disk.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from analysis import report_text as text
from analysis.episodes import bare_domain, find_episodes
from analysis.fingerprints import FingerprintSet
from analysis.i18n import LANGUAGE_NAMES, LANGUAGES
from analysis.networks import network_label
from analysis.orders import correlate, unexplained_episodes
from analysis.report_sources import Provenance
from analysis.verdicts import judge_all, verdicts_frame
from probe.errors import ReportError
from probe.records import Measurement

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
    #: ``Name (ASn)`` of each network in :attr:`verdicts`.
    labels: dict[int | None, str] = field(default_factory=dict)
    #: Where each measurement came from (simulated, OONI link, network name).
    provenance: Provenance = field(default_factory=lambda: Provenance.of([]))
    #: The orders naming :attr:`domain` (the chart and the page list them).
    orders: pd.DataFrame = field(default_factory=pd.DataFrame)

    def simulated_notice(self, lang: str) -> str | None:
        if not self.simulated:
            return None
        return text.simulated_sentence(lang, self.simulated, len(self.verdicts))

    def simulated_notices(self) -> list[str]:
        """The simulated-data notice in every language (empty for real data)."""
        if not self.simulated:
            return []
        return [text.simulated_sentence(lang, self.simulated, len(self.verdicts)) for lang in LANGUAGES]

    def citation(self) -> str:
        lines = []
        if self.simulated:
            lines += ["*** " + notice + " ***" for notice in self.simulated_notices()]
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


def _asn_key(asn: object) -> int | None:
    return None if pd.isna(asn) else int(asn)  # type: ignore[call-overload]  # asn: a pandas scalar, int or float


def network_labels(verdicts: pd.DataFrame, provenance: Provenance) -> dict[int | None, str]:
    """``Name (ASn)`` for each network of ``verdicts``, named from the table or from
    what its measurements recorded."""
    labels: dict[int | None, str] = {}
    for asn, group in verdicts.groupby("probe_asn", dropna=False):
        key = _asn_key(asn)
        labels[key] = network_label(key, provenance.network_name(group["measurement_id"]))
    return labels


def _summary(key: int | None, label: str, group: pd.DataFrame) -> NetworkSummary:
    times = pd.to_datetime(group["measured_at"], utc=True).dropna()
    status = group["status"]
    return NetworkSummary(
        asn=key,
        label=label,
        measurements=len(group),
        conclusive=int(status.isin(["blocked", "accessible"]).sum()),
        accessible=int((status == "accessible").sum()),
        blocked=int((status == "blocked").sum()),
        first=times.min().to_pydatetime() if len(times) else None,
        last=times.max().to_pydatetime() if len(times) else None,
        gaps=_gaps(times),
    )


def _sentences(domain: str, summary: NetworkSummary, episodes: pd.DataFrame, lang: str) -> list[str]:
    """The summary sentences of one network in ``lang``: its episodes, or that it was
    open, or that too few measurements say anything."""
    label, conclusive = summary.label, summary.conclusive
    sentences = []
    if episodes.empty and (conclusive < MIN_CONCLUSIVE or summary.first is None or summary.last is None):
        # An episode is stated whatever the count (its own figures say how many
        # measurements back it); "not seen blocked" needs enough of them.
        sentences.append(
            text.too_few_sentence(lang=lang, domain=domain, network=label, conclusive=conclusive)
        )
    elif episodes.empty:
        sentences.append(
            text.open_sentence(
                lang=lang,
                domain=domain,
                network=label,
                accessible=summary.accessible,
                conclusive=conclusive,
                first=summary.first,  # type: ignore[arg-type]  # not None: checked in the branch above
                last=summary.last,  # type: ignore[arg-type]  # not None: checked in the branch above
            )
        )
    for _, ep in episodes.iterrows():
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
    return sentences


def _network_summaries(
    domain: str, verdicts: pd.DataFrame, episodes: pd.DataFrame, labels: dict[int | None, str]
) -> list[NetworkSummary]:
    out = []
    for asn, group in verdicts.groupby("probe_asn", dropna=False):
        key = _asn_key(asn)
        summary = _summary(key, labels[key], group)
        asns = episodes["probe_asn"]
        mine = episodes[asns.isna()] if key is None else episodes[asns == key]
        summary.sentences = {lang: _sentences(domain, summary, mine, lang) for lang in LANGUAGES}
        out.append(summary)
    return out


def target_ids(measurements: Sequence[Measurement]) -> list[str]:
    """The ids of the measurements a report judges (all but canaries), sorted: the
    writer asks the database for the canaries of their runs."""
    return sorted({m.id for m in measurements if m.role != "canary"})


def compose_report(
    domain: str,
    measurements: Sequence[Measurement],
    *,
    orders: pd.DataFrame,
    fingerprints: FingerprintSet,
    canaries: Collection[str] = (),
    out_dir: Path = Path("."),
    generated_at: datetime | None = None,
) -> Report:
    """The report on ``domain`` from its measurements (canaries of their runs included)
    and the orders; ``canaries`` are the ids of every canary of those runs, kept as
    evidence that the probe was online.  Raises :class:`ReportError` for no
    measurements, or for simulated ones mixed with real ones."""
    domain = bare_domain(domain)
    verdicts = verdicts_frame(judge_all(measurements, fingerprints=fingerprints))
    provenance = Provenance.of(measurements)
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
    labels = network_labels(verdicts, provenance)
    return Report(
        domain=domain,
        out_dir=out_dir,
        verdicts=verdicts,
        episodes=episodes,
        correlation=correlation,
        unexplained=unexplained_episodes(orders, episodes),
        networks=_network_summaries(domain, verdicts, episodes, labels),
        evidence_ids=sorted(set(ids) | set(canaries)),
        generated_at=generated_at or datetime.now(UTC),
        simulated=len(simulated),
        simulated_reasons=provenance.reasons(ids),
        controls=provenance.controls(ids),
        labels=labels,
        provenance=provenance,
        orders=orders[[domain in list(d) for d in orders["domains"]]],
    )

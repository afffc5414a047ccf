"""``kuzot demo``: the whole product in one command, on the namespace lab.

A newcomer should see what Kuzot is for without a volunteer in Bishkek: the lab plays
three Kyrgyz ISPs on the day of the Azattyk order (26 October 2022).  ISP A enforces it
in its resolver from mid-morning, ISP B never does, ISP C resets TLS handshakes from the
afternoon, and ISP B's volunteer loses their own link for one round.  The real probe
measures through real daemons; only the clock is simulated (every measurement says so,
``simulated_clock=true``), so a day passes in a couple of minutes.  Then verdicts,
episodes, the correlation with the orders file (``analysis/data/orders.csv``) and the evidence report follow,
exactly as for real data.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from probe.i18n import gettext as _
from probe.lab.netns import NetnsLab

DAY = datetime(2022, 10, 26, tzinfo=UTC)


@dataclass(frozen=True)
class DemoNetwork:
    asn: int
    name: str
    #: (hour of the day from which it applies, lab scenario), in order
    schedule: tuple[tuple[int, str], ...]


#: Private-use AS numbers: lab networks, not real ISPs.
NETWORKS = (
    DemoNetwork(64601, "ISP A (lab)", ((0, "clean"), (9, "demo-dns"))),
    DemoNetwork(64602, "ISP B (lab)", ((0, "clean"), (12, "offline"), (13, "clean"))),
    DemoNetwork(64603, "ISP C (lab)", ((0, "clean"), (15, "demo-sni"))),
)


def scenario_at(network: DemoNetwork, hour: float) -> str:
    current = network.schedule[0][1]
    for start, name in network.schedule:
        if hour >= start:
            current = name
    return current


def _probe_args(db: str, urls: list[str], network: DemoNetwork, when: datetime) -> list[str]:
    """``kuzot run`` arguments for one network's round: its ASN and name, and the simulated clock."""
    return [
        "--db", db, *urls, "--probe-asn", str(network.asn), "--probe-cc", "KG",
        "--probe-network", network.name, "--simulated-start", when.isoformat(), "--quiet",
    ]  # fmt: skip


def _measure_day(db: str, rounds: list[datetime], say: Callable[[str], None]) -> tuple[list[str], list[str]]:
    """Run every round for every network in one lab; returns (failures, lab namespaces).

    One lab for the whole day, switching its scenario only when the next network's
    differs, because building namespaces is the slow part.  A failed round is noted,
    not fatal: the demo still shows what the other rounds measured."""
    failures: list[str] = []
    with NetnsLab("clean", timeout=2.0) as lab:
        namespaces = sorted(lab.namespaces.values())
        active = "clean"
        urls = lab.url_args()  # the same six sites every round, whatever the ISP does
        for when in rounds:
            for network in NETWORKS:
                wanted = scenario_at(network, (when - DAY).total_seconds() / 3600)
                if wanted != active:
                    lab.set_scenario(wanted)
                    active = wanted
                result = lab.exec_probe(_probe_args(db, urls, network, when))
                if result.returncode != 0:
                    failures.append(f"{network.name} at {when:%H:%M}: {result.stderr.strip()[-300:]}")
                say(f"  {when:%H:%M}  {network.name:<12} {wanted:<9} " + _("measured"))
    return failures, namespaces


def _analyse(db: str, out_dir: Path) -> dict[str, object]:
    """Verdicts, episodes, the correlation with the bundled orders and the report, as for real data.

    Imported here so that ``kuzot demo --help`` does not load pandas."""
    from analysis.bundled import orders_file
    from analysis.data import load_verdicts
    from analysis.episodes import episodes_to_records, find_episodes
    from analysis.orders import correlate, load_orders
    from analysis.report import build_report

    verdicts = load_verdicts(db)
    episodes = find_episodes(verdicts)
    orders = load_orders(orders_file())
    table = correlate(orders, episodes, verdicts)
    report = build_report(db, "azattyk.org", out_dir / "report", orders=orders)
    enforcement = table[table["order_id"] == "kg-2022-10-26-azattyk"]
    return {
        "database": db,
        "report": str(out_dir / "report" / "index.html"),
        "citation": report.citation(),
        "verdicts": verdicts["status"].value_counts().to_dict(),
        "episodes": episodes_to_records(episodes, with_ids=False),
        "enforcement": {
            f"{row.domain} AS{row.probe_asn}": row.status
            for row in enforcement.itertuples()
            if row.probe_asn is not None and str(row.probe_asn) != "<NA>"
        },
    }


def run_demo(
    out_dir: Path,
    *,
    every_hours: int = 2,
    say: Callable[[str], None] = print,
) -> dict[str, object]:
    """Measure a simulated day, then write verdicts, episodes and the report under
    ``out_dir``; the lab is torn down whatever happens."""
    out_dir.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{out_dir / 'demo.db'}"
    # The demo's own installation key and consent: lab data is never signed with the
    # volunteer's real key.
    os.environ["KUZOT_CONFIG_DIR"] = str(out_dir / "config")
    rounds = [DAY + timedelta(hours=h) for h in range(0, 24, every_hours)]
    say(
        _(
            "Building the lab (volunteer, ISP, internet, control) and measuring {rounds} rounds "
            "on {networks} networks, 26 October 2022, simulated clock..."
        ).format(rounds=len(rounds), networks=len(NETWORKS))
    )
    failures, namespaces = _measure_day(db, rounds, say)
    # Reached only when NetnsLab.__exit__ removed everything (it raises LabError otherwise).
    say(_("Lab torn down."))
    return {**_analyse(db, out_dir), "failures": failures, "lab_namespaces": namespaces}

"""What a volunteer reads after a run, and `kuzot status`."""

from __future__ import annotations

import json
from pathlib import Path

from probe.lab.dns_server import Behaviour as DnsBehaviour
from probe.lab.loopback import LoopbackLab, Scenario
from tests.conftest import kuzot


def test_plain_summary_json_and_status(tmp_path: Path) -> None:
    """If a run finds one blocked site, then the summary sentence names it, --json lists it, and status shows the run."""
    with LoopbackLab() as lab:
        blocked = lab.add(Scenario("nx", "24.kg", dns=DnsBehaviour.nxdomain()))
        ok = lab.add(Scenario("ok", "kaktus.media"))
        db = f"sqlite:///{tmp_path / 'k.db'}"
        urls = ["--url", blocked.url, "--url", ok.url]
        text = kuzot("run", "--db", db, *urls, *lab.probe_args())
        assert text.returncode == 0, text.stderr
        assert "1 of 2 sites look blocked on your network: 24.kg" in text.stdout
        machine = kuzot("run", "--db", db, *urls, *lab.probe_args(), "--json")
        summary = json.loads(machine.stdout)
        assert summary["blocked_domains"] == ["24.kg"] and summary["measured"] == 2
        assert summary["bytes_used"] > 0
    status = kuzot("status", "--db", db, "--json")
    data = json.loads(status.stdout)
    assert len(data["runs"]) == 2 and data["runs"][0]["status"] == "finished"
    assert data["runs"][0]["measured"] == 2 and data["upload_queue"] == 6  # 2 runs x (2 targets + canary)
    human = kuzot("status", "--db", db)
    assert "Measurements waiting to be uploaded: 6" in human.stdout

"""kuzot demo: the whole chain on the namespace lab, torn down afterwards (root only)."""

from __future__ import annotations

import json
import subprocess

import pytest

from probe.lab.netns import environment_problem
from tests.conftest import kuzot


def test_demo_runs_the_whole_chain_and_cleans_up(tmp_path):
    """A simulated day through real daemons ends in a verifiable report; enforcing ISPs are found, the other is not."""
    problem = environment_problem()
    if problem:
        pytest.skip(f"kuzot demo needs root and ip netns: {problem}")
    out = tmp_path / "demo"
    result = kuzot("demo", "--out", str(out), "--every", "4", "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["failures"] == []
    assert outcome["enforcement"]["azattyk.org AS64601"] == "enforced"
    assert outcome["enforcement"]["azattyk.org AS64603"] == "enforced"
    assert outcome["enforcement"]["azattyk.org AS64602"] in ("not_enforced", "no_data")
    assert outcome["verdicts"].get("probe_offline", 0) > 0, "ISP B's volunteer lost their link for a round"
    methods = {(e["probe_asn"], e["blocking"]) for e in outcome["episodes"] if e["domain"] == "azattyk.org"}
    assert methods == {(64601, "dns"), (64603, "tls")}
    assert "SIMULATED DATA" in (out / "report" / "citation.txt").read_text()
    assert 'id="simulated"' in (out / "report" / "index.html").read_text()
    assert "ISP A (lab) (AS64601)" in outcome["citation"]
    verify = kuzot("verify", str(out / "report"))
    assert verify.returncode == 0, verify.stdout
    # Only this demo's own namespaces: other labs may come and go on a shared machine.
    own = set(outcome["lab_namespaces"])
    assert len(own) == 4 and all(name.startswith("kz-") for name in own)
    assert not own & set(_namespaces()), "the lab is torn down"
    assert not (out / "config" / "signing-key.pem").stat().st_mode & 0o077


def _namespaces() -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith("kz-")]

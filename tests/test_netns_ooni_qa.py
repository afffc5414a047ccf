"""OONI's QA scenarios that need real packet filters, in the namespace lab (root only):
the real probe in the volunteer's namespace, the ISP's dnsmasq, nftables and iptables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe.lab.netns import NetnsLab, environment_problem
from probe.lab.ooni_qa import CASES
from probe.lab.scenarios import load_scenario
from tests.conftest import kuzot

SCENARIO = load_scenario("ooni-qa")


@pytest.fixture(scope="module")
def qa_netns() -> Iterator[NetnsLab]:
    problem = environment_problem()
    if problem:
        pytest.skip(f"needs root and ip netns: {problem}")
    lab = NetnsLab(SCENARIO)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


@pytest.mark.netns
def test_netns_rows_name_ooni_cases() -> None:
    """If a row of the ooni-qa scenario exists, then its notes start with an OONI case of the table."""
    names = {c.name for c in CASES}
    for row in SCENARIO.sites:
        assert row.notes.split(":")[0].split(" ")[0] in names, row.notes
    netns_cases = {c.name for c in CASES if c.lab == "netns"}
    assert netns_cases <= {row.notes.split(":")[0].split(" ")[0] for row in SCENARIO.sites}


@pytest.mark.netns
def test_netns_ooni_qa_rows_get_their_verdicts(qa_netns: NetnsLab, tmp_path: Path) -> None:
    """If the namespace lab plays OONI's QA rows, then each gets the verdict its expect table names."""
    db = f"sqlite:///{tmp_path / 'qa.db'}"
    result = qa_netns.exec_probe(
        ["--db", db, "--quiet", "--probe-asn", "64500", "--probe-cc", "KG", *qa_netns.url_args()]
    )
    assert result.returncode == 0, result.stderr
    verdicts = kuzot("verdicts", "--db", db, "--format", "json")
    assert verdicts.returncode == 0, verdicts.stderr
    by_domain = {v["domain"]: v for v in json.loads(verdicts.stdout)}
    wrong = []
    for row in SCENARIO.sites:
        verdict = by_domain[row.domain]
        got = (verdict["status"], verdict["blocking"])
        if got != (row.expect.status, row.expect.blocking):
            wrong.append(f"{row.notes.split(':')[0]} ({row.domain}): got {got}: {verdict['reason']}")
    assert not wrong, "\n".join(wrong)

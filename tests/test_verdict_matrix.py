"""The verdict scenario matrix: each lab scenario, measured by the real probe with the
control helper, judged through ``kuzot verdicts --format json``."""

from __future__ import annotations

import json

import pytest

from probe.lab.loopback import LoopbackLab, Scenario, matrix
from probe.lab.web_servers import Behaviour as WebBehaviour
from tests.conftest import kuzot


@pytest.fixture(scope="module")
def matrix_verdicts(matrix_run: dict) -> dict[str, dict]:
    result = kuzot("verdicts", "--db", matrix_run["db"], "--format", "json")
    assert result.returncode == 0, result.stderr
    by_id = {v["measurement_id"]: v for v in json.loads(result.stdout)}
    return {name: by_id[m["id"]] for name, m in matrix_run["measurements"].items()}


@pytest.mark.parametrize("scenario", matrix(), ids=lambda s: s.name)
def test_scenario_gives_its_expected_verdict(scenario: Scenario, matrix_verdicts: dict[str, dict]) -> None:
    """If the lab plays a scenario, then the verdict has the expected status, method and confirmation."""
    verdict = matrix_verdicts[scenario.name]
    assert verdict["status"] == scenario.expect_status, verdict["reason"]
    assert verdict["blocking"] == scenario.expect_blocking, verdict["reason"]
    if scenario.expect_confirmed is not None:
        assert verdict["confirmed"] is scenario.expect_confirmed, verdict["reason"]
    assert verdict["reason"] and verdict["rule_id"] and verdict["observation_ids"]


def test_verdict_fields_are_the_contract(matrix_verdicts: dict[str, dict]) -> None:
    """If verdicts are printed as JSON, then each has the documented fields with UTC times."""
    verdict = matrix_verdicts["honest"]
    for name in (
        "measurement_id",
        "url",
        "domain",
        "probe_asn",
        "measured_at",
        "status",
        "blocking",
        "confirmed",
        "reason",
    ):
        assert name in verdict
    assert verdict["measured_at"].endswith("Z") and verdict["probe_asn"] == 64500


def test_reachable_or_down_everywhere_is_never_blocked(matrix_verdicts: dict[str, dict]) -> None:
    """If the probe reached the site, or the control failed too, then no verdict says blocked."""
    for name in ("honest", "slow_but_honest", "down_for_everyone"):
        assert matrix_verdicts[name]["status"] != "blocked"


def test_probe_offline_is_never_blocked(tmp_path) -> None:
    """If the volunteer's own link is down (canaries fail too), then every verdict is probe_offline."""
    with LoopbackLab() as lab:
        blocked = lab.add(Scenario("blk", "www.azattyk.org", site=WebBehaviour.reset()))
        honest = lab.add(Scenario("ok", "kaktus.media"))
        lab.link_down()
        db = f"sqlite:///{tmp_path / 'k.db'}"
        run = kuzot(
            "run", "--db", db, "--url", blocked.url, "--url", honest.url, *lab.probe_args(), "--quiet"
        )
        assert run.returncode == 0, run.stderr
        result = kuzot("verdicts", "--db", db, "--format", "json")
        verdicts = json.loads(result.stdout)
        assert len(verdicts) == 2
        assert {v["status"] for v in verdicts} == {"probe_offline"}


def test_table_and_csv_formats(matrix_run: dict) -> None:
    """If verdicts are printed as a table or CSV, then the headers and rows are there."""
    table = kuzot("verdicts", "--db", matrix_run["db"], "--format", "table")
    assert table.returncode == 0 and "blocked" in table.stdout
    csv_out = kuzot("verdicts", "--db", matrix_run["db"], "--format", "csv", "--domain", "24.kg")
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0].startswith("measurement_id,url,domain") and len(lines) == 2

"""The namespace lab: the real probe in the volunteer's namespace, behind an ISP that
blocks with dnsmasq, nftables, iptables and nginx; raw observations per matrix row,
verdicts per row, a scenario switch to a dead uplink, and a complete teardown."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from probe.lab import daemons
from probe.lab.netns import REGISTRY, NetnsLab, environment_problem
from probe.lab.scenarios import METHODS, ScenarioError, SiteRule, load_scenario, scenario_from_dict
from tests.conftest import kuzot

MATRIX = load_scenario("matrix")


def _need_lab() -> None:
    problem = environment_problem()
    if problem:
        pytest.skip(f"needs root and ip netns: {problem}")


@pytest.fixture(scope="module")
def lab() -> Iterator[NetnsLab]:
    """One lab for the module; torn down even when a test fails."""
    _need_lab()
    lab = NetnsLab(MATRIX)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def matrix_db(lab: NetnsLab, tmp_path_factory: pytest.TempPathFactory) -> str:
    db = f"sqlite:///{tmp_path_factory.mktemp('netns') / 'kuzot.db'}"
    result = lab.exec_probe(
        ["--db", db, "--quiet", "--probe-asn", "64500", "--probe-cc", "KG", *lab.url_args()]
    )
    assert result.returncode == 0, result.stderr
    return db


@pytest.fixture(scope="module")
def observed(matrix_db: str) -> dict[str, dict]:
    """Measurements of the matrix run, by domain (``kuzot show --format json``)."""
    result = kuzot("show", "--db", matrix_db, "--format", "json")
    assert result.returncode == 0, result.stderr
    return {m["domain"]: m for m in json.loads(result.stdout) if m["role"] == "target"}


# --- what each blocking method must look like in the raw observations -------------------------


def _a_answers(m: dict) -> set[str]:
    return {a["value"] for q in m["dns"] if q["query_type"] in ("A", "ANY") for a in q["answers"]}


def _target_tls(m: dict) -> list[dict]:
    return [t for t in m["tls"] if t["purpose"] == "target"]


def _body(http: dict) -> str:
    return base64.b64decode(http["body_sample"]).decode("utf-8", "replace")


def check_none(m: dict, rule: SiteRule) -> None:
    assert m["failures"] == {"dns": None, "tcp": None, "tls": None, "http": None}
    assert _target_tls(m)[0]["validated"] is True
    assert m["http"][-1]["status_code"] == 200 and rule.domain in m["http"][-1]["title"]


def check_dns_blockpage(m: dict, rule: SiteRule) -> None:
    assert _a_answers(m) == {daemons.BLOCKPAGE_IP}
    assert _target_tls(m)[0]["failure"] == "ssl_unknown_authority", "the blockpage's certificate is untrusted"
    assert m["control"]["dns"] and daemons.BLOCKPAGE_IP not in _a_answers(m["control"])


def check_dns_nxdomain(m: dict, rule: SiteRule) -> None:
    assert {q["failure"] for q in m["dns"] if q["hostname"] == rule.domain} == {"dns_nxdomain_error"}
    # As OONI's probe does, the probe then tries the addresses the control resolved.
    control_addresses = {a["value"] for d in m["control"]["dns"] for a in d["answers"]}
    assert {t["ip"] for t in m["tcp"]} <= control_addresses


def check_ip_reset(m: dict, rule: SiteRule) -> None:
    assert m["tcp"][0]["failure"] is None, "the handshake goes through; the first data is reset"
    assert {t["failure"] for t in m["tls"]} == {"connection_reset"}, "whatever the SNI"


def check_ip_blackhole(m: dict, rule: SiteRule) -> None:
    assert m["tcp"][0]["failure"] == "generic_timeout_error"


def check_sni_reset(m: dict, rule: SiteRule) -> None:
    assert _target_tls(m)[0]["failure"] == "connection_reset"
    comparison = [t for t in m["tls"] if t["purpose"] == "comparison"]
    assert comparison and comparison[0]["failure"] != "connection_reset", "another SNI gets through"


def check_http_blockpage_200(m: dict, rule: SiteRule) -> None:
    page = m["http"][0]
    assert page["status_code"] == 200 and page["title"] == "Access denied"
    assert daemons.BLOCKPAGE_MARKER in _body(page) and daemons.ELCAT_PHRASE in _body(page)


def check_http_redirect(m: dict, rule: SiteRule) -> None:
    first = m["http"][0]
    assert first["status_code"] == 302
    assert ["location", daemons.HOMELINE_BLOCKPAGE_URL] in [[k.lower(), v] for k, v in first["headers"]]


def check_site_down(m: dict, rule: SiteRule) -> None:
    assert m["tcp"][0]["failure"] == "connection_refused"
    assert m["control"]["tcp"][0]["failure"] == "connection_refused", "down for the control too"


def check_slow(m: dict, rule: SiteRule) -> None:
    check_none(m, rule)
    connect = m["tcp"][0]
    assert connect["finished"] - connect["started"] >= rule.delay_ms / 1000 * 0.9, "the SYN-ACK was held"


CHECKS: dict[str, Callable[[dict, SiteRule], None]] = {
    "none": check_none,
    "dns_blockpage": check_dns_blockpage,
    "dns_nxdomain": check_dns_nxdomain,
    "ip_reset": check_ip_reset,
    "ip_blackhole": check_ip_blackhole,
    "sni_reset": check_sni_reset,
    "http_blockpage_200": check_http_blockpage_200,
    "http_redirect": check_http_redirect,
    "site_down": check_site_down,
    "slow": check_slow,
}


@pytest.mark.netns
@pytest.mark.parametrize("rule", MATRIX.sites, ids=lambda r: r.block)
def test_matrix_row_observations(rule: SiteRule, observed: dict[str, dict]) -> None:
    """If the ISP treats a domain by one method, then the probe's raw observations show that method."""
    CHECKS[rule.block](observed[rule.domain], rule)


@pytest.mark.netns
def test_matrix_rows_get_their_verdicts(matrix_db: str, observed: dict[str, dict]) -> None:
    """If the matrix is measured, then every row gets the status and blocking its expect table names."""
    result = kuzot("verdicts", "--db", matrix_db, "--format", "json")
    assert result.returncode == 0, result.stderr
    by_domain = {v["domain"]: v for v in json.loads(result.stdout)}
    wrong = []
    for rule in MATRIX.sites:
        verdict = by_domain[rule.domain]
        got = (verdict["status"], verdict["blocking"])
        if got != (rule.expect.status, rule.expect.blocking) or (
            rule.expect.confirmed is not None and verdict["confirmed"] is not rule.expect.confirmed
        ):
            wrong.append(f"{rule.domain} ({rule.block}): got {got}: {verdict['reason']}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.netns
def test_every_method_is_in_the_matrix() -> None:
    """If a blocking method exists, then the matrix has a row for it and the test a check."""
    assert {r.block for r in MATRIX.sites} == set(METHODS) == set(CHECKS)


@pytest.mark.netns
def test_set_scenario_takes_the_uplink_down(lab: NetnsLab, observed: dict, tmp_path: Path) -> None:
    """If the lab switches to the offline scenario, then canaries fail too and every verdict is probe_offline."""
    db = f"sqlite:///{tmp_path / 'offline.db'}"
    try:
        lab.set_scenario("offline")
        result = lab.exec_probe(["--db", db, "--quiet", "--timeout", "1", *lab.url_args()])
        assert result.returncode == 0, result.stderr
        verdicts = json.loads(kuzot("verdicts", "--db", db, "--format", "json").stdout)
        assert {v["status"] for v in verdicts} == {"probe_offline"}
    finally:
        lab.set_scenario(MATRIX)


@pytest.mark.netns
def test_down_removes_everything(lab: NetnsLab) -> None:
    """If a lab is brought down, then its namespaces, daemons, /etc/netns entries and state are gone."""
    other = NetnsLab("clean")
    try:
        other.up()
        assert other.suffix != lab.suffix
        pids = list(other._pids.values())
        state_dir = other.state_dir
    finally:
        problems = other.down()
    assert problems == []
    for namespace in other.namespaces.values():
        assert not Path(f"/run/netns/{namespace}").exists()
        assert not Path(f"/etc/netns/{namespace}").exists()
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or b"kuzot-lab" not in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
    assert not state_dir.exists() and not (REGISTRY / other.suffix).exists()
    assert Path(f"/run/netns/{lab.vol}").exists(), "the other lab is untouched"


# --- without root ------------------------------------------------------------------------------


def test_lab_command_explains_missing_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the lab cannot run here, then `kuzot lab up` says why and exits 2."""
    from probe.cli import main

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["lab", "up"]) == 2


def test_scenario_errors_name_the_row() -> None:
    """If a scenario row has an unknown method, then the error names the row and the known methods."""
    with pytest.raises(ScenarioError, match=r"site #1: unknown block 'dpi'.*dns_nxdomain"):
        scenario_from_dict({"site": [{"domain": "kloop.kg", "block": "dpi"}]})


def test_isp_config_renders_each_method() -> None:
    """If rows block by DNS, IP, SNI and HTTP, then the rendered configs carry one rule for each."""
    plans = [
        daemons.SitePlan(rule, daemons.site_address(i), Path("c"), Path("k"))
        for i, rule in enumerate(MATRIX.sites)
    ]
    dnsmasq = daemons.isp_dnsmasq_conf(plans, Path("p"), Path("l"))
    assert f"address=/www.azattyk.org/{daemons.BLOCKPAGE_IP}" in dnsmasq and "address=/24.kg/\n" in dnsmasq
    nft = daemons.isp_nft_rules(plans, MATRIX)
    assert nft.count("reject with tcp reset") == 1 and nft.count("drop") == 1 and nft.count("dnat") == 2
    assert [c[-5] for c in daemons.sni_iptables_rules(plans)] == ["rus.azattyk.org"]
    assert "meta mark set" in nft, "the slow row goes through the delay line"

"""The probe against the loopback censorship lab: each scenario's exact observations.

These run the real ``kuzot run`` command (a subprocess) against real servers; the
verdict tests reuse the same run.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from probe.lab.loopback import BLOCKPAGE_IP, LoopbackLab, Scenario
from probe.lab.web_servers import BLOCKPAGE_MARKER
from probe.lab.web_servers import Behaviour as WebBehaviour
from probe.measure import MeasurementContext, measure_url
from probe.records import Measurement
from probe.store.record_codec import decode_record
from probe.targets import Target
from tests.conftest import REPO, kuzot, show_json


def m_of(matrix_run: dict, name: str) -> dict:
    return matrix_run["measurements"][name]


def test_honest_site_records_every_step(matrix_run: dict) -> None:
    """If the site is honest, then DNS, TCP, TLS (validated chain) and HTTP 200 are all recorded without failure."""
    m = m_of(matrix_run, "honest")
    assert m["failures"] == {"dns": None, "tcp": None, "tls": None, "http": None}
    (a_query,) = [d for d in m["dns"] if d["query_type"] == "A"]
    assert a_query["rcode"] == "NOERROR" and a_query["answers"][0]["ttl"] == 300
    assert a_query["transport"] == "udp" and a_query["finished"] >= a_query["started"]
    tls = m["tls"][0]
    assert tls["validated"] is True and tls["version"].startswith("TLS")
    assert tls["certificates"][0]["sha256"] and "honest.kg" in tls["certificates"][0]["sans"]
    http = m["http"][-1]
    assert http["status_code"] == 200 and http["title"] and http["body_sha256"]
    assert http["body_length"] > 0 and not http["body_truncated"]
    assert m["probe_asn"] == 64500 and m["probe_cc"] == "KG"


def test_control_observations_are_recorded_alongside(matrix_run: dict) -> None:
    """If a control helper is given, then each measurement carries its observations with control/ ids."""
    control = m_of(matrix_run, "honest")["control"]
    assert control["failure"] is None
    assert control["http"][0]["id"].startswith("control/http/")
    assert control["http"][0]["status_code"] == 200
    assert control["http"][0]["body_sample"] == ""  # the helper never returns bodies


def test_dns_blockpage_answer_and_untrusted_certificate(matrix_run: dict) -> None:
    """If the ISP resolver answers the blockpage address, then that answer and the untrusted chain are recorded."""
    m = m_of(matrix_run, "dns_blockpage")
    answers = {a["value"] for d in m["dns"] for a in d["answers"]}
    assert answers == {BLOCKPAGE_IP}
    tls = m["tls"][0]
    assert tls["failure"] == "ssl_unknown_authority"
    assert tls["validated"] is False and tls["certificates"], "the middlebox chain is kept as evidence"


def test_dns_nxdomain(matrix_run: dict) -> None:
    """If the ISP resolver says NXDOMAIN, then dns_nxdomain_error is recorded and only the control's addresses are tried."""
    m = m_of(matrix_run, "dns_nxdomain")
    assert {d["failure"] for d in m["dns"] if d["query_type"] == "A"} == {"dns_nxdomain_error"}
    control_addresses = {a["value"] for d in m["control"]["dns"] for a in d["answers"]}
    assert m["tcp"] and {t["ip"] for t in m["tcp"]} <= control_addresses  # as OONI: the site is up there


def test_dns_injection_keeps_both_replies(matrix_run: dict) -> None:
    """If a forged reply races the real one, then the forged answer is first and the true one is an extra response."""
    m = m_of(matrix_run, "dns_injection")
    (a_query,) = [d for d in m["dns"] if d["query_type"] == "A"]
    assert [a["value"] for a in a_query["answers"]] == [BLOCKPAGE_IP]
    assert a_query["extra_responses"], "the late, true reply must be kept"
    assert a_query["extra_responses"][0]["answers"][0]["value"] != BLOCKPAGE_IP


def test_reset_and_blackhole(matrix_run: dict) -> None:
    """If the site resets or stays silent for the probe, then connection_reset or generic_timeout_error is recorded."""
    reset = m_of(matrix_run, "tcp_reset")
    assert reset["tls"][0]["failure"] == "connection_reset"
    assert any(t["purpose"] == "comparison" and t["failure"] == "connection_reset" for t in reset["tls"])
    blackhole = m_of(matrix_run, "blackhole")
    assert blackhole["tls"][0]["failure"] == "generic_timeout_error"


def test_sni_triggered_reset_spares_innocuous_sni(matrix_run: dict) -> None:
    """If only the target's SNI is punished, then its handshake is reset and the comparison handshake completes."""
    m = m_of(matrix_run, "sni_reset")
    target = [t for t in m["tls"] if t["purpose"] == "target"]
    comparison = [t for t in m["tls"] if t["purpose"] == "comparison"]
    assert target[0]["failure"] == "connection_reset"
    assert comparison and comparison[0]["certificates"], "the same address answered another name"


def test_http_blockpage_and_redirect(matrix_run: dict) -> None:
    """If a middlebox answers with a blockpage or a redirect, then the page and the Location are recorded."""
    page = m_of(matrix_run, "http_blockpage_200")["http"][0]
    assert page["status_code"] == 200 and page["title"] == "Access denied"
    assert page["body_sample"], "the blockpage body is kept for fingerprinting"
    import base64

    assert BLOCKPAGE_MARKER.encode() in base64.b64decode(page["body_sample"])
    redirect = m_of(matrix_run, "http_blockpage_redirect")["http"][0]
    assert redirect["status_code"] == 302
    assert dict((k.lower(), v) for k, v in redirect["headers"])["location"].startswith("http://homeline.kg/")


def test_down_for_everyone_fails_for_control_too(matrix_run: dict) -> None:
    """If the site resets every client, then the probe and the control both record the failure."""
    m = m_of(matrix_run, "down_for_everyone")
    assert m["tls"][0]["failure"] == "connection_reset"
    assert m["control"]["tls"][0]["failure"] == "connection_reset"


def test_summary_table_names_each_url(matrix_run: dict) -> None:
    """If a run ends, then the printed table has a row per URL with what each step did."""
    assert "dns_nxdomain_error" in matrix_run["stdout"]
    assert "connection_reset" in matrix_run["stdout"]


def test_run_row_holds_no_probe_address(matrix_run: dict) -> None:
    """If a run is stored, then no row of the run or its measurements holds the probe's source address."""
    path = matrix_run["db"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        (run,) = conn.execute("select * from runs").fetchall()
        assert "127.0.0.1" not in repr(run)
        records = [decode_record(r[0]) for r in conn.execute("select record from measurements")]
    assert all('"127.0.0.1"' not in r for r in records)


# --- hostile servers, in-process -------------------------------------------------------------


async def _measure(lab: LoopbackLab, scenario: Scenario, **changes: object) -> Measurement:
    target = await trio.to_thread.run_sync(lab.add, scenario)
    ctx = MeasurementContext(lab.probe_settings(**changes))
    return await measure_url(Target(target.url), ctx)


@pytest.fixture(scope="module")
def lab() -> LoopbackLab:
    with LoopbackLab() as running:
        yield running


async def test_endless_body_is_capped(lab: LoopbackLab) -> None:
    """If a server streams an endless body, then reading stops at the byte cap with no failure."""
    m = await _measure(
        lab, Scenario("endless", "endless.kg", site=WebBehaviour.endless_body()), max_bytes=200_000
    )
    http = m.http[-1]
    assert http.failure is None and http.body_truncated and http.body_length == 200_000
    assert len(http.body_sample) == 64 * 1024


async def test_drip_hits_the_step_timeout(lab: LoopbackLab) -> None:
    """If a server drips a byte a second, then the HTTP step records generic_timeout_error and the partial body."""
    from probe.settings import Timeouts

    m = await _measure(
        lab,
        Scenario("drip", "drip.kg", site=WebBehaviour.drip(0.2)),
        timeouts=Timeouts(dns=1, connect=1, tls=1, http=1.0),
    )
    assert m.http[-1].failure == "generic_timeout_error"


async def test_garbage_is_an_invalid_response(lab: LoopbackLab) -> None:
    """If a server answers random bytes, then HTTP records http_invalid_response and TLS ssl_failed_handshake."""
    plain = await _measure(lab, Scenario("garbage", "garbage.kg", site=WebBehaviour.garbage(), https=False))
    assert plain.http[-1].failure == "http_invalid_response"
    tls = await _measure(lab, Scenario("garbage-tls", "garbage-tls.kg", site=WebBehaviour.garbage()))
    assert tls.tls[0].failure == "ssl_failed_handshake"
    assert tls.http == []


async def test_run_deadline_keeps_finished_measurements(lab: LoopbackLab, tmp_path: Path) -> None:
    """If the run's deadline passes, then finished measurements are stored and the run is marked 'deadline'."""
    from probe.run import RunPlan, execute_run
    from probe.settings import Timeouts
    from probe.store import Store

    fast = await trio.to_thread.run_sync(lab.add, Scenario("fast", "fast.kg"))
    slow = await trio.to_thread.run_sync(lab.add, Scenario("hang", "hang.kg", site=WebBehaviour.blackhole()))
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    settings = lab.probe_settings(timeouts=Timeouts(dns=1, connect=1, tls=30, http=30))
    plan = RunPlan(targets=[Target(fast.url), Target(slow.url)], settings=settings, deadline=2.0)
    result = await execute_run(plan, store)
    assert result.deadline_hit
    stored = list(store.iter_measurements())
    assert [m.url for m in stored] == [fast.url]
    assert store.runs()[0].status == "deadline"


def test_malformed_targets_exit_2_and_write_nothing(tmp_path: Path) -> None:
    """If the targets file is malformed, then kuzot run exits 2 naming the line and creates no database."""
    bad = tmp_path / "bad.csv"
    bad.write_text("url,category_code,category_description,date_added,source,notes\nnot-a-url,NEWS,x,,,\n")
    db = tmp_path / "k.db"
    result = kuzot("run", "--targets", str(bad), "--db", f"sqlite:///{db}", "--no-canaries")
    assert result.returncode == 2
    assert "bad.csv:2:" in result.stderr
    assert not db.exists()


def test_ctrl_c_keeps_finished_measurements(tmp_path: Path) -> None:
    """If the run is interrupted with Ctrl-C, then measurements already finished stay stored and the run is 'interrupted'."""
    with LoopbackLab() as lab:
        fast = [lab.add(Scenario(f"f{i}", f"fast{i}.kg")) for i in range(3)]
        hang = lab.add(Scenario("hang", "hang.kg", site=WebBehaviour.blackhole()))
        db = tmp_path / "k.db"
        args = [sys.executable, "-m", "probe", "run", "--db", f"sqlite:///{db}", "--quiet"]
        for t in [*fast, hang]:
            args += ["--url", t.url]
        args += lab.probe_args(control=False)
        args += ["--timeout", "60"]  # the hanging target holds the run open
        env = {**os.environ, "KUZOT_ACCEPT_RISKS": "1"}
        proc = subprocess.Popen(
            args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(0.2)
                if db.exists():
                    try:
                        with sqlite3.connect(db) as conn:
                            count = conn.execute("select count(*) from measurements").fetchone()[0]
                    except sqlite3.OperationalError:
                        continue
                    if count >= 4:  # three targets and the canary
                        break
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, stderr
        stored = {m["url"] for m in show_json(f"sqlite:///{db}")}
        assert stored == {t.url for t in fast}
        with sqlite3.connect(db) as conn:
            assert conn.execute("select status from runs").fetchone()[0] == "interrupted"


def test_help_lists_subcommands() -> None:
    """If kuzot --help is run, then it lists the subcommands."""
    result = kuzot("--help")
    assert result.returncode == 0
    for name in ("run", "show", "control", "targets"):
        assert name in result.stdout

"""Issue 16's "done when" for the probe: one real `kuzot run` over honest and hostile
servers ends by itself, measures every URL, stays small, prints no traceback, and
uploads everything to a collector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from probe.failures import Failure
from probe.lab.dns_server import Behaviour as DnsBehaviour
from probe.lab.loopback import LoopbackLab, Scenario
from probe.lab.web_servers import Behaviour, compressed_zeros
from tests.collector_support import CollectorProcess, stored_ids
from tests.conftest import REPO, show_json

DEADLINE = 150  # seconds; the run should need a small part of it
MEMORY_LIMIT = 400 * 1024 * 1024


def _hostile_scenarios(lab: LoopbackLab) -> dict[str, Scenario]:
    nowhere = f"http://{lab.web.next_ip()}:{lab.web.network.port}/"
    router = lab.web.site(https=False, pages=lambda host: b"<title>Router admin</title>")
    router_url = f"http://{router.ip}:{router.port}/"
    rows = [
        Scenario("honest_https", "honest.kg"),
        Scenario("honest_http", "plain.kg", https=False),
        Scenario(
            "mailto", "mailto.kg", site=Behaviour.blockpage_redirect("mailto:editor@example.kg"), https=False
        ),
        Scenario(
            "javascript", "js.kg", site=Behaviour.blockpage_redirect("javascript:alert(1)"), https=False
        ),
        Scenario("data", "data.kg", site=Behaviour.blockpage_redirect("data:text/html,hi"), https=False),
        Scenario("no_host", "nohost.kg", site=Behaviour.blockpage_redirect("http://"), https=False),
        Scenario("refused_hop", "refused.kg", site=Behaviour.blockpage_redirect(nowhere), https=False),
        Scenario("to_router", "router.kg", site=Behaviour.blockpage_redirect(router_url), https=False),
        Scenario("bomb_stacked", "bomb2.kg", site=Behaviour.bomb("gzip, gzip", 1 << 30), https=False),
        Scenario("bomb", "bomb.kg", site=Behaviour.bomb("gzip", 1 << 30)),
        Scenario("many_headers", "headers.kg", site=Behaviour.many_headers(10_001)),
        Scenario("endless_headers", "endlesshead.kg", site=Behaviour.endless_headers(), https=False),
        Scenario("endless_body", "endless.kg", site=Behaviour.endless_body()),
        Scenario("drip", "drip.kg", site=Behaviour.drip(0.5), https=False),
        Scenario("dns_flood", "flood.kg", dns=DnsBehaviour.flood()),
    ]
    return {row.name: row for row in rows}


def _high_water_mark(pid: int) -> int:
    """The process's own peak resident memory in bytes (``VmHWM``, kept per address space).

    Not wait4's ``ru_maxrss``: Linux carries that over an exec from the forking process,
    so a child of a pytest process that grew to 500 MB over the suite would "peak" at
    500 MB before running a line of its own."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0  # a zombie has no address space left


def _run_measuring_memory(args: list[str], env: dict[str, str], out: Path) -> tuple[int, int, float]:
    """Run ``args``; its exit status, its peak resident memory in bytes (as the kernel
    counted for this child alone, from its VmHWM polled while it runs) and the seconds it took."""
    started = time.monotonic()
    with open(out / "stdout", "wb") as stdout, open(out / "stderr", "wb") as stderr:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=stdout, stderr=stderr)
        peak = 0
        try:
            while True:
                peak = max(peak, _high_water_mark(proc.pid))
                pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    return proc.returncode, peak, time.monotonic() - started
                assert time.monotonic() - started < DEADLINE + 60, "the run did not end by itself"
                time.sleep(0.02)
        finally:
            if proc.returncode is None:
                proc.kill()
                proc.wait()


def test_run_over_hostile_servers_ends_measures_everything_and_uploads(tmp_path: Path) -> None:
    """If a list mixes honest sites with every hostile server of the lab, then `kuzot run` ends within its deadline, measures and uploads every URL, stays under 400 MB and prints no traceback."""
    compressed_zeros("gzip, gzip", 1 << 30)  # warm the lab's cache: the bombs are ready at once
    compressed_zeros("gzip", 1 << 30)
    collector = CollectorProcess(f"sqlite:///{tmp_path / 'collector.db'}", tmp_path / "serve").start()
    try:
        with LoopbackLab() as lab:
            scenarios = _hostile_scenarios(lab)
            targets = {name: lab.add(row) for name, row in scenarios.items()}
            listing = tmp_path / "list.csv"
            lines = ["url,category_code,category_description,date_added,source,notes"]
            lines += [f"{t.url},NEWS,News Media,2026-01-01,test," for t in targets.values()]
            listing.write_text("\n".join(lines) + "\n")
            db = f"sqlite:///{tmp_path / 'probe.db'}"
            args = [sys.executable, "-m", "probe", "run", "--targets", str(listing), "--db", db, "--json"]
            # A generous --timeout: the lab's sites share one Python thread with the
            # endless and bombing ones, on a loaded machine.
            args += [*lab.probe_args(), "--timeout", "6", "--deadline", str(DEADLINE)]
            args += ["--upload", collector.url]
            # The site that redirects into "the volunteer's LAN" plays a public one.
            args += ["--lab-public-network", f"{targets['to_router'].site.ip}/32"]
            env = {
                **os.environ,
                "KUZOT_ACCEPT_RISKS": "1",
                "KUZOT_DOH_CONTROL": "off",
                "KUZOT_CONFIG_DIR": str(tmp_path / "config"),
            }
            status, peak, elapsed = _run_measuring_memory(args, env, tmp_path)
        stdout = (tmp_path / "stdout").read_text()
        stderr = (tmp_path / "stderr").read_text()
        assert status == 0, stderr
        assert "Traceback" not in stdout + stderr
        assert "Traceback" not in collector.logs()
        summary = json.loads(stdout)
        assert summary["deadline_hit"] is False and elapsed < DEADLINE
        assert summary["measured"] == len(targets)
        assert peak < MEMORY_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"

        stored = show_json(db)
        by_url = {m["url"]: m for m in stored}
        assert set(by_url) >= {t.url for t in targets.values()}
        assert summary["upload"]["remaining"] == 0, summary["upload"]
        assert set(stored_ids(db)) <= set(stored_ids(collector.db_url))
    finally:
        collector.stop()

    def http(name: str) -> list[dict]:
        m = by_url[targets[name].url]
        steps = [(o["id"], o["failure"]) for o in m["dns"] + m["tcp"] + m["tls"]]
        assert m["http"], f"{name}: no HTTP observation; {steps}"
        return m["http"]

    for name in ("honest_https", "honest_http"):
        assert http(name)[-1]["status_code"] == 200 and http(name)[-1]["failure"] is None
    for name in ("mailto", "javascript", "data", "no_host"):
        assert [h["failure"] for h in http(name)] == [Failure.HTTP_INVALID_REDIRECT.value], name
    assert http("refused_hop")[-1]["failure"] == Failure.CONNECTION_REFUSED.value
    assert http("to_router")[-1]["failure"] == Failure.HTTP_REDIRECT_TO_PRIVATE.value
    assert http("to_router")[-1]["body_sample"] == ""
    assert http("bomb_stacked")[0]["undecoded_encoding"] == "gzip, gzip"
    assert http("bomb")[0]["body_length"] == 1 << 20 and http("bomb")[0]["body_truncated"]
    assert http("many_headers")[0]["headers_dropped"] > 9_000
    assert http("endless_headers")[0]["failure"] == Failure.HTTP_INVALID_RESPONSE.value
    assert http("endless_body")[0]["body_truncated"] and http("endless_body")[0]["failure"] is None
    assert http("drip")[0]["failure"] == Failure.GENERIC_TIMEOUT.value
    flood = by_url[targets["dns_flood"].url]["dns"]
    assert any(d["extra_responses_dropped"] > 0 for d in flood)
    assert http("dns_flood")[-1]["status_code"] == 200

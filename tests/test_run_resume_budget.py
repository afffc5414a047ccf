"""Volunteer-facing run behaviour: resume after a kill, and the byte caps."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from probe.bandwidth import ByteBudget
from probe.lab.loopback import LoopbackLab, Scenario
from probe.lab.web_servers import Behaviour as WebBehaviour
from tests.conftest import REPO, kuzot, show_json


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("select count(*) from measurements where role='target'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_resume_after_kill_measures_only_what_is_left(tmp_path: Path) -> None:
    """If a run is killed (SIGKILL) mid-way, then --resume measures only the targets it had not finished."""
    with LoopbackLab() as lab:
        fast = [lab.add(Scenario(f"f{i}", f"fast{i}.kg")) for i in range(3)]
        hang = lab.add(Scenario("hang", "hang.kg", site=WebBehaviour.blackhole()))
        targets = tmp_path / "list.csv"
        rows = ["url,category_code,category_description,date_added,source,notes"]
        rows += [f"{t.url},NEWS,News Media,2026-01-01,test," for t in [*fast, hang]]
        targets.write_text("\n".join(rows) + "\n")
        db = tmp_path / "k.db"
        args = [
            sys.executable,
            "-m",
            "probe",
            "run",
            "--db",
            f"sqlite:///{db}",
            "--quiet",
            "--targets",
            str(targets),
        ]
        args += [*lab.probe_args(control=False), "--no-canaries", "--timeout", "60"]
        env = {**os.environ, "KUZOT_ACCEPT_RISKS": "1"}
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            deadline = time.monotonic() + 60
            while _count(db) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert _count(db) == 3
        hang.site.policy.behaviour = WebBehaviour.honest()  # the link is back
        result = kuzot(
            "run",
            "--db",
            f"sqlite:///{db}",
            "--resume",
            *lab.probe_args(control=False),
            "--no-canaries",
            "--quiet",
        )
        assert result.returncode == 0, result.stderr
        assert "1 targets left" in result.stderr
        stored = show_json(f"sqlite:///{db}")
        assert sorted(m["url"] for m in stored) == sorted(t.url for t in [*fast, hang])
        assert len({m["run_id"] for m in stored}) == 1, "the resumed run keeps its id"
        again = kuzot("run", "--db", f"sqlite:///{db}", "--resume", "--no-canaries")
        assert "Nothing to resume" in again.stderr


#: A run driven through the library, so that the test sees what it reports done (each
#: id printed by ``progress``) and sets the writer's batching: every two measurements
#: are committed together, and a lone one waits (up to ten minutes) for a partner.
_REPORTING_RUN = """
import sys
import trio
from probe.cli import build_parser
from probe.cli.commands.run import build_settings
from probe.run import RunPlan, execute_run
from probe.signing import SigningKey
from probe.store import Store
from probe.targets import Target

db, urls, *options = sys.argv[1:]
settings = build_settings(build_parser().parse_args(["run", *options]))
targets = [Target(url, "NEWS") for url in urls.split(",")]
plan = RunPlan(targets=targets, settings=settings, concurrency=len(targets), commit_delay=600, commit_items=2)
store = Store.open(db)
report = lambda m: print(m.id, m.url, flush=True)
trio.run(lambda: execute_run(plan, store, progress=report, sign_hash=SigningKey.generate().sign_hash))
"""


def test_kill_9_loses_nothing_the_run_reported_done(tmp_path: Path) -> None:
    """If a run is killed (SIGKILL) while finished measurements wait for their batch, then every measurement it had reported done is stored and --resume measures the rest."""
    with LoopbackLab() as lab:
        fast = [lab.add(Scenario(f"f{i}", f"quick{i}.kg")) for i in range(5)]
        hang = lab.add(Scenario("hang", "stuck.kg", site=WebBehaviour.blackhole()))
        db = tmp_path / "k.db"
        urls = ",".join(t.url for t in [*fast, hang])
        args = [sys.executable, "-c", _REPORTING_RUN, f"sqlite:///{db}", urls, *lab.probe_args(control=False)]
        args += ["--timeout", "60"]
        env = {**os.environ, "KUZOT_ACCEPT_RISKS": "1", "KUZOT_DOH_CONTROL": "off"}
        proc = subprocess.Popen(
            args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        reported: dict[str, str] = {}
        watchdog = threading.Timer(180, proc.kill)  # a stalled child ends the wait for its lines
        watchdog.start()
        try:
            assert proc.stdout is not None
            while len(reported) < 4:
                line = proc.stdout.readline()
                assert line, f"the run ended early: {proc.stderr.read() if proc.stderr else ''}"
                measurement_id, url = line.split()
                reported[measurement_id] = url
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with sqlite3.connect(db) as conn:
            stored = dict(conn.execute("select id, url from measurements"))
            signed = conn.execute("select count(*) from measurements where signature is not null").fetchone()[0]
        assert reported.items() <= stored.items(), "a measurement reported done was lost"
        assert signed == len(stored)
        # The fifth fast site waited alone for its batch: never reported, never stored.
        assert len(stored) == 4
        hang.site.policy.behaviour = WebBehaviour.honest()
        resume = ["--resume", *lab.probe_args(control=False), "--no-canaries", "--quiet"]
        result = kuzot("run", "--db", f"sqlite:///{db}", *resume)
        assert result.returncode == 0, result.stderr
        assert "2 targets left" in result.stderr
        urls_stored = sorted(m["url"] for m in show_json(f"sqlite:///{db}"))
        assert urls_stored == sorted(t.url for t in [*fast, hang])


def test_byte_cap_stops_starting_measurements(tmp_path: Path) -> None:
    """If the per-run byte cap is reached, then later targets are skipped and the summary says so."""
    with LoopbackLab() as lab:
        sites = [lab.add(Scenario(f"s{i}", f"site{i}.kg")) for i in range(4)]
        db = f"sqlite:///{tmp_path / 'k.db'}"
        urls = [arg for t in sites for arg in ("--url", t.url)]
        args = [
            "run",
            "--db",
            db,
            *urls,
            *lab.probe_args(control=False),
            "--no-canaries",
            "--concurrency",
            "1",
        ]
        result = kuzot(*args, "--max-bytes", "1")
        assert result.returncode == 0, result.stderr
        assert "skipped: byte cap reached" in result.stderr
        assert len(show_json(db)) == 1
        # The daily cap counts what earlier runs used, so the next run measures nothing.
        again = kuzot(*args, "--max-bytes-per-day", "1")
        assert again.returncode == 1 and "byte cap" in again.stderr


def test_budget_arithmetic() -> None:
    """If both caps are set, then the remaining allowance is the smaller of the two."""
    budget = ByteBudget(per_run=1000, per_day=1500, used_today=800)
    assert budget.remaining() == 700
    budget.spend(700)
    assert budget.exhausted()
    assert ByteBudget(per_run=None, per_day=None).remaining() is None

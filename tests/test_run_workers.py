"""``kuzot run --workers N``: child processes measure, the parent keeps one run, one
writer, one byte budget and one deadline (probe/workers.py), against the loopback lab."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from probe.lab.loopback import LoopbackLab, Scenario
from probe.lab.web_servers import Behaviour as WebBehaviour
from probe.records import Measurement
from probe.run import RunPlan, execute_run
from probe.settings import Timeouts
from probe.store import Store
from probe.targets import Target
from tests.conftest import REPO, kuzot, show_json


@pytest.fixture(scope="module")
def lab() -> Iterator[LoopbackLab]:
    with LoopbackLab() as running:
        yield running


@pytest.fixture(scope="module")
def sites(lab: LoopbackLab) -> list[str]:
    return [lab.add(Scenario(f"w{i}", f"worker{i}.kg")).url for i in range(6)]


def _urls(urls: list[str]) -> list[str]:
    return [arg for url in urls for arg in ("--url", url)]


def test_workers_measure_every_target_in_one_run(lab: LoopbackLab, sites: list[str], tmp_path: Path) -> None:
    """If a run has two workers, then every target is measured once, in one run, as one process would."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    args = ["run", "--db", db, *_urls(sites), *lab.probe_args(control=False), "--no-canaries"]
    result = kuzot(*args, "--workers", "2", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "finished" and summary["measured"] == len(sites)
    stored = show_json(db)
    assert sorted(m["url"] for m in stored) == sorted(sites)
    assert len({m["run_id"] for m in stored}) == 1
    assert all(m["failures"] == {"dns": None, "tcp": None, "tls": None, "http": None} for m in stored)
    assert all(m["annotations"].get("failure") is None for m in stored)


def test_byte_budget_is_shared_across_workers(lab: LoopbackLab, sites: list[str], tmp_path: Path) -> None:
    """If the per-run byte cap is reached, then no worker starts another target: at most
    `concurrency` are measured in all, and the rest are counted as skipped."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    args = ["run", "--db", db, *_urls(sites), *lab.probe_args(control=False), "--no-canaries"]
    result = kuzot(*args, "--workers", "2", "--concurrency", "2", "--max-bytes", "1", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert 1 <= summary["measured"] <= 2
    assert summary["measured"] + summary["skipped_for_budget"] == len(sites)
    assert len(show_json(db)) == summary["measured"]


#: A worker that takes its first frames and dies, as a crashing child would.
#: Says it is ready (the frame probe.workers.READY), takes targets, and dies.
_DYING_WORKER = [
    sys.executable,
    "-c",
    "import pickle, struct, sys, time\n"
    "ready = pickle.dumps((-1, None))\n"
    "sys.stdin.buffer.read(1)\n"
    "sys.stdout.buffer.write(struct.pack('!I', len(ready)) + ready); sys.stdout.flush()\n"
    "time.sleep(0.5); sys.exit(3)",
]


def test_failing_workers_become_recorded_failures(lab: LoopbackLab, sites: list[str], tmp_path: Path) -> None:
    """If the worker processes die, then the targets they held are recorded as unknown_failure
    (exception probe.WorkerLost), the rest are measured by the parent, and the run finishes."""
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    plan = RunPlan(
        targets=[Target(url) for url in sites],
        settings=lab.probe_settings(),
        concurrency=len(sites),
        workers=2,
        worker_command=_DYING_WORKER,
    )
    result = trio.run(execute_run, plan, store)
    stored = list(store.iter_measurements())
    assert sorted(m.url for m in stored) == sorted(sites)
    lost = [m for m in stored if m.annotations.get("exception") == "probe.WorkerLost"]
    assert lost, "the dying workers held targets"
    assert all(m.annotations["failure"] == "unknown_failure" for m in lost)
    assert all(m.annotations.get("failure") is None for m in stored if m not in lost)
    assert result.run.status == "finished" and store.runs()[0].status == "finished"
    store.close()


def test_deadline_holds_across_workers(lab: LoopbackLab, tmp_path: Path) -> None:
    """If the run's deadline passes, then what the workers finished is stored and the run is marked 'deadline'."""
    fast = lab.add(Scenario("wfast", "wfast.kg"))
    slow = lab.add(Scenario("whang", "whang.kg", site=WebBehaviour.blackhole()))
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    settings = lab.probe_settings(timeouts=Timeouts(dns=1, connect=1, tls=30, http=30))
    plan = RunPlan(targets=[Target(fast.url), Target(slow.url)], settings=settings, deadline=4.0, workers=2)
    result = trio.run(execute_run, plan, store)
    assert result.deadline_hit
    assert [m.url for m in store.iter_measurements()] == [fast.url]
    assert store.runs()[0].status == "deadline"
    store.close()


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("select count(*) from measurements where role='target'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_9_with_workers_then_resume(lab: LoopbackLab, tmp_path: Path) -> None:
    """If a run with workers is killed (SIGKILL), then what it stored stays, its workers
    exit, and --resume measures only the rest."""
    fast = [lab.add(Scenario(f"k{i}", f"kfast{i}.kg")).url for i in range(3)]
    hang = lab.add(Scenario("khang", "khang.kg", site=WebBehaviour.blackhole()))
    db = tmp_path / "k.db"
    args = [sys.executable, "-m", "probe", "run", "--db", f"sqlite:///{db}", "--quiet", "--workers", "2"]
    args += [*_urls([*fast, hang.url]), *lab.probe_args(control=False), "--no-canaries", "--timeout", "60"]
    env = {**os.environ, "KUZOT_ACCEPT_RISKS": "1", "KUZOT_DOH_CONTROL": "off"}
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while _count(db) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _count(db) == 3
    assert len(children) == 2
    _wait_gone(children)
    hang.site.policy.behaviour = WebBehaviour.honest()
    resume = ["--resume", *lab.probe_args(control=False), "--no-canaries", "--quiet", "--workers", "2"]
    result = kuzot("run", "--db", f"sqlite:///{db}", *resume)
    assert result.returncode == 0, result.stderr
    assert "1 targets left" in result.stderr
    stored = show_json(f"sqlite:///{db}")
    assert sorted(m["url"] for m in stored) == sorted([*fast, hang.url])
    assert len({m["run_id"] for m in stored}) == 1


def _descendants(pid: int) -> list[int]:
    """The children of ``pid`` and theirs (a worker forked by the first worker)."""
    found = _children(pid)
    for child in list(found):
        found += _descendants(child)
    return found


def _children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc/*/stat, Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _wait_gone(pids: list[int], timeout: float = 15) -> None:
    """Each process has exited (its parent's death closed its stdin)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"worker processes outlived their run: {alive}")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_workers_that_cannot_start_leave_the_parent_measuring(
    lab: LoopbackLab, sites: list[str], tmp_path: Path
) -> None:
    """If no worker process can be started, then the parent measures every target itself."""
    stored = _measured_with_workers(lab, sites[:2], tmp_path, [str(tmp_path / "no-such-worker")])
    assert sorted(m.url for m in stored) == sorted(sites[:2])
    assert all(m.annotations.get("failure") is None and m.tls for m in stored)


def _measured_with_workers(
    lab: LoopbackLab, urls: list[str], tmp_path: Path, command: list[str], **plan: object
) -> list[Measurement]:
    """The stored measurements of a two-worker run whose workers run ``command``."""
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    run_plan = RunPlan(
        targets=[Target(url) for url in urls],
        settings=lab.probe_settings(),
        workers=2,
        worker_command=command,
        **plan,  # type: ignore[arg-type]
    )
    trio.run(execute_run, run_plan, store)
    stored = list(store.iter_measurements())
    store.close()
    return stored


def test_a_parent_left_alone_builds_its_control_when_it_first_measures(
    lab: LoopbackLab, sites: list[str], tmp_path: Path
) -> None:
    """If no worker can start in a run with a control vantage, then the parent builds its
    own control (none is given to it up front) and its measurements still carry the control's view."""
    from probe.control.choice import ControlChoice

    factory = ControlChoice(control=lab.control_url).build
    stored = _measured_with_workers(
        lab, sites[:2], tmp_path, [str(tmp_path / "no-such-worker")], control_factory=factory
    )
    assert sorted(m.url for m in stored) == sorted(sites[:2])
    assert all(m.control is not None and m.control.failure is None for m in stored)


def test_a_worker_that_never_gets_ready_holds_no_target(
    lab: LoopbackLab, sites: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a worker process starts but never says it is ready, then no target is sent to
    it: once the ready limit passes it is killed and the parent measures every target."""
    import probe.workers

    monkeypatch.setattr(probe.workers, "READY_LIMIT", 1.0)
    silent = [sys.executable, "-c", "import time; time.sleep(120)"]
    stored = _measured_with_workers(lab, sites[:2], tmp_path, silent)
    assert sorted(m.url for m in stored) == sorted(sites[:2])
    assert all(m.annotations.get("failure") is None and m.tls for m in stored)


def test_early_workers_are_all_forked_or_leave_the_parent_a_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """kuzot run starts every worker early where the first can fork the others (one
    import for all); elsewhere at most one fewer than the CPUs it may use (at least
    one); none without --workers."""
    import probe.worker_start
    from probe.worker_start import early_count

    assert early_count(1) == 0
    assert early_count(4) == 4  # Linux, the real worker command: forked siblings
    monkeypatch.setattr(probe.worker_start, "can_fork_siblings", lambda _command: False)
    cpus = len(os.sched_getaffinity(0))
    assert early_count(2) == max(1, min(2, cpus - 1))
    assert 1 <= early_count(64) <= max(1, cpus - 1)


def test_workers_below_one_is_refused(tmp_path: Path) -> None:
    """If --workers is below 1, then the run is refused with a clear error and nothing is measured."""
    db = tmp_path / "k.db"
    result = kuzot("run", "--db", f"sqlite:///{db}", "--url", "https://example.kg/", "--workers", "0")
    assert result.returncode != 0
    assert "--workers must be at least 1" in result.stderr
    assert not db.exists()


def test_a_child_imports_no_database_code() -> None:
    """A child unpickles the spec the session sends (its control factory included) and
    loads the measuring code, but not the store: SQLAlchemy's import is about 0.3 s of
    CPU per child, spent on every run with --workers."""
    import pickle

    from probe.control.choice import ControlChoice
    from probe.settings import ProbeSettings
    from probe.workers import WorkerSpec

    spec = WorkerSpec(ProbeSettings(), "run-1", ControlChoice(doh_control="off").build)
    script = (
        "import pickle, sys\n"
        "import probe.workers, probe.measure\n"
        "spec = pickle.loads(sys.stdin.buffer.read())\n"
        "assert spec.control_factory() is None\n"
        "print(sorted(m for m in sys.modules if m.startswith(('sqlalchemy', 'probe.store', 'probe.volunteer.session'))))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], input=pickle.dumps(spec), capture_output=True, cwd=REPO, check=True
    )
    assert shown.stdout.decode().strip() == "[]", shown.stdout


def test_a_run_takes_workers_started_early(lab: LoopbackLab, sites: list[str], tmp_path: Path) -> None:
    """If children were started before the run (as `kuzot run` starts them), then the
    run measures with them instead of starting others, and reaps them at its end."""
    from probe.worker_start import EarlyWorkers

    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    with EarlyWorkers(2) as early:
        started = list(early._waiting)
        plan = RunPlan(
            targets=[Target(url) for url in sites], settings=lab.probe_settings(), workers=2, early_workers=early
        )
        result = trio.run(execute_run, plan, store)
        assert early.take() is None
    assert result.run.status == "finished"
    assert sorted(m.url for m in store.iter_measurements()) == sorted(sites)
    assert len(started) == 2 and all(p.returncode == 0 for p in started)
    store.close()


def test_the_first_worker_forks_its_siblings(lab: LoopbackLab, sites: list[str], tmp_path: Path) -> None:
    """If three workers start early, then one interpreter is started and it forks the
    other two once its imports are done: three distinct processes measure the run, each
    says who it is, and none outlives the run."""
    from probe.worker_start import EarlyWorkers, Sibling

    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    with EarlyWorkers(3) as early:
        first, *siblings = list(early._waiting)
        assert isinstance(first, subprocess.Popen) and all(isinstance(s, Sibling) for s in siblings)
        assert len(siblings) == 2
        plan = RunPlan(
            targets=[Target(url) for url in sites], settings=lab.probe_settings(), workers=3, early_workers=early
        )
        result = trio.run(execute_run, plan, store)
    assert result.run.status == "finished"
    assert sorted(m.url for m in store.iter_measurements()) == sorted(sites)
    pids = [first.pid, *(s.pid for s in siblings)]
    assert None not in pids and len(set(pids)) == 3
    _wait_gone([pid for pid in pids if pid is not None])
    store.close()


def test_workers_started_early_end_when_nothing_takes_them() -> None:
    """If the run never starts (bad input, no consent), then closing the early children
    ends them: no process outlives the command."""
    from probe.worker_start import EarlyWorkers

    with EarlyWorkers(2) as early:
        started = list(early._waiting)
    assert len(started) == 2 and all(p.returncode is not None for p in started)


def test_a_refused_run_with_workers_leaves_no_child(tmp_path: Path) -> None:
    """If `kuzot run --workers 2` refuses its options, then it exits with status 2 and
    the children it started first have ended with it (their stdout pipe, inherited by
    nobody else, reaches end of file)."""
    args = [sys.executable, "-m", "probe", "run", "--db", f"sqlite:///{tmp_path / 'k.db'}", "--workers", "2"]
    args += ["--url", "https://refused.kg/", "--doh-control", "ftp://nowhere", "--no-canaries", "--quiet"]
    env = {**os.environ, "KUZOT_ACCEPT_RISKS": "1"}
    # The probe's stderr goes to a pipe the test reads to its end: children inherit it,
    # so the read returns only once every child has exited too.
    done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=REPO, timeout=60)
    assert done.returncode == 2, done.stderr
    assert b"--doh-control" in done.stderr

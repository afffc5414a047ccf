"""What ``kuzot run`` does, called from a script: ``probe.volunteer.session.run_session``."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.lab.dns_server import Behaviour as DnsBehaviour
from probe.lab.loopback import LoopbackLab, Scenario
from probe.records import Measurement
from probe.store import Store
from probe.volunteer.session import SessionHooks, SessionOptions, SessionPlan, run_session


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "config"
    monkeypatch.setenv("KUZOT_CONFIG_DIR", str(directory))
    return directory


def test_a_script_runs_what_the_command_runs(tmp_path: Path, config_dir: Path) -> None:
    """If a script calls run_session with kuzot run's options, then the targets are measured, signed and stored, and the hooks hear the plan and each measurement."""
    heard: list[str] = []
    plans: list[SessionPlan] = []
    hooks = SessionHooks(planned=plans.append, measured=lambda m: heard.append(m.url))
    db = f"sqlite:///{tmp_path / 'k.db'}"
    with LoopbackLab() as lab:
        blocked = lab.add(Scenario("nx", "24.kg", dns=DnsBehaviour.nxdomain()))
        ok = lab.add(Scenario("ok", "kaktus.media"))
        options = SessionOptions(
            url=[blocked.url, ok.url, "mailto:someone@example.org"],
            db=db,
            resolver=[lab.resolver_arg()],
            no_system_resolver=True,
            ca_bundle=lab.ca_bundle,
            canary=[lab.canary_url],
            control=lab.control_url,
            timeout=lab.timeouts.connect,
            accept_risks=True,
        )
        done = run_session(options, hooks)
    assert done.result is not None and done.result.run.status == "finished"
    assert [t.url for t in done.plan.targets] == [blocked.url, ok.url]
    assert [r.url for r in done.plan.refused] == ["mailto:someone@example.org"]
    assert plans == [done.plan] and sorted(heard) == sorted([blocked.url, ok.url, lab.canary_url])
    assert (config_dir / "consent.json").is_file(), "accept_risks is recorded like --accept-risks"
    store = Store.open(db, must_exist=True)
    try:
        stored: list[Measurement] = list(store.iter_measurements(run_id=done.result.run.id))
    finally:
        store.close()
    assert {m.url for m in stored} == {blocked.url, ok.url, lab.canary_url}
    assert done.upload is None and done.upload_error is None


def test_nothing_to_resume_measures_nothing(tmp_path: Path, config_dir: Path) -> None:
    """If a session resumes a database whose last run finished (or that has none), then it measures nothing and says so with no result."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    done = run_session(SessionOptions(db=db, resume=True, accept_risks=True, no_canaries=True))
    assert done.result is None and done.plan.targets == []

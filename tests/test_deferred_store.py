"""A new run opens its database beside its first measurements (probe/store/deferred.py):
the run row still comes before any measurement, and a database that cannot be opened
still ends the run with its error, committing nothing."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from probe.lab.loopback import LoopbackLab, Scenario
from probe.run import RunPlan, execute_run
from probe.store import Store, StoreError
from probe.store.deferred import DeferredStore, looks_usable
from probe.targets import Target


@pytest.fixture(scope="module")
def lab() -> Iterator[LoopbackLab]:
    with LoopbackLab() as running:
        yield running


def test_a_deferred_run_stores_its_row_and_every_measurement(lab: LoopbackLab, tmp_path: Path) -> None:
    """If a run is given its database unopened, then it measures, opens it, and stores the
    run row (finished) and every measurement, as a run given an open database does."""
    urls = [lab.add(Scenario(f"d{i}", f"deferred{i}.kg")).url for i in range(3)]
    url = f"sqlite:///{tmp_path / 'k.db'}"
    deferred = DeferredStore(url)
    plan = RunPlan(targets=[Target(u) for u in urls], settings=lab.probe_settings())
    result = trio.run(execute_run, plan, deferred)
    deferred.close()
    store = Store.open(url)
    (run,) = store.runs()
    assert run.id == result.run.id and run.status == "finished" and run.finished_at is not None
    assert sorted(m.url for m in store.iter_measurements(run_id=run.id)) == sorted(urls)
    store.close()


def test_a_database_that_cannot_open_ends_the_run_with_its_error(lab: LoopbackLab, tmp_path: Path) -> None:
    """If the deferred database cannot be opened, then the run ends with that StoreError
    and nothing is written anywhere."""
    target = lab.add(Scenario("dbad", "deferred-bad.kg")).url
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    plan = RunPlan(targets=[Target(target)], settings=lab.probe_settings())
    with pytest.raises(StoreError, match="cannot open database"):
        trio.run(execute_run, plan, DeferredStore(f"sqlite:///{blocker / 'k.db'}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_resumed_run_is_never_deferred(lab: LoopbackLab, tmp_path: Path) -> None:
    """If a resumed run were handed an unopened database, then it is refused: what it
    resumes must be read before it measures."""
    plan = RunPlan(targets=[], settings=lab.probe_settings(), resume_run_id="r")
    with pytest.raises(ValueError, match="resumed run"):
        trio.run(execute_run, plan, DeferredStore(f"sqlite:///{tmp_path / 'k.db'}"))


def test_only_a_database_that_looks_usable_is_deferred(tmp_path: Path) -> None:
    """A SQLite file that can be created, or that sqlite3 reads as a database, may be
    opened late; another engine, a missing folder or a file that is not a database is
    opened first, so that its error comes before any traffic."""
    sqlite3.connect(tmp_path / "ok.db").execute("create table t (x)").connection.commit()
    (tmp_path / "junk.db").write_bytes(b"this is not a database, just text " * 200)
    assert looks_usable(f"sqlite:///{tmp_path / 'new.db'}")
    assert looks_usable(f"sqlite:///{tmp_path / 'ok.db'}")
    assert not looks_usable(f"sqlite:///{tmp_path / 'junk.db'}")
    assert not looks_usable(f"sqlite:///{tmp_path / 'missing' / 'new.db'}")
    assert not looks_usable("postgresql://kuzot@localhost/kuzot")
    assert not looks_usable("sqlite:///:memory:")
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        assert not looks_usable(f"sqlite:///{tmp_path / 'ro' / 'new.db'}")

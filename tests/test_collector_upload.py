"""``kuzot upload`` and ``kuzot run --upload`` against a real collector, on SQLite and PostgreSQL.

The promise under test: whatever breaks (the uploader is killed, the collector dies
mid-upload, several uploads race), the collector ends up holding exactly the
measurements the probe has, each once, and the probe's queue empties only for what
the collector acknowledged.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text, update

from probe.lab.loopback import LoopbackLab, Scenario
from probe.lab.web_servers import Behaviour as WebBehaviour
from probe.signing import SigningKey, load_or_create_key
from probe.store.models import MeasurementRow
from probe.store.record_codec import decode_record, encode_record
from probe.upload import TOKEN_FILE
from tests.collector_support import CollectorProcess, fill_probe_db, free_port, queued_ids, stored_ids
from tests.conftest import REPO, kuzot
from tests.test_store import make_measurement


def _probe(
    tmp_path: Path, name: str, count: int, *, signed: bool = True
) -> tuple[str, list[str], dict[str, str]]:
    """A probe's database with ``count`` queued measurements, and its own config directory."""
    db = f"sqlite:///{tmp_path / f'{name}.db'}"
    # The installation's own key, where `kuzot run` keeps it: the uploader proves it.
    key = load_or_create_key(tmp_path / f"{name}-config") if signed else None
    ids = fill_probe_db(db, (make_measurement() for _ in range(count)), key)
    env = {"KUZOT_CONFIG_DIR": str(tmp_path / f"{name}-config")}
    return db, ids, env


def _upload(server: CollectorProcess, db: str, env: dict[str, str], *extra: str) -> dict:
    result = kuzot("upload", "--to", server.url, "--db", db, "--json", *extra, env=env)
    assert result.stdout, result.stderr
    return {**json.loads(result.stdout), "returncode": result.returncode, "stderr": result.stderr}


def _popen_upload(server_url: str, db: str, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "probe", "upload", "--to", server_url, "--db", db, "--json", *extra],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_upload_sends_the_queue_and_marks_only_acknowledged(
    collector: CollectorProcess, tmp_path: Path
) -> None:
    """If `kuzot upload` runs, then every queued measurement reaches the collector once and the queue empties; the token file is 0600."""
    db, ids, env = _probe(tmp_path, "p", 120)
    fill_probe_db(db, [make_measurement()], None)  # an unsigned one too
    ids = sorted(set(stored_ids(db)))
    first = _upload(collector, db, env, "--batch-size", "25")
    assert first["returncode"] == 0, first["stderr"]
    assert first["acknowledged"] == first["stored"] == 121 and first["remaining"] == 0
    assert first["batches"] == 5
    assert set(ids) <= set(stored_ids(collector.db_url))
    assert queued_ids(db) == set()
    token_file = Path(env["KUZOT_CONFIG_DIR"]) / TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    status = kuzot("status", "--db", db, "--json", env=env)
    assert json.loads(status.stdout)["upload_queue"] == 0

    assert _upload(collector, db, env)["acknowledged"] == 0  # nothing left to send

    # Acknowledgements lost (the queue says unsent): sending again duplicates nothing.
    engine = create_engine(db)
    with engine.begin() as conn:
        conn.execute(update(MeasurementRow).values(uploaded_at=None))
    engine.dispose()
    again = _upload(collector, db, env)
    assert again["returncode"] == 0 and again["duplicate"] == 121 and again["stored"] == 0
    server_ids = stored_ids(collector.db_url)
    assert all(server_ids.count(i) == 1 for i in ids)


def test_killed_upload_resumes_without_loss_or_duplicates(
    start_collector: Callable[..., CollectorProcess], tmp_path: Path
) -> None:
    """If the uploader is SIGKILLed mid-way, then the next upload completes and the collector holds exactly the probe's set."""
    server = start_collector()
    db, ids, env = _probe(tmp_path, "p", 1500)
    proc = _popen_upload(server.url, db, env, "--batch-size", "10")
    try:
        _wait_for(lambda: len(stored_ids(server.db_url)) >= 100)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = stored_ids(server.db_url)
    assert 100 <= len(partial) < 1500, "the kill must land mid-upload"
    assert len(queued_ids(db)) >= 1500 - len(partial)  # nothing is marked that the collector lacks

    resumed = _upload(server, db, env, "--batch-size", "100")
    assert resumed["returncode"] == 0, resumed["stderr"]
    assert resumed["remaining"] == 0
    assert sorted(stored_ids(server.db_url)) == sorted(ids)
    assert queued_ids(db) == set()


def test_collector_dying_mid_upload_loses_and_duplicates_nothing(
    start_collector: Callable[..., CollectorProcess], tmp_path: Path
) -> None:
    """If the collector is killed mid-upload, then the uploader gives up after its retries keeping the rest queued, and a later upload completes the exact set."""
    port = free_port()
    server = start_collector(port=port)
    db, ids, env = _probe(tmp_path, "p", 1500)
    proc = _popen_upload(server.url, db, env, "--batch-size", "10", "--retries", "2", "--backoff", "0.05")
    try:
        _wait_for(lambda: len(stored_ids(server.db_url)) >= 100)
        server.kill()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    summary = json.loads(out)
    assert summary["error"] and "gave up" in summary["error"]
    assert summary["retries"] >= 2 and summary["remaining"] > 0
    kept = stored_ids(server.db_url)
    assert len(kept) < 1500
    assert set(ids) - set(kept) <= queued_ids(db)  # whatever is missing there is still queued here

    restarted = start_collector(db_url=server.db_url, port=port)
    finished = _upload(restarted, db, env)
    assert finished["returncode"] == 0, finished["stderr"]
    assert sorted(stored_ids(restarted.db_url)) == sorted(ids)
    assert queued_ids(db) == set()


def test_parallel_probes_and_racing_uploads(collector: CollectorProcess, tmp_path: Path) -> None:
    """If four probes upload at once, and two uploads of one probe race, then every measurement is stored exactly once."""
    probes = [_probe(tmp_path, f"p{i}", 150) for i in range(4)]
    procs = [_popen_upload(collector.url, db, env, "--batch-size", "20") for db, _, env in probes]
    racer = _popen_upload(collector.url, probes[0][0], probes[0][2], "--batch-size", "20")
    outputs = [p.communicate(timeout=300) for p in [*procs, racer]]
    assert [p.returncode for p in [*procs, racer]] == [0] * 5, [err for _, err in outputs]
    sent = {i for _, ids, _ in probes for i in ids}
    server_ids = [i for i in stored_ids(collector.db_url) if i in sent]
    assert sorted(server_ids) == sorted(sent)
    assert all(queued_ids(db) == set() for db, _, _ in probes)
    probe_ids = {
        json.loads((Path(env["KUZOT_CONFIG_DIR"]) / TOKEN_FILE).read_text())[collector.url]["probe_id"]
        for _, _, env in probes
    }
    assert len(probe_ids) == 4  # each probe registered itself


def test_refused_items_stay_queued_while_the_rest_go(collector: CollectorProcess, tmp_path: Path) -> None:
    """If one stored record was altered after signing and one is too large for the collector, then those two stay queued, the rest are uploaded, and the exit status says so."""
    db, ids, env = _probe(tmp_path, "p", 30)
    big = make_measurement(annotations={"note": "z" * 400_000})
    fill_probe_db(db, [big], SigningKey.generate())
    engine = create_engine(db)
    with engine.begin() as conn:  # tamper with one record: its signature no longer covers it
        row = conn.execute(text("SELECT id, record FROM measurements WHERE id = :id"), {"id": ids[7]}).one()
        conn.execute(
            text("UPDATE measurements SET record = :r WHERE id = :id"),
            {"r": encode_record(decode_record(row.record).replace("24.kg", "25.kg")), "id": ids[7]},
        )
    engine.dispose()
    result = _upload(collector, db, env, "--batch-size", "10")
    assert result["returncode"] == 1
    assert {(r["id"], r["status"]) for r in result["rejected"]} == {(ids[7], 422), (big.id, 413)}
    assert result["acknowledged"] == 29 and result["remaining"] == 2
    assert queued_ids(db) == {ids[7], big.id}
    server_ids = set(stored_ids(collector.db_url))
    assert set(ids) - {ids[7]} <= server_ids and ids[7] not in server_ids and big.id not in server_ids


def test_unknown_token_registers_again(collector: CollectorProcess, tmp_path: Path) -> None:
    """If the collector no longer knows the probe's token, then upload registers again and goes on."""
    db, _ids, env = _probe(tmp_path, "p", 5)
    directory = Path(env["KUZOT_CONFIG_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / TOKEN_FILE).write_text(
        json.dumps({collector.url: {"probe_id": "gone", "token": "forgotten"}})
    )
    (directory / TOKEN_FILE).chmod(0o600)
    result = _upload(collector, db, env)
    assert result["returncode"] == 0 and result["stored"] == 5
    assert json.loads((directory / TOKEN_FILE).read_text())[collector.url]["token"] != "forgotten"


@pytest.fixture(scope="module")
def lab() -> LoopbackLab:
    with LoopbackLab() as running:
        running.add(Scenario("honest", "honest.kg"))
        running.add(Scenario("hang", "hang.kg", site=WebBehaviour.blackhole()))
        yield running


def test_run_with_upload(collector: CollectorProcess, lab: LoopbackLab, tmp_path: Path) -> None:
    """If `kuzot run --upload` cannot reach the collector, then the run succeeds and its measurements stay queued; with a reachable collector the queue empties."""
    db = f"sqlite:///{tmp_path / 'probe.db'}"
    env = {"KUZOT_CONFIG_DIR": str(tmp_path / "config")}
    common = ["run", "--db", db, "--url", lab.targets["honest"].url, *lab.probe_args(), "--no-canaries"]
    dead = f"http://127.0.0.1:{free_port()}"
    offline = kuzot(*common, "--quiet", "--upload", dead, env={**env})
    assert offline.returncode == 0, offline.stderr
    assert "Could not upload" in offline.stderr and "1 measurements stay queued" in offline.stderr
    assert len(queued_ids(db)) == 1

    online = kuzot(*common, "--json", "--upload", collector.url, env=env)
    assert online.returncode == 0, online.stderr
    summary = json.loads(online.stdout)["upload"]
    assert summary["acknowledged"] == 2 and summary["remaining"] == 0  # the earlier run's one too
    assert queued_ids(db) == set()
    assert set(stored_ids(db)) <= set(stored_ids(collector.db_url))


def test_run_uploads_as_it_goes(collector: CollectorProcess, lab: LoopbackLab, tmp_path: Path) -> None:
    """If `kuzot run --upload` measures a quick site and one that hangs, then the quick site's measurement is acknowledged by the collector before the run ends, and the hanging one at the end."""
    db = f"sqlite:///{tmp_path / 'probe.db'}"
    env = {"KUZOT_CONFIG_DIR": str(tmp_path / "config")}
    honest, hang = lab.targets["honest"].url, lab.targets["hang"].url
    result = kuzot(
        "run",
        "--db",
        db,
        "--url",
        honest,
        "--url",
        hang,
        *lab.probe_args(),
        "--no-canaries",
        "--timeout",
        "3",
        "--json",
        "--upload",
        collector.url,
        "--upload-every",
        "1",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["upload"]["acknowledged"] == 2 and summary["upload"]["remaining"] == 0
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            finished = conn.execute(text("SELECT finished_at FROM runs")).scalar_one()
            uploaded = dict(conn.execute(text("SELECT url, uploaded_at FROM measurements")).all())
    finally:
        engine.dispose()
    assert uploaded[honest] is not None and uploaded[hang] is not None
    assert uploaded[honest] < finished <= uploaded[hang]
    assert set(stored_ids(db)) <= set(stored_ids(collector.db_url))


def test_run_upload_every_must_be_positive(tmp_path: Path) -> None:
    """If --upload-every is below 1, then kuzot run refuses with status 2 and measures nothing."""
    db = tmp_path / "probe.db"
    result = kuzot(
        "run",
        "--db",
        f"sqlite:///{db}",
        "--url",
        "https://a.kg/",
        "--upload",
        "http://127.0.0.1:9",
        "--upload-every",
        "0",
    )
    assert result.returncode == 2 and "--upload-every" in result.stderr
    assert not db.exists() or stored_ids(f"sqlite:///{db}") == []


def test_live_uploader_sends_after_the_interval(collector: CollectorProcess, tmp_path: Path) -> None:
    """If fewer measurements than the threshold are waiting, then the live uploader still sends them once the interval has passed, and stops when told."""
    import trio

    from probe.store import Store
    from probe.upload.live import LiveUploader

    db, ids, env = _probe(tmp_path, "live", 3)
    store = Store.open(db)
    uploader = LiveUploader(
        store, collector.url, every=100, interval=0.3, config_directory=Path(env["KUZOT_CONFIG_DIR"])
    )

    async def main() -> None:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(uploader.run)
                for _ in ids:
                    uploader.notify()
                while uploader.result is None:  # noqa: ASYNC110 (polls what the uploader task sets)
                    await trio.sleep(0.05)
                uploader.stop()

    try:
        trio.run(main)
    finally:
        store.close()
    assert uploader.attempts == 1 and uploader.result is not None
    assert uploader.result.acknowledged == 3 and uploader.result.error is None
    assert queued_ids(db) == set()

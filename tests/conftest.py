"""Shared fixtures: the loopback censorship lab and a way to run ``kuzot`` for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from probe.lab.loopback import LoopbackLab, matrix
from tests.collector_support import (
    CollectorProcess,
    PostgresUnavailable,
    ThrowawayPostgres,
    fresh_postgres_url,
)

REPO = Path(__file__).resolve().parents[1]

# Never touch the real user's config or data: consent, keys, tokens and default
# databases written by tests go to a throwaway directory (subprocesses inherit it).
_SANDBOX = Path(tempfile.mkdtemp(prefix="kuzot-tests-"))
os.environ.setdefault("KUZOT_CONFIG_DIR", str(_SANDBOX / "config"))
os.environ.setdefault("KUZOT_DATA_DIR", str(_SANDBOX / "data"))
os.environ["KUZOT_DOH_CONTROL"] = "off"


def kuzot(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real command in a subprocess, as a user would (``stdin`` is piped in)."""
    # Tests never reach a public DoH resolver: a run without --control gets no DNS
    # control unless the test names the lab's DoH server.
    full_env = {**os.environ, "KUZOT_ACCEPT_RISKS": "1", "KUZOT_DOH_CONTROL": "off", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "probe", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        env=full_env,
        cwd=REPO,
    )


def show_json(db: str) -> list[dict]:
    result = kuzot("show", "--db", db, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def matrix_lab() -> Iterator[LoopbackLab]:
    """One lab serving every row of the scenario matrix."""
    with LoopbackLab() as lab:
        for scenario in matrix():
            lab.add(scenario)
        yield lab


@pytest.fixture(scope="session")
def matrix_run(matrix_lab: LoopbackLab, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``kuzot run`` over the whole matrix once, with the control helper; measurements by scenario."""
    db = f"sqlite:///{tmp_path_factory.mktemp('matrix') / 'kuzot.db'}"
    urls: list[str] = []
    for target in matrix_lab.targets.values():
        urls += ["--url", target.url]
    result = kuzot(
        "run", "--db", db, *urls, *matrix_lab.probe_args(), "--probe-asn", "64500", "--probe-cc", "KG"
    )
    assert result.returncode == 0, result.stderr
    by_url = {m["url"]: m for m in show_json(db)}
    return {
        "db": db,
        "stdout": result.stdout,
        "measurements": {name: by_url[t.url] for name, t in matrix_lab.targets.items()},
    }


@pytest.fixture(scope="session")
def history_db(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A database holding the synthetic example history (three networks, months of
    measurements), signed by a throwaway key, with the example orders file beside it."""
    from datetime import timedelta

    from analysis.synthetic import EXAMPLE_ORDERS_CSV, example_history, example_spec
    from probe.signing import SigningKey
    from probe.store import Store

    directory = tmp_path_factory.mktemp("history")
    url = f"sqlite:///{directory / 'history.db'}"
    store = Store.open(url)
    try:
        store.save_measurements(example_history(every=timedelta(hours=12)), sign=SigningKey.generate().sign)
    finally:
        store.close()
    orders = directory / "orders.csv"
    orders.write_text(EXAMPLE_ORDERS_CSV)
    return {"db": url, "orders": orders, "spec": example_spec(every=timedelta(hours=12)), "dir": directory}


# --- collector: the same tests on SQLite and on PostgreSQL -----------------------------

#: Database backends every collector test runs on.
BACKENDS = [pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL server: $KUZOT_TEST_POSTGRES_URL, else a throwaway cluster of our own.

    Without PostgreSQL the PostgreSQL half of the suite is skipped, saying why, except
    in CI (CI=true), where a missing backend must fail rather than pass unnoticed.
    """
    given = os.environ.get("KUZOT_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    try:
        cluster = ThrowawayPostgres()
        url = cluster.start()
    except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
        message = f"PostgreSQL is unavailable ({exc}); install it or set KUZOT_TEST_POSTGRES_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield url
    finally:
        cluster.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def new_db(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty databases on this module's backend (each dropped afterwards)."""
    admin = request.getfixturevalue("postgres_admin_url") if backend == "postgresql" else None
    drops: list[Callable[[], None]] = []

    def make() -> str:
        if admin is None:
            return f"sqlite:///{tmp_path_factory.mktemp('db') / 'collector.db'}"
        url, drop = fresh_postgres_url(admin)
        drops.append(drop)  # type: ignore[arg-type]
        return url

    yield make
    for drop in drops:
        drop()


@pytest.fixture(scope="module")
def start_collector(
    new_db: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., CollectorProcess]]:
    """Starts ``kuzot serve`` processes on fresh databases; all stopped at the end."""
    started: list[CollectorProcess] = []

    def start(*extra: str, db_url: str | None = None, port: int = 0) -> CollectorProcess:
        server = CollectorProcess(db_url or new_db(), tmp_path_factory.mktemp("serve"), *extra, port=port)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def collector(start_collector: Callable[..., CollectorProcess]) -> CollectorProcess:
    """One collector per module and backend, with small limits so 413 is cheap to reach."""
    return start_collector("--max-batch-items", "50", "--max-batch-bytes", "300000")

"""Real collectors and real databases for the collector tests (no mocks of the network).

- :class:`ThrowawayPostgres` starts a private PostgreSQL cluster (``initdb`` and
  ``pg_ctl``) in a temporary directory on a loopback port, as a non-root user when
  the tests run as root (PostgreSQL refuses to run as root), and removes it after.
- :func:`fresh_postgres_url` gives each test its own database on that server.
- :class:`CollectorProcess` runs ``python -m probe serve`` as a user would, with its
  output kept in files so tests can check what the server logged.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from probe.records import Measurement
from probe.signing import SigningKey
from probe.store import Store
from probe.store.database import BatchItem
from probe.store.models import MeasurementRow

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PostgreSQL -------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: PATH, then Debian's versioned directories."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for directory in reversed(candidates):
        if (Path(directory) / "initdb").exists() and (Path(directory) / "pg_ctl").exists():
            return Path(directory)
    for directory in ("/usr/local/bin", "/usr/local/pgsql/bin"):
        if (Path(directory) / "initdb").exists() and (Path(directory) / "pg_ctl").exists():
            return Path(directory)
    return None


class PostgresUnavailable(Exception):
    pass


class ThrowawayPostgres:
    """A private PostgreSQL cluster for one test session."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        if self.bindir is None:
            raise PostgresUnavailable("initdb/pg_ctl not found (apt-get install postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="kuzot-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user_kwargs: dict[str, object] = {}
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: hand the directory to an unprivileged user.
            for name in ("postgres", "nobody"):
                try:
                    entry = pwd.getpwnam(name)
                except KeyError:
                    continue
                os.chown(self.root, entry.pw_uid, entry.pw_gid)
                self.root.chmod(0o700)
                self.user_kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
                break
            else:
                raise PostgresUnavailable("running as root and no 'postgres' or 'nobody' user to run as")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            check=False,
            **self.user_kwargs,  # type: ignore[arg-type]
        )

    def start(self) -> str:
        init = self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "kuzot", "-E", "UTF8")
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        started = self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start"
        )
        if started.returncode != 0:
            log = (
                (self.root / "log").read_text(errors="replace")[-800:] if (self.root / "log").exists() else ""
            )
            raise PostgresUnavailable(f"pg_ctl start failed: {started.stderr.strip()[-300:]} {log}")
        return f"postgresql+psycopg://kuzot@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def fresh_postgres_url(admin_url: str) -> tuple[str, object]:
    """A new, empty database (or, without CREATEDB, a new schema) and how to drop it."""
    name = f"kuzot_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)

        def drop() -> None:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            engine.dispose()

        return url, drop
    except Exception:
        # No CREATEDB privilege: a schema of our own in the given database instead.
        with engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        url = make_url(admin_url).update_query_dict({"options": f"-csearch_path={name}"})

        def drop_schema() -> None:
            with engine.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            engine.dispose()

        return url.render_as_string(hide_password=False), drop_schema


# --- the collector as a process ---------------------------------------------------------


class CollectorProcess:
    """``kuzot serve`` in a subprocess; its stdout and stderr go to files."""

    def __init__(self, db_url: str, directory: Path, *extra: str, port: int = 0) -> None:
        self.db_url = db_url
        self.directory = directory
        self.extra = extra
        self.port = port
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        directory.mkdir(parents=True, exist_ok=True)

    def start(self) -> CollectorProcess:
        out = open(self.directory / "serve.out", "ab")  # noqa: SIM115 - kept open while the server runs
        err = open(self.directory / "serve.err", "ab")  # noqa: SIM115
        self._files = [out, err]
        offset = (self.directory / "serve.out").stat().st_size
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "probe",
                "serve",
                "--db",
                self.db_url,
                "--listen",
                f"127.0.0.1:{self.port}",
                *self.extra,
            ],
            cwd=REPO,
            stdout=out,
            stderr=err,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            printed = (self.directory / "serve.out").read_bytes()[offset:].decode(errors="replace")
            found = re.search(r"collector listening on (http://[^\s]+)/api/v1/", printed)
            if found:
                self.url = found.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"kuzot serve exited {self.proc.returncode}: {self.logs()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"kuzot serve did not start: {self.logs()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for f in self._files:
            f.close()
        self._files = []

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def logs(self) -> str:
        parts = []
        for name in ("serve.out", "serve.err"):
            path = self.directory / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    def register(self) -> str:
        """A new probe's token."""
        response = httpx.post(f"{self.api}/probes", timeout=30)
        assert response.status_code == 201, response.text
        return response.json()["token"]


# --- measurements and databases ---------------------------------------------------------


def signed_item(m: Measurement, key: SigningKey | None) -> dict:
    """One batch item as a probe sends it; unsigned items carry no signature fields."""
    item: dict = {"record": m.to_dict()}
    if key is not None:
        item.update(key.sign(m))
    return item


def fill_probe_db(db_url: str, measurements: Iterable[Measurement], key: SigningKey | None) -> list[str]:
    """Store measurements in a probe's database, queued for upload, the way ``kuzot run`` does."""
    store = Store.open(db_url)
    try:
        items = [
            BatchItem(
                m,
                m.canonical_json().decode(),
                m.content_hash(),
                signature=key.sign(m) if key is not None else None,
            )
            for m in measurements
        ]
        store.save_batch(items, source="kuzot")
        return [item.measurement.id for item in items]
    finally:
        store.close()


def stored_ids(db_url: str) -> list[str]:
    """Every measurement id in a database (a list, so duplicates would show)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("measurements"):
                return []
            return list(conn.scalars(select(MeasurementRow.id)))
    finally:
        engine.dispose()


def queued_ids(db_url: str) -> set[str]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(select(MeasurementRow.id).where(MeasurementRow.uploaded_at.is_(None))))
    finally:
        engine.dispose()


def database_text(db_url: str) -> str:
    """Every value of every table, as text: to prove something is stored nowhere."""
    engine = create_engine(db_url)
    parts: list[str] = []
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    parts.append(f"{table}: " + " | ".join(str(v) for v in row))
    finally:
        engine.dispose()
    return "\n".join(parts)

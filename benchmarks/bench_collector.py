"""Collector throughput: many probes uploading signed measurements at once over loopback.

Run on demand (not part of the test suite)::

    /work/venv/bin/python benchmarks/bench_collector.py                 # SQLite
    /work/venv/bin/python benchmarks/bench_collector.py --postgres      # a throwaway PostgreSQL cluster
    /work/venv/bin/python benchmarks/bench_collector.py --db postgresql+psycopg://kuzot@host/bench

Why this shape: after an outage, or when a scheduled run fires on many laptops at
once, a collector sees a burst of probes each emptying its queue in batches.  What
matters is how many measurements per second it accepts (each one validated, its
signature verified, indexed and committed), how long one batch waits (a probe's
request timeout must exceed the p99), and that under this load it still stores every
measurement exactly once.

The collector is the real ``kuzot serve`` in its own process.  The probes are trio
tasks in this process, one HTTP client each, sending pre-built batches (records are
made and signed before the clock starts, so the figure is the collector's, not the
generator's).  The section is appended to ``benchmarks/RESULTS.md`` unless ``--no-write``.

Records are real-sized (about 4 KB of canonical JSON: DNS with several answers, TCP,
TLS with a certificate, an HTTP response with headers, a title and a body sample).
The reference, run in this same process on a fresh database of the same backend, is a
plain DB-API ``executemany`` of exactly the rows the collector stores, one transaction
per batch, with everything prepared before the clock starts: what storing costs with
no HTTP, no validation, no signature check.  The ratio collector/reference says how
close the whole pipeline comes to the bare insert.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import trio  # noqa: E402
from machine import machine  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402

from probe.failures import Failure  # noqa: E402
from probe.records import (  # noqa: E402
    CertificateInfo,
    DnsAnswer,
    Measurement,
    TcpObservation,
    TlsObservation,
)
from probe.signing import SigningKey  # noqa: E402
from probe.store import Store  # noqa: E402
from probe.store.database import prepare_item  # noqa: E402
from tests.collector_support import (  # noqa: E402
    CollectorProcess,
    ThrowawayPostgres,
    fresh_postgres_url,
    stored_ids,
)
from tests.test_store import make_measurement  # noqa: E402


@dataclass
class Figures:
    backend: str
    probes: int
    per_probe: int
    batch: int
    wall: float
    accepted: int
    stored: int
    latencies: list[float]
    exact: bool
    generate_seconds: float
    server_cpu: float
    client_cpu: float = 0.0
    client: str = "raw"
    reference_rate: float = 0.0
    record_bytes: int = 0
    load: str = ""

    @property
    def rate(self) -> float:
        return self.accepted / self.wall

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def real_sized_measurement() -> Measurement:
    """A measurement about the size of a real one (about 4 KB of canonical JSON)."""
    m = make_measurement()
    m.dns[0].answers += [DnsAnswer("A", f"127.1.2.{i}", 300) for i in range(4, 8)]
    m.tcp = [TcpObservation(f"tcp/{i}", f"127.1.2.{i + 3}", 443, 0.02, 0.03) for i in range(2)]
    cert = CertificateInfo(
        sha256="ab" * 32,
        subject="CN=24.kg",
        issuer="CN=R3,O=Let's Encrypt,C=US",
        sans=["24.kg", "www.24.kg"],
        not_before="2026-10-01T00:00:00Z",
        not_after="2026-12-30T00:00:00Z",
    )
    m.tls = [
        TlsObservation(
            "tls/0",
            "127.1.2.3",
            443,
            "24.kg",
            0.03,
            0.08,
            None,
            "TLSv1.3",
            "TLS_AES_128_GCM_SHA256",
            "http/1.1",
            [cert],
            True,
        ),
        TlsObservation(
            "tls/1",
            "127.1.2.3",
            443,
            "example.com",
            0.03,
            0.07,
            Failure.CONNECTION_RESET,
            purpose="comparison",
        ),
    ]
    http = m.http[0]
    http.failure = None
    http.status_code = 200
    http.http_version = "HTTP/1.1"
    http.headers = [(f"X-Header-{i}", "v" * 40) for i in range(12)]
    http.title = "24.kg — новости Кыргызстана"
    http.body_length = 65536
    http.body_sha256 = "cd" * 32
    http.body_sample = bytes(range(256)) * 5
    return m


def build_batches(
    probes: int, per_probe: int, batch: int
) -> tuple[list[list[bytes]], set[str], list[list[Measurement]]]:
    """Every probe's batches as request bodies, each probe with its own signing key."""
    bodies: list[list[bytes]] = []
    ids: set[str] = set()
    measurements: list[list[Measurement]] = []
    for _ in range(probes):
        key = SigningKey.generate()
        items = []
        mine: list[Measurement] = []
        measurements.append(mine)
        for _ in range(per_probe):
            m = real_sized_measurement()
            mine.append(m)
            ids.add(m.id)
            # As the uploader sends them: the stored canonical record, verbatim.
            envelope = json.dumps(key.sign(m), separators=(",", ":"))[:-1]
            items.append(f'{envelope},"record":{m.canonical_json().decode()}}}'.encode())
        bodies.append(
            [
                b'{"measurements":[' + b",".join(items[i : i + batch]) + b"]}"
                for i in range(0, len(items), batch)
            ]
        )
    return bodies, ids, measurements


def reference_rate(db_url: str, measurements: list[list[Measurement]], batch: int) -> float:
    """Measurements per second of a plain executemany of the same rows, one transaction per batch."""
    store = Store.open(db_url)
    # The driver's defaults (psycopg's own prepared statements included), not the
    # store's engine settings: the reference is what plain DB-API code would get.
    engine = create_engine(store.engine.url) if store.engine.dialect.name == "postgresql" else store.engine
    marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    now = datetime.now(UTC)
    batches: list[dict[str, list[tuple]]] = []
    statements: dict[str, str] = {}
    for mine in measurements:
        for start in range(0, len(mine), batch):
            tables: dict[str, list[tuple]] = {}
            for m in mine[start : start + batch]:
                prepared = prepare_item(
                    m, record=m.canonical_json().decode(), content_hash=m.content_hash(), probe_id=None
                )
                row = {**prepared.row, "source": "upload", "stored_at": now, "uploaded_at": now}
                groups = [("measurements", [row])] + [
                    (
                        t,
                        [
                            {**r, "addresses": json.dumps(r["addresses"])} if "addresses" in r else r
                            for r in rows
                        ],
                    )
                    for t, rows in prepared.observations.items()
                ]
                for table, rows in groups:
                    for r in rows:
                        if table not in statements:
                            columns = ", ".join(r)
                            statements[table] = (
                                f"INSERT INTO {table} ({columns}) VALUES ({', '.join([marker] * len(r))})"
                            )
                        tables.setdefault(table, []).append(tuple(r.values()))
            batches.append(tables)
    count = sum(len(mine) for mine in measurements)
    started = time.perf_counter()
    for tables in batches:
        with engine.begin() as connection:
            for table, rows in tables.items():
                connection.exec_driver_sql(statements[table], rows)
    elapsed = time.perf_counter() - started
    if engine is not store.engine:
        engine.dispose()
    store.close()
    return count / elapsed


async def upload_all(
    api: str, bodies: list[list[bytes]], client: str = "raw"
) -> tuple[float, int, list[float]]:
    """Every probe uploads its batches at once; (wall seconds, accepted, batch latencies).

    ``client``: "raw" (default) sends pre-encoded HTTP/1.1 requests over one keep-alive
    connection per probe, so the 50 probes' own CPU, spent on this machine although in
    production it is spent on theirs, takes as little as possible from the collector;
    "httpx" is the earlier client (one ``httpx.AsyncClient`` per probe), kept to compare."""
    latencies: list[float] = []
    accepted = 0
    send = _raw_probe if client == "raw" else _httpx_probe

    async def probe(batches: list[bytes]) -> None:
        nonlocal accepted
        async for seconds, stored in send(api, batches):
            latencies.append(seconds)
            accepted += stored

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for batches in bodies:
            nursery.start_soon(probe, batches)
    return time.perf_counter() - started, accepted, latencies


async def _httpx_probe(api: str, batches: list[bytes]) -> AsyncIterator[tuple[float, int]]:
    async with httpx.AsyncClient(timeout=600) as client:
        token = (await client.post(f"{api}/probes")).json()["token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for body in batches:
            started = time.perf_counter()
            response = await client.post(f"{api}/measurements", content=body, headers=headers)
            seconds = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"batch refused: {response.status_code} {response.text[:300]}")
            yield seconds, response.json()["stored"]


class _RawConnection:
    """One keep-alive HTTP/1.1 connection that sends prepared bytes and reads one answer."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.stream: trio.SocketStream | None = None
        self.buffer = b""

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """(status, body); reconnects once if the server had closed the idle connection
        (every request here is idempotent: a batch sent twice reads as duplicates)."""
        for attempt in range(2):
            if self.stream is None:
                self.stream = await trio.open_tcp_stream(self.host, self.port)
                self.buffer = b""
            try:
                await self.stream.send_all(request)
                return await self._answer()
            except (trio.BrokenResourceError, ConnectionError, EOFError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _read_until(self, size: int) -> None:
        assert self.stream is not None
        while len(self.buffer) < size:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError("connection closed mid-answer")
            self.buffer += chunk

    async def _answer(self) -> tuple[int, bytes]:
        assert self.stream is not None
        while b"\r\n\r\n" not in self.buffer:
            await self._read_until(len(self.buffer) + 1)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = dict(line.lower().split(":", 1) for line in lines[1:])
        length = int(fields["content-length"])
        await self._read_until(length)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        if fields.get("connection", "").strip() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()
            self.stream = None


def _request(path: str, host: str, body: bytes, token: str = "") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _raw_probe(api: str, batches: list[bytes]) -> AsyncIterator[tuple[float, int]]:
    where = httpx.URL(api)
    host = f"{where.host}:{where.port}"
    connection = _RawConnection(where.host, where.port or 80)
    try:
        status, answer = await connection.exchange(_request(f"{where.path}/probes", host, b""))
        if status != 201:
            raise RuntimeError(f"registration refused: {status} {answer[:300]!r}")
        token = json.loads(answer)["token"]
        # Requests are encoded before the first is sent, as a probe's would be by then.
        requests = [_request(f"{where.path}/measurements", host, body, token) for body in batches]
        for request in requests:
            started = time.perf_counter()
            status, answer = await connection.exchange(request)
            seconds = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"batch refused: {status} {answer[:300]!r}")
            yield seconds, json.loads(answer)["stored"]
    finally:
        await connection.close()


def server_cpu_seconds(pid: int) -> float:
    """User+system CPU of the collector process and its descendants (its validation
    workers) so far, from Linux /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    return sum(times.get(p, 0.0) for p in tree)


def run(db_url: str, reference_url: str, backend: str, args: argparse.Namespace, workdir: Path) -> Figures:
    t0 = time.perf_counter()
    bodies, ids, measurements = build_batches(args.probes, args.per_probe, args.batch)
    generate = time.perf_counter() - t0
    record_bytes = len(measurements[0][0].canonical_json())
    print(f"[{backend}] {len(ids)} measurements signed and batched in {generate:.1f} s", flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    server = CollectorProcess(db_url, workdir / f"serve-{backend}", *args.serve_option).start()
    try:
        assert server.proc is not None
        cpu_before = server_cpu_seconds(server.proc.pid)
        client_before = time.process_time()
        wall, accepted, latencies = trio.run(upload_all, server.api, bodies, args.client)
        client_cpu = time.process_time() - client_before
        cpu = server_cpu_seconds(server.proc.pid) - cpu_before
    finally:
        server.stop()
    kept = stored_ids(db_url)
    exact = len(kept) == len(ids) and set(kept) == ids
    print(f"[{backend}] collector done; reference executemany of the same rows", flush=True)
    return Figures(
        backend=backend,
        probes=args.probes,
        per_probe=args.per_probe,
        batch=args.batch,
        wall=wall,
        accepted=accepted,
        stored=len(kept),
        latencies=latencies,
        exact=exact,
        generate_seconds=generate,
        server_cpu=cpu,
        client_cpu=client_cpu,
        client=args.client,
        reference_rate=reference_rate(reference_url, measurements, args.batch),
        record_bytes=record_bytes,
        load=load,
    )


CLIENTS = {"raw": "keep-alive connection with pre-encoded requests", "httpx": "httpx client"}


def report(results: list[Figures]) -> str:
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    first = results[0]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    lines = [
        f"## Collector throughput ({today}, commit {commit or 'unknown'})",
        "",
        f"Machine: {machine()}.  `benchmarks/bench_collector.py`: {first.probes} probes "
        f"on loopback, each uploading {first.per_probe} signed measurements in batches of {first.batch} "
        f"(one {CLIENTS[first.client]} "
        "per probe, all at once) to one `kuzot serve` process; every measurement is "
        f"validated, its ed25519 signature verified, indexed and committed.  Load average before the "
        f"run: {first.load}.",
        "",
        "| backend | measurements | record bytes | wall s | accepted/s | reference executemany/s | "
        "ratio | batch p50 ms | batch p99 ms | server CPU ms/measurement | probes' CPU ms/measurement | "
        "DB holds exactly the sent set |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in results:
        lines.append(
            f"| {f.backend} | {f.accepted:,} | {f.record_bytes:,} | {f.wall:.1f} | {f.rate:,.0f} | "
            f"{f.reference_rate:,.0f} | {f.rate / f.reference_rate:.2f} | "
            f"{statistics.median(f.latencies) * 1000:.0f} | {f.percentile(0.99) * 1000:.0f} | "
            f"{f.server_cpu / max(1, f.accepted) * 1000:.2f} | "
            f"{f.client_cpu / max(1, f.accepted) * 1000:.2f} | "
            f"{'yes' if f.exact else f'NO ({f.stored:,} stored)'} |"
        )
    lines += [
        "",
        "Latency is per batch as a probe sees it, queueing included: with 50 probes sending at once "
        "a batch waits for the batches ahead of it, so p50 is mostly queueing and p99 bounds the "
        "request timeout a probe needs (`kuzot upload` waits 60 s).  The probes run in the "
        "benchmark's own process on the same machine and take part of the CPU.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--per-probe", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--db", help="collector database URL (default: a fresh SQLite file)")
    parser.add_argument("--postgres", action="store_true", help="also run on a throwaway PostgreSQL cluster")
    parser.add_argument(
        "--postgres-only", action="store_true", help="run only on a throwaway PostgreSQL cluster"
    )
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="the probes' HTTP client: pre-encoded requests on one keep-alive connection each (raw, "
        "the default: costs the shared CPU least) or one httpx.AsyncClient each (the earlier client)",
    )
    parser.add_argument(
        "--serve-option",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG to kuzot serve (repeatable, e.g. --serve-option=--workers=2)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not append to benchmarks/RESULTS.md")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()

    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="kuzot-bench-") as tmp:
        workdir = Path(tmp)
        if args.db:
            backend = "postgresql" if args.db.startswith("postgresql") else "sqlite"
            reference, drop_reference = (
                fresh_postgres_url(args.db)
                if backend == "postgresql"
                else (f"sqlite:///{workdir / 'ref.db'}", None)
            )
            results.append(run(args.db, reference, backend, args, workdir))
            if drop_reference:
                drop_reference()  # type: ignore[operator]
        elif not args.postgres_only:
            results.append(
                run(
                    f"sqlite:///{workdir / 'collector.db'}",
                    f"sqlite:///{workdir / 'ref.db'}",
                    "sqlite",
                    args,
                    workdir,
                )
            )
        if args.postgres or args.postgres_only:
            cluster = ThrowawayPostgres()
            admin = cluster.start()
            try:
                url, drop = fresh_postgres_url(admin)
                reference, drop_reference = fresh_postgres_url(admin)
                results.append(run(url, reference, "postgresql", args, workdir))
                drop()  # type: ignore[operator]
                drop_reference()  # type: ignore[operator]
            finally:
                cluster.stop()
    text = report(results)
    print(text)
    if not args.no_write:
        with args.results.open("a", encoding="utf-8") as out:
            out.write("\n" + text)
    return 0 if all(f.exact for f in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

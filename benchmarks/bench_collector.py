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
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import trio  # noqa: E402

from probe.signing import SigningKey  # noqa: E402
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

    @property
    def rate(self) -> float:
        return self.accepted / self.wall

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build_batches(probes: int, per_probe: int, batch: int) -> tuple[list[list[bytes]], set[str]]:
    """Every probe's batches as request bodies, each probe with its own signing key."""
    bodies: list[list[bytes]] = []
    ids: set[str] = set()
    for _ in range(probes):
        key = SigningKey.generate()
        items = []
        for _ in range(per_probe):
            m = make_measurement()
            ids.add(m.id)
            items.append({"record": m.to_dict(), **key.sign(m)})
        bodies.append(
            [json.dumps({"measurements": items[i : i + batch]}).encode() for i in range(0, len(items), batch)]
        )
    return bodies, ids


async def upload_all(api: str, bodies: list[list[bytes]]) -> tuple[float, int, list[float]]:
    latencies: list[float] = []
    accepted = 0

    async def probe(batches: list[bytes]) -> None:
        nonlocal accepted
        async with httpx.AsyncClient(timeout=600) as client:
            token = (await client.post(f"{api}/probes")).json()["token"]
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            for body in batches:
                started = time.perf_counter()
                response = await client.post(f"{api}/measurements", content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"batch refused: {response.status_code} {response.text[:300]}")
                accepted += response.json()["stored"]

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for batches in bodies:
            nursery.start_soon(probe, batches)
    return time.perf_counter() - started, accepted, latencies


def server_cpu_seconds(pid: int) -> float:
    """User+system CPU of the collector process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def run(db_url: str, backend: str, args: argparse.Namespace, workdir: Path) -> Figures:
    t0 = time.perf_counter()
    bodies, ids = build_batches(args.probes, args.per_probe, args.batch)
    generate = time.perf_counter() - t0
    print(f"[{backend}] {len(ids)} measurements signed and batched in {generate:.1f} s", flush=True)
    server = CollectorProcess(db_url, workdir / f"serve-{backend}").start()
    try:
        assert server.proc is not None
        cpu_before = server_cpu_seconds(server.proc.pid)
        wall, accepted, latencies = trio.run(upload_all, server.api, bodies)
        cpu = server_cpu_seconds(server.proc.pid) - cpu_before
    finally:
        server.stop()
    kept = stored_ids(db_url)
    exact = len(kept) == len(ids) and set(kept) == ids
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
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def report(results: list[Figures]) -> str:
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    first = results[0]
    lines = [
        f"## Collector throughput ({today})",
        "",
        f"Machine: {os.cpu_count()} CPUs (nproc, {cpu_model()}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}.  `benchmarks/bench_collector.py`: {first.probes} probes "
        f"on loopback, each uploading {first.per_probe} signed measurements in batches of {first.batch} "
        "(one HTTP client per probe, all at once) to one `kuzot serve` process; every measurement is "
        "validated, its ed25519 signature verified, indexed and committed.",
        "",
        "| backend | measurements | wall s | accepted/s | batch p50 ms | batch p99 ms | server CPU s | "
        "DB holds exactly the sent set |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in results:
        lines.append(
            f"| {f.backend} | {f.accepted:,} | {f.wall:.1f} | {f.rate:,.0f} | "
            f"{statistics.median(f.latencies) * 1000:.0f} | {f.percentile(0.99) * 1000:.0f} | "
            f"{f.server_cpu:.1f} | {'yes' if f.exact else f'NO ({f.stored:,} stored)'} |"
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
    parser.add_argument("--no-write", action="store_true", help="do not append to benchmarks/RESULTS.md")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()

    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="kuzot-bench-") as tmp:
        workdir = Path(tmp)
        if args.db:
            backend = "postgresql" if args.db.startswith("postgresql") else "sqlite"
            results.append(run(args.db, backend, args, workdir))
        else:
            results.append(run(f"sqlite:///{workdir / 'collector.db'}", "sqlite", args, workdir))
        if args.postgres:
            cluster = ThrowawayPostgres()
            admin = cluster.start()
            try:
                url, drop = fresh_postgres_url(admin)
                results.append(run(url, "postgresql", args, workdir))
                drop()  # type: ignore[operator]
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

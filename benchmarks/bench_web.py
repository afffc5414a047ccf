"""Explorer page latency over a generated history (run on demand, not in the test suite).

    python benchmarks/bench_web.py                # about 100 000 measurements
    python benchmarks/bench_web.py 1000000        # about a million (a few minutes to generate)
    python benchmarks/bench_web.py 0 /tmp/x.db    # reuse a database an earlier run generated
    python benchmarks/bench_web.py 100000 --slow  # every measurement made, signed and judged

Generates a synthetic history (:mod:`analysis.synthetic`: many domains x networks, blocks
of known extent) into a throwaway SQLite file.  By default fast: a few template
measurements per (site, network, kind) are made with :func:`analysis.synthetic.make_measurement`
and judged once, then cloned (new id, run, time, content hash) into rows for the store's
bulk writer, with their verdicts in the verdict cache, so a million rows take minutes
rather than hours.  The clones are unsigned and have no observation index (the Explorer
reads neither); ``--slow`` makes, signs and stores every measurement instead and leaves
judging to the Explorer's start-up.  It then starts the real ``kuzot web`` on
loopback and requests each kind of page many times, one at a time.  Prints, per page,
p50 and p95 latency and the ratio to a reference request served by the same process
(a static file: the server's and middleware's own cost), the start-up time (judging
everything once), the time until a newly stored run shows (incremental refresh), and
the server's peak RSS.  Nothing is asserted: the figures go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from machine import machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.fingerprints import load_fingerprints  # noqa: E402
from analysis.synthetic import CANARY_URL, BlockTruth, HistorySpec, generate_history, make_measurement  # noqa: E402
from analysis.verdict_cache import (  # noqa: E402
    _fields,
    _store_fields,
    fingerprints_digest,
)
from analysis.verdicts import Verdict, judge_all  # noqa: E402
from probe.signing import SigningKey  # noqa: E402
from probe.store import Store  # noqa: E402
from probe.store.database import PreparedItem, prepare_item  # noqa: E402
from probe.store.record_codec import decode_record  # noqa: E402

REQUESTS = 60


def spec_for(size: int, *, canaries: bool = True) -> HistorySpec:
    domains = [f"site{i:03d}.kg" for i in range(40)]
    asns = {64601 + i: f"ISP {i} (synthetic)" for i in range(10)}
    per_run = (len(domains) + canaries) * len(asns)
    runs = max(10, -(-size // per_run))
    start = datetime(2022, 1, 1, tzinfo=UTC)
    every = timedelta(hours=6)
    end = start + every * runs
    blocks = [
        BlockTruth(
            d, asn, start + (end - start) * ((i * 7 + j) % 10) / 20, start + (end - start) * 0.7, "dns"
        )
        for i, d in enumerate(domains)
        for j, asn in enumerate(asns)
        if (i + j) % 4 == 0
    ]
    return HistorySpec(start=start, end=end, asns=asns, domains=domains, blocks=blocks, every=every, seed=3)


Template = tuple[PreparedItem, Verdict]
STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def templates(spec: HistorySpec, kinds: dict[tuple[str, int], str]) -> dict[tuple[str, int, str], Template]:
    """One judged measurement per (site, network, kind), each run with a canary."""
    made = []
    for asn, label in spec.asns.items():
        run = f"{asn:032x}"
        made.append(("canary", make_measurement("accessible", url=CANARY_URL, domain="canary.example.org",
                                                at=spec.start, probe_asn=asn, run_id=run, role="canary",
                                                probe_network=label)))  # fmt: skip
        for domain in spec.domains:
            for kind in {"accessible", "down", "tcp_ip", kinds.get((domain, asn), "dns")}:
                made.append((kind, make_measurement(kind, url=f"https://{domain}/", domain=domain,
                                                    at=spec.start, probe_asn=asn, run_id=run,
                                                    probe_network=label)))  # fmt: skip
    judged = judge_all([m for _, m in made], fingerprints=load_fingerprints())
    verdicts = {v.measurement_id: v for v in judged}
    return {
        (m.domain, m.probe_asn, kind): (prepare_item(m), verdicts[m.id])
        for kind, m in made
        if kind != "canary"
    }


def clone(template: Template, new_id: str, run_id: str, at: datetime) -> Template:
    item, verdict = template
    old = item.row
    record = (
        decode_record(old["record"])
        .replace(f'"id":"{item.id}"', f'"id":"{new_id}"', 1)
        .replace(f'"run_id":"{old["run_id"]}"', f'"run_id":"{run_id}"', 1)
        .replace(f'"started_at":"{old["started_at"]:{STAMP}}"', f'"started_at":"{at:{STAMP}}"', 1)
    )
    digest = hashlib.sha256(record.encode()).hexdigest()
    row = {**old, "id": new_id, "run_id": run_id, "started_at": at, "record": record, "content_hash": digest}
    return (
        PreparedItem(id=new_id, content_hash=digest, row=row, observations={}),
        dataclasses.replace(verdict, measurement_id=new_id, measured_at=at),
    )


def fast_history(store: Store, spec: HistorySpec, chunk: int = 20_000) -> int:
    """Clones of judged templates, in time order, through the bulk writer and the verdict cache."""
    blocks = {(b.domain, b.probe_asn): b for b in spec.blocks}
    made = templates(spec, {key: b.method for key, b in blocks.items()})
    digest = fingerprints_digest(load_fingerprints())
    rng = random.Random(spec.seed)
    batch: list[Template] = []
    stored = 0

    def flush() -> int:
        done = sum(store.save_prepared([b[0] for b in batch], source="synthetic", changed="keep"))
        _store_fields(store.engine, [_fields(b[1]) for b in batch], digest)
        batch.clear()
        return done

    at = spec.start
    while at < spec.end:
        for asn in spec.asns:
            run_id = f"{rng.getrandbits(128):032x}"
            for i, domain in enumerate(spec.domains):
                t = at + timedelta(seconds=i + 1)
                block = blocks.get((domain, asn))
                blocked = block is not None and block.start <= t and (block.end is None or t < block.end)
                kind = block.method if blocked and block is not None else "accessible"
                roll = rng.random()
                if not blocked and roll < 0.01:
                    kind = "down"
                elif roll > 0.99:
                    kind = "accessible" if blocked else "tcp_ip"
                batch.append(clone(made[(domain, asn, kind)], f"{rng.getrandbits(128):032x}", run_id, t))
            if len(batch) >= chunk:
                stored += flush()
        at += spec.every
    return stored + flush()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(client: httpx.Client, path: str, n: int = REQUESTS) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        response = client.get(path)
        out.append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
    return out


def main(size: int, reuse: Path | None = None, slow: bool = False) -> None:
    directory = Path(tempfile.mkdtemp(prefix="kuzot-bench-web-"))
    db = f"sqlite:///{reuse or directory / 'bench.db'}"
    store = Store.open(db)
    if reuse is None:
        spec = spec_for(size, canaries=slow)
        t0, c0 = time.perf_counter(), time.process_time()
        if slow:
            sign = SigningKey.generate().sign
            stored = store.save_measurements(generate_history(spec), sign=sign, chunk=2000)
        else:
            stored = fast_history(store, spec)
        print(f"generated and stored {stored} measurements in {time.perf_counter() - t0:.1f} s "
              f"({time.process_time() - c0:.1f} s CPU; {'slow' if slow else 'fast'} path)")  # fmt: skip
    else:
        spec = spec_for(store.count_measurements())
        spec.start = spec.end = datetime.now(UTC) - timedelta(days=1)
        print(f"reusing {reuse}: {store.count_measurements()} measurements")
    store.close()

    env = {**os.environ, "KUZOT_DATA_DIR": str(directory), "KUZOT_CONFIG_DIR": str(directory / "config")}
    t0 = time.perf_counter()
    errors = open(directory / "web.err", "wb")  # noqa: SIM115 - the server's stderr, kept open while it runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "probe", "web", "--db", db, "--listen", "127.0.0.1:0", "--json",
         "--refresh", "1", "--mode", "public"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, env=env, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"].rstrip("/")
        startup = time.perf_counter() - t0
        print(f"start-up (judging every measurement once): {startup:.1f} s")
        with httpx.Client(base_url=url, timeout=300) as client:
            episodes = client.get("/api/v1/episodes", params={"limit": 5}).json()["episodes"]
            episode = episodes[0]["episode_id"]
            first = client.get(f"/api/v1/episodes/{episode}").json()["bounds"]["first_blocked"]
            measurement = first["measurement_id"]
            domain = episodes[0]["domain"]
            pages = {
                "reference (static file)": "/static/kuzot.css",
                "overview": "/en/",
                "overview, one network, a period": "/ru/?asn=64603&from=2022-03-01&to=2022-06-01",
                "overview API": "/api/v1/overview",
                "site": f"/en/sites/{domain}",
                "site verdicts API (page)": f"/api/v1/sites/{domain}/verdicts?limit=100&offset=1000",
                "episode": f"/ky/episodes/{episode}",
                "episode API": f"/api/v1/episodes/{episode}",
                "measurement": f"/en/measurements/{measurement}",
                "episodes list": "/en/episodes/",
                "Atom feed": "/en/feeds/episodes.atom",
            }
            for path in pages.values():
                client.get(path)  # warm: templates compiled, caches filled
            results = {name: timed(client, path) for name, path in pages.items()}
            ref = percentile(results["reference (static file)"], 0.95)
            print(f"\n{'page':36} {'p50 ms':>8} {'p95 ms':>8} {'p95/ref':>8}")
            for name, values in results.items():
                p50, p95 = percentile(values, 0.5) * 1000, percentile(values, 0.95) * 1000
                print(f"{name:36} {p50:8.1f} {p95:8.1f} {p95 / 1000 / ref:8.1f}")

            # Incremental refresh: one more run of every network, then wait until it shows.
            before = client.get("/api/v1/overview").json()["measurements"]
            more = HistorySpec(
                start=spec.end, end=spec.end + spec.every, asns=spec.asns, domains=spec.domains, seed=11
            )
            store = Store.open(db)
            added = store.save_measurements(generate_history(more), sign=SigningKey.generate().sign)
            store.close()
            t0 = time.perf_counter()
            while client.get("/api/v1/overview").json()["measurements"] == before:
                time.sleep(0.05)
            refresh = time.perf_counter() - t0
            print(f"\nincremental refresh: {added} new measurements visible after {refresh:.2f} s "
                  f"(start-up judged all in {startup:.1f} s; ratio {startup / refresh:.0f}x)")  # fmt: skip
            rss = Path(f"/proc/{proc.pid}/status").read_text()
            peak = next(line.split()[1] for line in rss.splitlines() if line.startswith("VmHWM"))
            print(f"server peak RSS: {int(peak) / 1024:.0f} MiB")
            p95s = [percentile(v, 0.95) for v in results.values()]
            print(f"median of all pages' p95: {statistics.median(p95s) * 1000:.1f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"\nMachine: {machine()} ({platform.python_implementation()}); {directory}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--slow"]
    main(int(args[0]) if args else 100_000, Path(args[1]) if len(args) > 1 else None, "--slow" in sys.argv)

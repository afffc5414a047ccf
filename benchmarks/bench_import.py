"""Import and judge speed for OONI measurements: ``python benchmarks/bench_import.py [N] [--no-judge]``.

Generates N OONI-shaped Web Connectivity measurements (KG, five networks, 30 KB bodies,
one in ten a DNS block), writes them as hourly ``.jsonl.gz`` files, then measures in
this process tree:

- the reference: the line-by-line importer (what ``kuzot import-ooni FILE`` did before
  it saved in bulk: ``read_ooni`` + one ``Store.save_measurement`` transaction each)
  over the first 500 lines;
- the in-process cost of each stage on 2,000 lines (convert in a worker, write in the
  parent), which gives the ceiling on an idle machine with two cores;
- ``kuzot ooni import``'s importer (worker processes, orjson, bulk inserts);
- bytes per measurement in the database (after VACUUM), and for the real OONI
  measurements in ``../shared/data/real-data`` when present (read in place), each stored
  many times under new ids so that a table's first pages do not dominate;
- judging + episodes cold (nothing cached) and warm (verdicts from the cache).

Prints figures and the ratio to the reference.  Speed is never asserted in tests.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.store import Store

ASNS = [8449, 12997, 50223, 41329, 47237]
HEADERS = [["Content-Type", "text/html"], ["Server", "nginx"]]


def line(n: int) -> dict:
    blocked = n % 10 == 0
    day, rest = divmod(n, 5000)
    hour = (rest // 250) % 24
    ip = "10.10.34.36" if blocked else "104.21.32.7"
    url = f"https://site{n % 400}.example.kg/"
    timeout = "generic_timeout_error"
    return {
        "annotations": {"engine_name": "ooniprobe-engine"},
        "data_format_version": "0.2.0",
        "input": url,
        "measurement_start_time": f"2022-{1 + day // 28:02d}-{1 + day % 28:02d} {hour:02d}:{n % 60:02d}:00",
        "measurement_uid": f"bench_{n:012d}",
        "probe_asn": f"AS{ASNS[n % len(ASNS)]}",
        "probe_cc": "KG",
        "probe_network_name": "bench",
        "report_id": f"bench_report_{n // 50}",
        "software_name": "ooniprobe-cli",
        "software_version": "3.20.0",
        "test_name": "web_connectivity",
        "test_runtime": 1.0,
        "test_version": "0.4.3",
        "test_keys": {
            "queries": [
                {
                    "answers": [{"answer_type": "A", "ipv4": ip}],
                    "engine": "system",
                    "failure": None,
                    "hostname": url.split("/")[2],
                    "query_type": "A",
                    "t0": 0.0,
                    "t": 0.05,
                }
            ],
            "tcp_connect": [
                {
                    "ip": ip,
                    "port": 443,
                    "status": {"failure": timeout if blocked else None, "success": not blocked},
                }
            ],
            "requests": [
                {
                    "failure": timeout if blocked else None,
                    "request": {"url": url, "method": "GET"},
                    "response": {
                        "body": None if blocked else "<title>Site</title>" + "z" * 30_000,
                        "code": 0 if blocked else 200,
                        "headers_list": [] if blocked else HEADERS,
                    },
                    "t0": 0.1,
                    "t": 0.8,
                }
            ],
            "control": {
                "dns": {"addrs": ["104.21.32.7"], "failure": None},
                "tcp_connect": {"104.21.32.7:443": {"status": True, "failure": None}},
                "http_request": {
                    "body_length": 30019,
                    "failure": None,
                    "title": "Site",
                    "headers": {"Content-Type": "text/html", "Server": "nginx"},
                    "status_code": 200,
                },
            },
            "control_failure": None,
        },
    }


def write_files(folder: Path, n: int, per_file: int = 2500) -> list[Path]:
    paths = []
    for start in range(0, n, per_file):
        path = folder / f"{2022010100 + start // per_file}_KG_webconnectivity.n1.0.jsonl.gz"
        with gzip.open(path, "wt", compresslevel=1) as out:
            for i in range(start, min(n, start + per_file)):
                out.write(json.dumps(line(i)) + "\n")
        paths.append(path)
    return paths


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def pool_cpu(importer: object) -> float:
    """User+system CPU of the importer's worker processes (forkserver children are not
    ours, so getrusage does not see them): read from /proc before they end."""
    pool = getattr(importer, "_pool", None)
    total = 0.0
    for proc in getattr(pool, "_pool", []) if pool is not None else []:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def stages(path: Path, root: Path, keep_body: object) -> None:
    """CPU of each stage, in this process, on the first 2,000 lines of one file."""
    from probe.ooni_archive.files import measurement_lines
    from probe.ooni_archive.importer import Filters, _Job, convert_chunk

    lines = list(measurement_lines(path))[:2000]
    t = time.process_time()
    result = convert_chunk(_Job(str(path), lines, Filters(), keep_body, True))
    convert = (time.process_time() - t) / len(lines)
    store = Store.open(f"sqlite:///{root / 'stages.db'}")
    t = time.process_time()
    for start in range(0, len(result.prepared), 500):
        store.save_prepared(result.prepared[start : start + 500], source="ooni", changed="keep")
    write = (time.process_time() - t) / len(lines)
    store.close()
    ceiling = min(2 / (convert + write), 1 / write)
    print(f"in-process CPU per measurement: convert {1000 * convert:.3f} ms (worker), "
          f"write {1000 * write:.3f} ms (parent); idle 2-core ceiling {ceiling:,.0f}/s")  # fmt: skip


#: Real Web Connectivity measurements, read in place (never copied into the project).
REAL_FILES = (
    "ooni-explorer/explorer-web_connectivity.jsonl",
    "ooni-probe-cli/youtube.measurement.json",
    "ooni-probe-cli/cmd-minipipeline.measurement.json",
    "ooni-probe-cli/20230706183840.201925_PK_webconnectivity_19f5e0d803cbaea7.reconstructed.json",
)
REAL_COPIES = 400


def real_data() -> Path | None:
    repo = Path(__file__).resolve().parents[1]
    for shared in (repo.parent / "shared", repo.parents[1] / "shared"):
        if (shared / "data" / "real-data").is_dir():
            return shared / "data" / "real-data"
    return None


def _copy(item: Any, n: int) -> Any:
    """``item`` (a PreparedItem) under a new id: its record and index rows follow."""
    import dataclasses
    import hashlib

    from probe.store.record_codec import decode_record, encode_record

    new_id = f"{n:08d}{item.id[8:]}"
    record = decode_record(item.row["record"]).replace(f'"id":"{item.id}"', f'"id":"{new_id}"', 1)
    digest = hashlib.sha256(record.encode()).hexdigest()
    row = {**item.row, "id": new_id, "record": encode_record(record), "content_hash": digest}
    observations = {
        table: [{**o, "measurement_id": new_id} for o in rows] for table, rows in item.observations.items()
    }
    return dataclasses.replace(item, id=new_id, content_hash=digest, row=row, observations=observations)


def _db_size(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
    return path.stat().st_size


def real_storage(root: Path, keep_body: object) -> None:
    """Record text, stored record and database bytes per real OONI measurement: the
    seven of OONI Explorer's fixtures, then with the probe's own test cases (one of
    which holds over a hundred TCP connects, so its index rows weigh most)."""
    groups = (("OONI Explorer fixtures", REAL_FILES[:1]), ("with the probe test cases", REAL_FILES))
    for label, names in groups:
        _real_storage(root, keep_body, label, names)


def _real_storage(root: Path, keep_body: object, label: str, names: tuple[str, ...]) -> None:
    from probe.ooni_archive.files import measurement_lines
    from probe.ooni_archive.importer import Filters, _Job, convert_chunk
    from probe.store.record_codec import decode_record

    real = real_data()
    if real is None:
        print("real OONI measurements: ../shared/data/real-data is absent, not measured")
        return
    prepared = []
    for name in names:
        if (real / name).exists():
            lines = list(measurement_lines(real / name))
            prepared += convert_chunk(_Job(name, lines, Filters(), keep_body, True)).prepared
    if not prepared:
        print("real OONI measurements: none found")
        return
    text = sum(len(decode_record(p.row["record"]).encode()) for p in prepared) / len(prepared)
    stored = sum(len(p.row["record"]) for p in prepared) / len(prepared)
    empty, db = root / f"real-empty-{len(names)}.db", root / f"real-{len(names)}.db"
    Store.open(f"sqlite:///{empty}").close()
    store = Store.open(f"sqlite:///{db}")
    copies = [_copy(p, n) for n in range(REAL_COPIES) for p in prepared]
    for start in range(0, len(copies), 500):
        store.save_prepared(copies[start : start + 500], source="ooni", changed="keep")
    store.close()
    size, base = _db_size(db), _db_size(empty)
    observations = sum(len(rows) for p in prepared for rows in p.observations.values()) / len(prepared)
    print(f"real OONI measurements, {label} ({len(prepared)} from {real}, each stored {REAL_COPIES} times, "
          f"{observations:.1f} index rows each): "
          f"record text {text:,.0f} bytes, stored record {stored:,.0f} bytes (compressed), "
          f"database {(size - base) / len(copies):,.0f} bytes/measurement "
          f"({size / len(copies):,.0f} with the empty schema's {base:,} bytes)")  # fmt: skip


def tree_cpu(stop: list[bool], seen: dict[int, float]) -> None:
    """Sample the CPU of every descendant (the judging pool lives under the fork server,
    whose children getrusage never sees) until ``stop`` holds True; what a process had
    already used when sampling began is left out."""
    import psutil

    me = psutil.Process()
    base = {p.pid: sum(p.cpu_times()[:2]) for p in me.children(recursive=True)}
    while not stop:
        for proc in me.children(recursive=True):
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            seen[proc.pid] = times.user + times.system - base.get(proc.pid, 0.0)
        time.sleep(0.1)


def judge_db(db: Path) -> None:
    """Judging + episodes cold (cache emptied first) then warm, on the database ``db``."""
    from analysis.episodes import find_episodes
    from analysis.fingerprints import load_fingerprints
    from analysis.verdict_cache import cached_verdicts

    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM verdict_cache")
    fps = load_fingerprints()
    for label in ("cold (judging everything)", "warm (verdicts cached)"):
        import threading

        stop: list[bool] = []
        seen: dict[int, float] = {}
        sampler = threading.Thread(target=tree_cpu, args=(stop, seen), daemon=True)
        t, c = time.perf_counter(), time.process_time()
        sampler.start()
        verdicts = cached_verdicts(f"sqlite:///{db}", fingerprints=fps)
        judged, judged_cpu = time.perf_counter() - t, time.process_time() - c
        stop.append(True)
        sampler.join()
        kids = sum(seen.values())
        episodes = find_episodes(verdicts)
        print(f"verdicts + episodes {label}: {len(verdicts):,} verdicts in {judged:.1f} s "
              f"(CPU: this process {judged_cpu:.1f} s, worker processes and fork server {kids:.1f} s), "
              f"{len(episodes)} episodes in {time.perf_counter() - t - judged:.1f} s")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (this process): {peak:,.0f} MiB")
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def main() -> None:
    """``--keep DIR``: generate and import into DIR (kept); when DIR/fast.db already
    exists, skip straight to judging it (iterate on judging alone)."""
    argv = sys.argv[1:]
    keep = Path(argv[argv.index("--keep") + 1]) if "--keep" in argv else None
    args = [a for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or argv[i - 1] != "--keep")]
    n = int(args[0]) if args else 100_000
    judge = "--no-judge" not in sys.argv
    print(f"Machine: {machine()}")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if keep is not None and (keep / "fast.db").exists():
        print(f"reusing {keep / 'fast.db'} (generation and import skipped)")
        judge_db(keep / "fast.db")
        return
    from probe.cli._analysis import keep_body
    from probe.formats.ooni import read_ooni_path
    from probe.ooni_archive.importer import Importer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) if keep is None else keep
        root.mkdir(parents=True, exist_ok=True)
        (root / "in").mkdir()
        t = time.perf_counter()
        paths = write_files(root / "in", n)
        print(f"generated {n:,} measurements in {len(paths)} files: {time.perf_counter() - t:.1f} s")

        ref_n = 500
        ref_store = Store.open(f"sqlite:///{root / 'ref.db'}")
        t, c = time.perf_counter(), cpu()
        done = 0
        for result in read_ooni_path(paths[0]):
            if result.measurement is not None:
                ref_store.save_measurement(result.measurement, source="ooni")
                done += 1
            if done >= ref_n:
                break
        ref_wall = time.perf_counter() - t
        ref_rate = done / ref_wall
        print(f"reference (line by line): {done:,} in {ref_wall:.1f} s = {ref_rate:,.0f}/s, "
              f"CPU {1000 * (cpu() - c) / done:.2f} ms/measurement")  # fmt: skip
        ref_store.close()
        from probe.ooni_archive.importer import save_stream

        bulk_store = Store.open(f"sqlite:///{root / 'bulk.db'}")
        t, c = time.perf_counter(), cpu()
        converted = (r.measurement for r in read_ooni_path(paths[0]) if r.measurement is not None)
        bulk_done, _ = save_stream(bulk_store, (m for _, m in zip(range(2000), converted, strict=False)))
        bulk_wall = time.perf_counter() - t
        print(f"kuzot import-ooni FILE (one process, bulk writer): {bulk_done:,} in {bulk_wall:.1f} s = "
              f"{bulk_done / bulk_wall:,.0f}/s ({bulk_done / bulk_wall / ref_rate:.1f}x the reference), "
              f"CPU {1000 * (cpu() - c) / bulk_done:.2f} ms/measurement")  # fmt: skip
        bulk_store.close()

        stages(paths[0], root, keep_body)
        db = root / "fast.db"
        store = Store.open(f"sqlite:///{db}")
        t, c = time.perf_counter(), cpu()
        outcomes = []
        with Importer(store, keep_body=keep_body) as importer:
            importer.import_files(((p, str(p)) for p in paths), outcomes.append)
            workers_cpu = pool_cpu(importer)
        stored = sum(o.stored for o in outcomes)
        wall = time.perf_counter() - t
        rate = stored / wall
        per = 1000 * (cpu() - c + workers_cpu) / stored
        print(f"kuzot ooni import: {stored:,} in {wall:.1f} s = {rate:,.0f}/s "
              f"({rate / ref_rate:.1f}x the reference), CPU {per:.2f} ms/measurement "
              f"(workers {os.cpu_count()})")  # fmt: skip
        store.close()
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
        print(f"database: {db.stat().st_size / stored:,.0f} bytes/measurement")
        real_storage(root, keep_body)

        if not judge:
            print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            return
        judge_db(db)
        if keep is not None:
            import shutil

            shutil.rmtree(root / "in")


if __name__ == "__main__":
    main()

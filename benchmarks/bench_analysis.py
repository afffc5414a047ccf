"""Analysis at scale: millions of verdicts through episodes and order correlation.

Run on demand (not part of the test suite):

    python benchmarks/bench_analysis.py            # 1 and 10 million verdicts
    python benchmarks/bench_analysis.py 1000000    # one size
    python benchmarks/bench_analysis.py --judge 20000 1000000   # also judge 20,000 stored measurements

``--judge N`` stores a synthetic history of about N measurements (canaries included) in
a fresh SQLite database and, each in its own subprocess, times (a) the reference: a
bare decode loop over the same stored records (``SELECT record`` + ``json.loads``),
(b) the fast decoder alone (``Measurement.from_json``) and (c) judging them into the
verdict cache (:func:`analysis.verdict_cache.judge_stored`, in one process so that all
its CPU is counted), printing CPU per measurement (children included), peak RSS
and the ratios to the reference, and extrapolating to 10 million on two cores.

Each size runs in a fresh subprocess so its peak memory (max RSS) is its own.  The
verdicts are generated directly as a frame (every column, in the dtypes
:func:`analysis.verdict_cache.cached_verdicts` returns) with blocks of known extent,
because judging millions of stored measurements is a different cost, measured by the
probe benchmark's store figures.  Prints seconds per stage and the peak RSS, and checks
every planted block was found.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.episodes import find_episodes  # noqa: E402
from analysis.orders import ORDER_COLUMNS, correlate, orders_frame, parse_orders  # noqa: E402
from analysis.verdicts import RULES_VERSION, VERDICT_COLUMNS, compact_verdicts  # noqa: E402
from analysis.verdicts.verdict import id_dtype  # noqa: E402

DOMAINS = 200
NETWORKS = 25
START = pd.Timestamp("2022-01-01", tz="UTC")


#: The statuses the benchmark plants, in the sorted order a categorical keeps them, with
#: a rule, a reason and observation ids for each (one shared list per status, as
#: :func:`analysis.verdict_cache.cached_verdicts` shares equal lists).
STATUSES = ("accessible", "blocked", "down")
RULE_OF = ("http.consistent_with_control", "dns.nxdomain_vs_control", "control.also_failed")
REASON_OF = (
    "The page matches the control",
    "The name does not exist here but does in the control",
    "The control failed too",
)
OBSERVATIONS_OF = (["dns/0", "tcp/0", "http/0"], ["dns/0", "control/dns/0"], ["dns/0", "control/dns/0"])


def _uuid_shaped(n: int) -> list[str]:
    """Ids as long as the probe's (uuid4, 36 characters), distinct, so that the frame's
    id column costs what real measurement ids cost."""
    spread = 2654435761  # Knuth's multiplier: the last group varies like a random one
    return [f"{i:08x}-{(i >> 32) & 0xFFFF:04x}-4000-8000-{(i * spread) % (1 << 48):012x}" for i in range(n)]


def _category(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    """A categorical from codes into ``names``, its categories sorted (as
    ``pd.Categorical`` over the values makes them)."""
    return pd.Categorical.from_codes(codes, names).reorder_categories(sorted(names))


def make_verdicts(n: int, seed: int = 1) -> tuple[pd.DataFrame, int]:
    """``n`` verdicts over DOMAINS x NETWORKS series, one block planted in every third
    series, 1 % isolated noise, 1 % down.  Returns the frame and the number of blocks.

    The frame has every verdict column, in the dtypes
    :func:`analysis.verdict_cache.cached_verdicts` returns (categoricals, Arrow-backed
    ids when pyarrow is installed; :func:`analysis.verdicts.compact_verdicts`), built
    from integer codes so that no column of ten million Python strings exists even
    while generating."""
    rng = np.random.default_rng(seed)
    series = DOMAINS * NETWORKS
    per = n // series
    step = pd.Timedelta(days=730) / per
    t = START.value + (np.arange(per) * step.value).astype("int64")
    series_id = np.repeat(np.arange(series), per)
    position = np.tile(np.arange(per), series)
    blocked_series = (np.arange(series) % 3) == 0
    block_start = (per * rng.uniform(0.2, 0.5, series)).astype(int)
    block_len = (per * rng.uniform(0.05, 0.3, series)).astype(int)
    in_block = (
        blocked_series[series_id]
        & (position >= block_start[series_id])
        & (position < block_start[series_id] + block_len[series_id])
    )
    status = in_block.astype(np.int8)  # codes into STATUSES
    noise = rng.random(len(status)) < 0.01
    # isolated: never two noisy neighbours, never at a block edge
    noise &= ~np.roll(noise, 1)
    edge = (position == block_start[series_id]) | (
        position == block_start[series_id] + block_len[series_id] - 1
    )
    noise &= ~edge
    status[noise & in_block] = 0
    status[noise & ~in_block] = 1
    # an outage next to a lone error would hide that it is alone (neutral verdicts are skipped)
    down = (rng.random(len(status)) < 0.01) & ~noise & ~in_block & ~np.roll(noise, 1) & ~np.roll(noise, -1)
    status[down] = 2
    del in_block, noise, edge, down, position
    domains = [f"site{i}.kg" for i in range(DOMAINS)]
    observations = np.empty(len(OBSERVATIONS_OF), dtype=object)
    for code, ids in enumerate(OBSERVATIONS_OF):
        observations[code] = ids
    frame = pd.DataFrame(
        {
            "measurement_id": pd.array(_uuid_shaped(len(status)), dtype=id_dtype()),
            "url": _category(series_id // NETWORKS, [f"https://{d}/" for d in domains]),
            "domain": _category(series_id // NETWORKS, domains),
            "probe_asn": pd.array(64512 + series_id % NETWORKS, dtype="Int64"),
            "measured_at": pd.to_datetime(np.tile(t, series), utc=True).as_unit("us"),
            "status": _category(status, list(STATUSES)),
            "blocking": _category(np.where(status == 1, 0, -1), ["dns"]),
            "confirmed": False,
            "reason": _category(status, list(REASON_OF)),
            "rule_id": _category(status, list(RULE_OF)),
            "rules_version": _category(np.zeros(len(status), dtype=np.int8), [RULES_VERSION]),
            "observation_ids": observations[status],
        },
        columns=list(VERDICT_COLUMNS),
    )
    return compact_verdicts(frame), int(blocked_series.sum())


def frame_bytes(frame: pd.DataFrame) -> int:
    """The frame's memory: pandas' deep count, except that each distinct observation-id
    list is counted once (the rows share them; the deep count would add one per row)."""
    total = int(frame.drop(columns=["observation_ids"]).memory_usage(deep=True).sum())
    lists = {id(x): x for x in frame["observation_ids"].iloc[:: max(1, len(frame) // 100_000)]}
    shared = sum(sys.getsizeof(x) + sum(sys.getsizeof(i) for i in x) for x in lists.values())
    return total + 8 * len(frame) + shared


def orders_for_benchmark() -> pd.DataFrame:
    lines = [",".join(ORDER_COLUMNS)]
    for i in range(0, DOMAINS, 2):
        issued = date(2022, 1, 1) + timedelta(days=150 + i)
        lines.append(f"o{i},{issued},Ministry,2021 law,site{i}.kg,60,,,,")
    return orders_frame(parse_orders("\n".join(lines) + "\n"))


def _rss_mib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return 0


def _pyarrow_version() -> str | None:
    try:
        import pyarrow
    except ImportError:
        return None
    return str(pyarrow.__version__)


def run_one(n: int) -> dict[str, float | int]:
    t0 = time.perf_counter()
    verdicts, planted = make_verdicts(n)
    generate_peak = _rss_mib("VmHWM")
    # What generating freed goes back to the system first (glibc), so that the RSS
    # before episodes is the frame and the interpreter, as after cached_verdicts.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    frame_rss = _rss_mib()
    frame_size = frame_bytes(verdicts)
    # Reset the peak, so the next one is the episode scan's own (Linux: clear_refs 5).
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    t1, c1 = time.perf_counter(), time.process_time()
    episodes = find_episodes(verdicts)
    t2, c2 = time.perf_counter(), time.process_time()
    episodes_peak = _rss_mib("VmHWM")
    table = correlate(orders_for_benchmark(), episodes, verdicts)
    t3, c3 = time.perf_counter(), time.process_time()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "verdicts": len(verdicts),
        "generate_s": round(t1 - t0, 2),
        "episodes_s": round(t2 - t1, 2),
        "correlate_s": round(t3 - t2, 2),
        "episodes_cpu_s": round(c2 - c1, 2),
        "correlate_cpu_s": round(c3 - c2, 2),
        "episodes": len(episodes),
        "planted_blocks": planted,
        "correlation_rows": len(table),
        "peak_rss_mib": round(peak_kib / 1024),
        "frame_mib": round(frame_size / 2**20),
        "id_dtype": str(verdicts["measurement_id"].dtype.storage),
        "pyarrow": _pyarrow_version(),
        "rss_before_episodes_mib": frame_rss,
        "generate_peak_mib": generate_peak,
        "peak_through_episodes_mib": episodes_peak,
    }


def make_store(path: Path, n: int) -> int:
    """A SQLite database holding about ``n`` synthetic measurements; returns how many."""
    from datetime import UTC, datetime

    from analysis.synthetic import BlockTruth, HistorySpec, generate_history
    from probe.store import Store

    asns = {8449: "ElCat", 12997: "Kyrgyztelecom", 50223: "MegaCom", 41329: "Beeline"}
    domains = [f"site{i}.kg" for i in range(20)]
    runs = max(1, n // (len(asns) * (len(domains) + 1)))
    start = datetime(2022, 1, 1, tzinfo=UTC)
    spec = HistorySpec(
        start=start,
        end=start + runs * timedelta(hours=6),
        asns=asns,
        domains=domains,
        blocks=[BlockTruth("site0.kg", 8449, start + timedelta(days=runs / 12), None)],
    )
    store = Store.open(f"sqlite:///{path}")
    count = store.save_measurements(generate_history(spec), source="bench", chunk=2000)
    store.close()
    return count


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def judge_child(mode: str, db: str, limit: int | None = None) -> dict[str, float | int]:
    import sqlite3

    from analysis.fingerprints import load_fingerprints
    from analysis.verdict_cache import judge_stored
    from probe.records import Measurement
    from probe.store.record_codec import decode_record

    # Imports and the fingerprints are loaded before the clock starts: start-up (about a
    # second of CPU for pandas and SQLAlchemy) is not a per-record cost.
    fingerprints = load_fingerprints()
    t, c = time.perf_counter(), _cpu()
    if mode == "reference":
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT record FROM measurements ORDER BY rowid LIMIT ?", (limit or -1,))
            n = sum(1 for (r,) in rows if json.loads(decode_record(r)))
    elif mode == "from_json":
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT record FROM measurements")
            n = sum(1 for (r,) in rows if Measurement.from_json(decode_record(r)))
    elif mode == "pool":
        n, _ = judge_stored(f"sqlite:///{db}", fingerprints=fingerprints)  # the default pool: one per core
    else:
        # One process, so that its CPU is all counted (forkserver workers are not our
        # children); the 2-core figure assumes the worker pool scales, as chunks share nothing.
        n, _ = judge_stored(f"sqlite:///{db}", fingerprints=fingerprints, workers=1)
    wall, cpu = time.perf_counter() - t, _cpu() - c
    usage = resource.getrusage
    peak = max(usage(resource.RUSAGE_SELF).ru_maxrss, usage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return {
        "n": n,
        "wall_s": round(wall, 2),
        "cpu_ms": 1000 * cpu / max(n, 1),
        "peak_rss_mib": round(peak / 1024),
    }


def judge_benchmark(n: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        t = time.perf_counter()
        stored = make_store(db, n)
        print(f"stored {stored:,} synthetic measurements in {time.perf_counter() - t:.1f} s")
        results = {}
        for mode in ("reference", "from_json", "judge"):
            out = subprocess.run(
                [sys.executable, __file__, "--judge-child", mode, str(db)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[mode] = json.loads(out.stdout)
        ref = results["reference"]["cpu_ms"]
        print(f"{'stage':<30} | records | wall s | CPU ms/record | x reference | peak RSS MiB")
        for mode, label in (
            ("reference", "reference: SELECT + json.loads"),
            ("from_json", "Measurement.from_json"),
            ("judge", "judge_stored (decode+judge+cache)"),
        ):
            r = results[mode]
            print(f"{label:<30} | {r['n']:>7,} | {r['wall_s']:>6} | {r['cpu_ms']:>13.3f} | "
                  f"{r['cpu_ms'] / ref:>11.2f} | {r['peak_rss_mib']:>12}")  # fmt: skip
        per = results["judge"]["cpu_ms"]
        minutes = per * 1e7 / 2 / 1000 / 60
        print(f"extrapolated: 10,000,000 stored measurements on 2 cores = {minutes:.1f} min "
              f"(CPU-bound, {per:.3f} ms each); memory bounded by the judging window")  # fmt: skip


def clone_store(path: Path, total: int) -> int:
    """Grow the database at ``path`` to about ``total`` measurements by cloning its rows.

    Why clones: generating 10 M synthetic measurements one by one takes about an hour
    here (0.4 ms each), longer than the judging it is for.  A clone keeps the record's
    content (so judging costs the same) with a new measurement id and a new run id
    (each base run becomes one new run per round, with its canaries), written into the
    record text as well as the columns, so every clone gets its own verdict.  Clones
    have no observation index (judging reads only records).  Returns the row count."""
    import hashlib
    import sqlite3

    from probe.store.record_codec import decode_record, encode_record

    columns = (
        "id, run_id, url, domain, role, category_code, probe_asn, probe_cc, started_at, runtime, source, "
        "content_hash, record, signature, key_id, public_key, bytes_used, stored_at, uploaded_at"
    )
    insert = f"INSERT INTO measurements ({columns}) VALUES ({', '.join('?' * 19)})"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        base = conn.execute("SELECT count(*) FROM measurements").fetchone()[0]
        rounds = max(0, -(-total // base) - 1)
        for k in range(1, rounds + 1):
            prefix = f"z{k:03x}"  # not hex: a base id may begin with any four hex digits
            batch = []
            # A second connection reads the base rows from its own snapshot (WAL), apart
            # from the rows this round inserts.
            with contextlib.closing(sqlite3.connect(path)) as source:
                base_rows = source.execute(f"SELECT {columns} FROM measurements ORDER BY rowid LIMIT {base}")
                for row in base_rows:
                    old_id, old_run = row[0], row[1]
                    new_id = prefix + old_id[4:]
                    new_run = prefix + old_run[4:] if old_run else None
                    text = decode_record(row[12]).replace(old_id, new_id)
                    if old_run and new_run:
                        text = text.replace(old_run, new_run)
                    digest = hashlib.sha256(text.encode()).hexdigest()
                    batch.append((new_id, new_run, *row[2:11], digest, encode_record(text), *row[13:]))
                    if len(batch) == 20_000:
                        conn.executemany(insert, batch)
                        batch.clear()
            conn.executemany(insert, batch)
            conn.commit()
            print(f"  round {k}/{rounds}: {base * (k + 1):,} rows", file=sys.stderr, flush=True)
        return conn.execute("SELECT count(*) FROM measurements").fetchone()[0]


def judge_at_scale(total: int, base: int, keep: Path | None) -> None:
    """Judge ``total`` stored measurements with the real worker pool, and time it.

    The reference (``SELECT record`` + decode + ``json.loads``) runs over the first
    ``base`` rows only: over 10 M it would itself take minutes.  Wall time and the peak
    RSS summed over the judging process and its workers (sampled every half second)."""
    import tempfile

    import psutil

    with tempfile.TemporaryDirectory(dir=keep.parent if keep else None) as tmp:
        db = keep if keep is not None else Path(tmp) / "bench.db"
        if not db.exists():
            t = time.perf_counter()
            made = make_store(db, base)
            print(f"generated {made:,} synthetic measurements in {time.perf_counter() - t:.0f} s")
            t = time.perf_counter()
            rows = clone_store(db, total)
            print(f"cloned to {rows:,} rows in {time.perf_counter() - t:.0f} s "
                  f"({db.stat().st_size / 2**30:.1f} GiB)")  # fmt: skip
        else:
            import sqlite3

            with contextlib.closing(sqlite3.connect(db)) as conn:
                conn.execute("DELETE FROM verdict_cache")
                conn.commit()
                rows = conn.execute("SELECT count(*) FROM measurements").fetchone()[0]
            print(f"reusing {db} ({rows:,} rows, verdict cache emptied)")
        ref = subprocess.run(
            [sys.executable, __file__, "--judge-child", "reference", str(db), str(min(base, rows))],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        reference = json.loads(ref.stdout)
        started = time.perf_counter()
        command = [sys.executable, __file__, "--judge-child", "pool", str(db)]
        child = psutil.Popen(command, stdout=subprocess.PIPE)
        peak = 0
        cpu: dict[int, float] = {}
        while child.poll() is None:
            with contextlib.suppress(psutil.Error):
                tree = [child, *child.children(recursive=True)]
                rss = 0
                for proc in tree:
                    with contextlib.suppress(psutil.Error):
                        rss += proc.memory_info().rss
                        times = proc.cpu_times()
                        cpu[proc.pid] = times.user + times.system
                peak = max(peak, rss)
            time.sleep(0.5)
        wall = time.perf_counter() - started
        assert child.stdout is not None
        judged = json.loads(child.stdout.read())
        if child.returncode != 0:
            raise SystemExit("the judging process failed")
        per = 1000 * sum(cpu.values()) / max(judged["n"], 1)
        print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")
        print("stage | records | wall s | CPU ms/record | x reference | peak RSS MiB")
        ref_n, ref_ms, judged_n, cores = reference["n"], reference["cpu_ms"], judged["n"], os.cpu_count()
        print(f"reference: SELECT + decode + json.loads (first {ref_n:,}) | {ref_n:,} | "
              f"{reference['wall_s']} | {ref_ms:.3f} | 1.00 | {reference['peak_rss_mib']}")  # fmt: skip
        print(f"judge_stored, worker pool ({cores} workers) | {judged_n:,} | {wall:.0f} | {per:.3f} | "
              f"{per / ref_ms:.2f} | {peak / 2**20:.0f} (process tree, sampled)")  # fmt: skip
        print(f"judged {judged_n:,} stored measurements in {wall / 60:.1f} min wall on {cores} cores")
        parent = cpu.get(child.pid, 0.0)
        print(f"CPU: the reading and caching process {parent:.0f} s, the judging workers "
              f"{sum(cpu.values()) - parent:.0f} s")  # fmt: skip


def _header() -> str:
    return (
        f"# {platform.node()} · {platform.machine()} · {os.cpu_count()} CPUs ({cpu_model()}) · "
        f"Python {platform.python_version()}"
    )


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[1] == "--child":
        print(json.dumps(run_one(int(sys.stdin.read()))))
        return 0
    if len(argv) in (4, 5) and argv[1] == "--judge-child":
        print(json.dumps(judge_child(argv[2], argv[3], int(argv[4]) if len(argv) == 5 else None)))
        return 0
    args = argv[1:]
    if args[:1] == ["--judge-at-scale"]:
        # --judge-at-scale TOTAL [BASE] [--keep FILE]: clone BASE generated rows to TOTAL, judge all.
        keep = Path(args[args.index("--keep") + 1]) if "--keep" in args else None
        sizes = [int(a) for a in args[1:] if a.isdigit()]
        print(_header())
        judge_at_scale(sizes[0], sizes[1] if len(sizes) > 1 else 250_000, keep)
        return 0
    if args[:1] == ["--judge"]:
        print(_header())
        judge_benchmark(int(args[1]))
        args = args[2:]
        if not args:
            return 0
    sizes = [int(a) for a in args] or [1_000_000, 10_000_000]
    print(f"{_header()} · pandas {pd.__version__}")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(
        "frame: every verdict column in cached_verdicts' dtypes; 'peak through episodes' is the whole "
          "process's peak RSS (frame included) from the end of generating to the end of episodes"
    )  # fmt: skip
    print("verdicts   | generate s | episodes s (CPU) | correlate s (CPU) | episodes (planted) | "
          "RSS MiB | frame MiB | peak generating | RSS before episodes | peak through episodes | "
          "ids (pyarrow)")  # fmt: skip
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child"], input=str(n), capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout)
        print(
            f"{r['verdicts']:>10,} | {r['generate_s']:>10} | {r['episodes_s']:>7} ({r['episodes_cpu_s']}) | "
            f"{r['correlate_s']:>8} ({r['correlate_cpu_s']}) | "
            f"{r['episodes']:>8} ({r['planted_blocks']}) | {r['peak_rss_mib']:>12} | {r['frame_mib']} | "
            f"{r['generate_peak_mib']} | {r['rss_before_episodes_mib']} | {r['peak_through_episodes_mib']} | "
            f"{r['id_dtype']} ({r['pyarrow'] or 'not installed'})"
        )
        print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        if r["episodes"] != r["planted_blocks"]:
            print("  !! episodes differ from the planted blocks", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

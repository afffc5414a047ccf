"""Analysis at scale: millions of verdicts through episodes and order correlation.

Run on demand (not part of the test suite):

    python benchmarks/bench_analysis.py            # 1 and 10 million verdicts
    python benchmarks/bench_analysis.py 1000000    # one size

Each size runs in a fresh subprocess so its peak memory (max RSS) is its own.  The
verdicts are generated directly as a frame (the shape :func:`analysis.verdicts.verdicts_frame`
returns) with blocks of known extent, because judging millions of stored measurements
is a different cost, measured by the probe benchmark's store figures.  Prints seconds
per stage and the peak RSS, and checks every planted block was found.
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.episodes import find_episodes  # noqa: E402
from analysis.orders import ORDER_COLUMNS, correlate, orders_frame, parse_orders  # noqa: E402

DOMAINS = 200
NETWORKS = 25
START = pd.Timestamp("2022-01-01", tz="UTC")


def make_verdicts(n: int, seed: int = 1) -> tuple[pd.DataFrame, int]:
    """``n`` verdicts over DOMAINS x NETWORKS series, one block planted in every third
    series, 1 % isolated noise, 1 % down.  Returns the frame and the number of blocks."""
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
    status = np.where(in_block, "blocked", "accessible").astype(object)
    noise = rng.random(len(status)) < 0.01
    # isolated: never two noisy neighbours, never at a block edge
    noise &= ~np.roll(noise, 1)
    edge = (position == block_start[series_id]) | (
        position == block_start[series_id] + block_len[series_id] - 1
    )
    noise &= ~edge
    status[noise & in_block] = "accessible"
    status[noise & ~in_block] = "blocked"
    # an outage next to a lone error would hide that it is alone (neutral verdicts are skipped)
    down = (rng.random(len(status)) < 0.01) & ~noise & ~in_block & ~np.roll(noise, 1) & ~np.roll(noise, -1)
    status[down] = "down"
    domains = np.array([f"site{i}.kg" for i in range(DOMAINS)], dtype=object)
    frame = pd.DataFrame(
        {
            "measurement_id": pd.Series(np.arange(len(status))).astype(str).to_numpy(),
            "domain": domains[series_id // NETWORKS],
            "probe_asn": pd.array(64512 + series_id % NETWORKS, dtype="Int64"),
            "measured_at": pd.to_datetime(np.tile(t, series), utc=True),
            "status": status,
            "blocking": np.where(status == "blocked", "dns", None),
            "confirmed": False,
        }
    )
    return frame, int(blocked_series.sum())


def orders_for_benchmark() -> pd.DataFrame:
    lines = [",".join(ORDER_COLUMNS)]
    for i in range(0, DOMAINS, 2):
        issued = date(2022, 1, 1) + timedelta(days=150 + i)
        lines.append(f"o{i},{issued},Ministry,2021 law,site{i}.kg,60,,,,")
    return orders_frame(parse_orders("\n".join(lines) + "\n"))


def run_one(n: int) -> dict[str, float | int]:
    t0 = time.perf_counter()
    verdicts, planted = make_verdicts(n)
    t1 = time.perf_counter()
    episodes = find_episodes(verdicts)
    t2 = time.perf_counter()
    table = correlate(orders_for_benchmark(), episodes, verdicts)
    t3 = time.perf_counter()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "verdicts": len(verdicts),
        "generate_s": round(t1 - t0, 2),
        "episodes_s": round(t2 - t1, 2),
        "correlate_s": round(t3 - t2, 2),
        "episodes": len(episodes),
        "planted_blocks": planted,
        "correlation_rows": len(table),
        "peak_rss_mib": round(peak_kib / 1024),
    }


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[1] == "--child":
        print(json.dumps(run_one(int(sys.stdin.read()))))
        return 0
    sizes = [int(a) for a in argv[1:]] or [1_000_000, 10_000_000]
    print(
        f"# {platform.node()} · {platform.machine()} · {os.cpu_count()} CPUs · "
        f"Python {platform.python_version()} · pandas {pd.__version__}"
    )
    print("verdicts   | generate s | episodes s | correlate s | episodes (planted) | peak RSS MiB")
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child"], input=str(n), capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout)
        print(
            f"{r['verdicts']:>10,} | {r['generate_s']:>10} | {r['episodes_s']:>10} | "
            f"{r['correlate_s']:>11} | "
            f"{r['episodes']:>8} ({r['planted_blocks']}) | {r['peak_rss_mib']:>12}"
        )
        if r["episodes"] != r["planted_blocks"]:
            print("  !! episodes differ from the planted blocks", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

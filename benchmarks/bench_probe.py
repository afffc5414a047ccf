"""Probe throughput through the namespace lab: 1,000 domains behind 50 ms of added RTT.

Run on demand, as root (the lab needs ip netns)::

    /work/venv/bin/python benchmarks/bench_probe.py [--targets 1000] [--sample 50] [--rtt-ms 50]

Why this shape: a volunteer's run is bounded by round trips, not CPU, so the figure
that matters is how close a run gets to the floor the RTT sets for its concurrency,
and what it costs in CPU and memory on a small machine.

The floor, per HTTPS measurement (see ``probe/measure.py``): DNS (the system resolver
and UDP A/AAAA in parallel) is 1 RTT, after which the UDP query keeps listening for
injected replies for ``--dns-window`` (0.3 s); then TCP (1 RTT) and TLS 1.3 (1 RTT) for
the TLS observation; then the HTTP fetch opens its own connection: TCP 1 + TLS 1 + the
request 1.  So ``L = 6 * RTT + dns_window`` and a run of N targets at concurrency c
cannot finish before ``ceil(N / c) * L``.  The control helper is left out (its work
happens on another machine); canaries too.

Concurrency 1 runs on ``--sample`` targets only and is extrapolated linearly to N.
The section is appended to ``benchmarks/RESULTS.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from probe.lab.netns import NetnsLab, environment_problem  # noqa: E402
from probe.lab.scenarios import LabScenario, scenario_from_dict  # noqa: E402

DNS_WINDOW = 0.3


@dataclass
class Figures:
    concurrency: int
    targets: int
    wall: float
    cpu: float
    max_rss_mib: float
    failed: int

    def floor(self, rtt: float) -> float:
        return math.ceil(self.targets / self.concurrency) * (6 * rtt + DNS_WINDOW)


def bench_scenario(n: int, rtt_ms: int) -> LabScenario:
    """N honest domains under one parent, on 8 shared addresses, one wildcard certificate."""
    return scenario_from_dict(
        {
            "name": "bench",
            "shared_addresses": 8,
            "wildcard_parent": "bench.kg",
            "link": {"delay_ms": rtt_ms},
            "site": [{"domain": f"s{i:04d}.bench.kg"} for i in range(n)],
        }
    )


def measure(lab: NetnsLab, urls: list[str], concurrency: int, workdir: Path) -> Figures:
    db = workdir / f"c{concurrency}-{len(urls)}.db"
    args = ["--db", f"sqlite:///{db}", "--quiet", "--no-canaries", "--concurrency", str(concurrency)]
    args += ["--dns-window", str(DNS_WINDOW), "--timeout", "5"]
    for url in urls:
        args += ["--url", url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = lab.exec_probe(args, control=False, timeout=3600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"probe failed: {result.stderr[-2000:]}")
    shown = subprocess.run(
        [sys.executable, "-m", "probe", "show", "--db", f"sqlite:///{db}", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    measurements = [m for m in json.loads(shown.stdout) if m["role"] == "target"]
    failed = sum(1 for m in measurements if any(m["failures"].values()))
    if len(measurements) != len(urls):
        raise SystemExit(f"expected {len(urls)} measurements, found {len(measurements)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Figures(concurrency, len(urls), wall, cpu, after.ru_maxrss / 1024, failed)


def report(figures: list[Figures], n: int, rtt_ms: int, sample: int, up_seconds: float) -> str:
    rtt = rtt_ms / 1000
    rows = []
    for f in figures:
        scale = n / f.targets
        extrapolated = " (extrapolated)" if scale != 1 else ""
        rows.append(
            f"| {f.concurrency} | {f.targets} | {f.wall:.1f} | {f.targets / f.wall:.1f} | "
            f"{f.floor(rtt):.1f} | {f.wall / f.floor(rtt):.2f} | {f.wall * scale:.0f}{extrapolated} | "
            f"{1000 * f.cpu / f.targets:.1f} | {f.max_rss_mib:.0f} | {f.failed} |"
        )
    return "\n".join(
        [
            f"## Probe throughput through the namespace lab ({datetime.now(UTC):%Y-%m-%d})",
            "",
            f"Machine: {os.cpu_count()} CPUs (nproc), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}.  `benchmarks/bench_probe.py`: {n} distinct domains "
            f"served by one nginx (8 addresses, a wildcard certificate) behind the lab ISP, "
            f"{rtt_ms} ms added RTT on the volunteer's uplink (the lab's TUN delay line; this kernel has no "
            f"netem), no control helper, no canaries, `--dns-window {DNS_WINDOW}`.  Lab up in "
            f"{up_seconds:.1f} s (including {n} server blocks).",
            "",
            f"Floor per measurement L = 6 RTT + dns_window = {6 * rtt + DNS_WINDOW:.2f} s "
            "(DNS 1, TCP 1 + TLS 1 for the TLS observation, TCP 1 + TLS 1 + request 1 for the fetch, "
            "which opens its own connection); a run cannot beat ceil(N / c) x L.",
            "",
            "| concurrency | targets | wall s | measurements/s | floor s | wall/floor | "
            f"wall for {n} s | CPU ms/measurement | peak RSS MiB | with a failure |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Concurrency 1 was run on {sample} targets and extrapolated linearly to {n}.  CPU is the probe "
            "process's user+system time (getrusage of children), not the daemons'; peak RSS is the largest "
            "child so far (the probe).",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=50, help="targets for the concurrency-1 run")
    parser.add_argument("--rtt-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    problem = environment_problem()
    if problem:
        print(f"bench_probe: {problem}", file=sys.stderr)
        return 2
    scenario = bench_scenario(args.targets, args.rtt_ms)
    urls = [site.url for site in scenario.sites]
    with tempfile.TemporaryDirectory(prefix="kuzot-bench-") as tmp:
        started = time.perf_counter()
        with NetnsLab(scenario, timeout=5.0) as lab:
            up_seconds = time.perf_counter() - started
            figures = [measure(lab, urls[: args.sample], 1, Path(tmp))]
            print(figures[-1], file=sys.stderr)
            for concurrency in args.concurrency:
                figures.append(measure(lab, urls, concurrency, Path(tmp)))
                print(figures[-1], file=sys.stderr)
    text = report(figures, args.targets, args.rtt_ms, args.sample, up_seconds)
    print(text)
    if not args.no_write:
        with args.results.open("a", encoding="utf-8") as out:
            out.write(("\n" if args.results.exists() and args.results.stat().st_size else "") + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

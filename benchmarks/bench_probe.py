"""Probe throughput through the namespace lab: 1,000 domains behind 50 ms of added RTT.

Run on demand, as root (the lab needs ip netns)::

    /work/venv/bin/python benchmarks/bench_probe.py [--targets 1000] [--sample 50] [--rtt-ms 50] \
        [--concurrency 16 64] [--workers 1 2] [--python /path/to/venv/bin/python]

``--python`` runs the probe with another interpreter, e.g. a venv holding only the built
wheel (``pip install dist/kuzot-*.whl``), as a volunteer installs it: the development
venv also holds the test extras, and with them httpx imports its command-line tool
(click, rich), about 70 ms that every probe process and worker pays only there.

Why this shape: a volunteer's run is bounded by round trips, not CPU, so the figure
that matters is how close a run gets to the floor the RTT sets for its concurrency,
and what it costs in CPU and memory on a small machine.

The floor, per HTTPS measurement (see ``probe/measure.py``): DNS (the system resolver
and UDP A/AAAA in parallel) is 1 RTT; then TCP (1 RTT) and TLS 1.3 (1 RTT) for the TLS
observation, and the HTTP request (1 RTT) over that same connection.  Meanwhile the UDP
query keeps listening for injected replies for ``--dns-window`` (0.3 s) from its first
reply, and the measurement is saved only once that window has closed.  So
``L = max(4 * RTT, 1 * RTT + dns_window)`` and a run of N targets at concurrency c
cannot finish before ``ceil(N / c) * L``.  The control helper is left out (its work happens on
another machine), and so are the DoH control (``--doh-control off``: nothing in the
namespace lab answers it, and every attempt would fail there) and the canaries.

References, in the same run and process tree: the floor, with the RTT as configured
and as measured (the median TCP connect time the probe itself recorded), and
concurrency 1 (``--sample`` targets, extrapolated linearly to N), against which each
concurrency's speed-up is given beside its ideal, c.  CPU time and peak RSS are the
probe process's own (``wait4`` on it), not the lab daemons'.  The section is appended
to ``benchmarks/RESULTS.md`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine import machine  # noqa: E402

from probe.lab.netns import NetnsLab, environment_problem  # noqa: E402
from probe.lab.scenarios import LabScenario, scenario_from_dict  # noqa: E402

DNS_WINDOW = 0.3
#: Round trips per https measurement (see the docstring) ...
FLOOR_RTTS = 4
#: ... of which the DNS window overlaps all but the first.
DNS_RTTS = 1


def floor_per_measurement(rtt: float) -> float:
    """L: the DNS window runs alongside TCP, TLS and HTTP (probe/measure.py)."""
    return max(FLOOR_RTTS * rtt, DNS_RTTS * rtt + DNS_WINDOW)


@dataclass
class Figures:
    concurrency: int
    workers: int
    targets: int
    wall: float
    cpu: float
    max_rss_mib: float
    failed: int
    connect_rtt: float  # median TCP connect time the probe recorded, seconds
    #: The wall time in three parts: launch to the first measurement's start, the first
    #: start to the last end, the last end to the process's exit (from the records' times).
    start: float = math.nan
    measuring: float = math.nan
    exit: float = math.nan

    def floor(self, rtt: float) -> float:
        return math.ceil(self.targets / self.concurrency) * floor_per_measurement(rtt)

    @property
    def rate(self) -> float:
        return self.targets / self.wall


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


def measure(
    lab: NetnsLab,
    urls: list[str],
    concurrency: int,
    workdir: Path,
    workers: int = 1,
    python: str | None = None,
) -> Figures:
    # A repeated setting (``--concurrency 64 64``) gets its own database: sharing one
    # would count the earlier run's measurements as this run's.
    stem = f"c{concurrency}-w{workers}-{len(urls)}"
    db = workdir / f"{stem}.db"
    repeat = 1
    while db.exists():
        repeat += 1
        db = workdir / f"{stem}-r{repeat}.db"
    args = ["--db", f"sqlite:///{db}", "--quiet", "--no-canaries", "--concurrency", str(concurrency)]
    args += ["--workers", str(workers)] if workers > 1 else []
    args += ["--dns-window", str(DNS_WINDOW), "--timeout", "5", "--doh-control", "off"]
    for url in urls:
        args += ["--url", url]
    # ``ip netns exec`` execs the probe in place, so wait4 on this child gives the
    # probe's own CPU time and peak RSS.
    env = {**os.environ, "KUZOT_ACCEPT_RISKS": "1"}
    command = lab.probe_command(args, control=False)
    if python is not None:
        command[command.index(sys.executable)] = python
    started, launched = time.perf_counter(), time.time()
    with subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=lab.state_dir,
    ) as child:
        assert child.stderr is not None
        stderr = child.stderr.read()  # the probe is --quiet: little to read
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    wall, ended = time.perf_counter() - started, time.time()
    if child.returncode != 0:
        raise SystemExit(f"probe failed: {stderr[-2000:].decode(errors='replace')}")
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
    connects = [t["finished"] - t["started"] for m in measurements for t in m["tcp"] if t["failure"] is None]
    cpu = usage.ru_utime + usage.ru_stime
    rtt = statistics.median(connects) if connects else math.nan
    starts = [datetime.fromisoformat(m["started_at"]).timestamp() for m in measurements]
    ends = [start + m["runtime"] for start, m in zip(starts, measurements, strict=True)]
    phases = (min(starts) - launched, max(ends) - min(starts), ended - max(ends))
    return Figures(concurrency, workers, len(urls), wall, cpu, usage.ru_maxrss / 1024, failed, rtt, *phases)


def report(
    figures: list[Figures], n: int, rtt_ms: int, sample: int, up_seconds: float, commit: str, python: str
) -> str:
    rtt = rtt_ms / 1000
    reference = figures[0]  # concurrency 1
    measured_rtt = statistics.median(f.connect_rtt for f in figures)
    rows = []
    for f in figures:
        scale = n / f.targets
        extrapolated = " (extrapolated)" if scale != 1 else ""
        rows.append(
            f"| {f.concurrency} | {f.workers} | {f.targets} | {f.wall:.1f} | {f.rate:.1f} | "
            f"{f.floor(rtt):.1f} | {f.wall / f.floor(rtt):.2f} | {f.wall / f.floor(measured_rtt):.2f} | "
            f"{f.rate / reference.rate:.1f} of {f.concurrency} | {f.wall * scale:.0f}{extrapolated} | "
            f"{1000 * f.cpu / f.targets:.1f} | {f.max_rss_mib:.0f} | {f.failed} | "
            f"{f.start:.2f} / {f.measuring:.2f} ({f.measuring / f.floor(rtt):.2f}) / {f.exit:.2f} |"
        )
    per = floor_per_measurement(rtt)
    return "\n".join(
        [
            f"## Probe throughput through the namespace lab ({datetime.now(UTC):%Y-%m-%d}, commit {commit})",
            "",
            f"Machine: {machine()}, load average {_load()} at the end.  "
            f"The probe ran with {python}.  "
            f"`benchmarks/bench_probe.py`: {n} distinct domains "
            f"served by one nginx (8 addresses, a wildcard certificate) behind the lab ISP, "
            f"{rtt_ms} ms added RTT on the volunteer's uplink (the lab's TUN delay line; this kernel has no "
            f"netem), no control helper, `--doh-control off`, no canaries, `--dns-window {DNS_WINDOW}`.  "
            f"Lab up in {up_seconds:.1f} s (including {n} server blocks).",
            "",
            f"Floor per measurement L = max({FLOOR_RTTS} RTT, {DNS_RTTS} RTT + dns_window) = {per:.2f} s "
            "(DNS 1, TCP 1, TLS 1, the request 1 over the TLS observation's own connection; the DNS "
            "window runs from the first reply alongside them); a run cannot beat ceil(N / c) x L.  "
            f"Measured RTT (median TCP connect the probe recorded): {1000 * measured_rtt:.1f} ms.",
            "",
            "| concurrency | workers | targets | wall s | measurements/s | floor s | wall/floor "
            "| wall/floor (measured RTT) | "
            f"speed-up vs c=1 | wall for {n} s | CPU ms/measurement | peak RSS MiB | with a failure "
            "| start / measuring (/ floor) / exit s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Concurrency 1 (the reference) was run on {sample} targets and extrapolated linearly to {n}.  "
            "CPU and peak RSS are the probe process's own (wait4), start-up included; with workers "
            "(`kuzot run --workers`), CPU includes the worker processes' and peak RSS is the largest "
            "single process's (wait4 counts reaped children so).  The last column splits the wall time "
            "by the records' own clock: launch to the first measurement's start (interpreter, imports, "
            "database, run row), the first start to the last end (with that span's ratio to the floor), "
            "and the last end to the exit (the last commit, the run row closed, workers reaped).",
            "",
        ]
    )


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False
    )
    # RESULTS.md itself does not count: the sections a series of runs appends make it
    # differ from HEAD, and the code measured is still HEAD's.
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", ".", ":(exclude)benchmarks/RESULTS.md"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    return (done.stdout.strip() or "unknown") + ("+dirty" if dirty.stdout.strip() else "")


def compile_bytecode() -> None:
    """Bytecode for the checkout's own packages, as an installed wheel has it (pip compiles
    at install): without it, under ``PYTHONDONTWRITEBYTECODE`` every probe start would
    compile each module again, a cost no volunteer pays."""
    for package in ("probe", "analysis"):
        compileall.compile_dir(REPO / package, quiet=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=50, help="targets for the concurrency-1 run")
    parser.add_argument("--rtt-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="kuzot run --workers for each concurrency"
    )
    parser.add_argument("--python", help="the interpreter that runs the probe (default: this one)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    problem = environment_problem()
    if problem:
        print(f"bench_probe: {problem}", file=sys.stderr)
        return 2
    compile_bytecode()
    scenario = bench_scenario(args.targets, args.rtt_ms)
    urls = [site.url for site in scenario.sites]
    with tempfile.TemporaryDirectory(prefix="kuzot-bench-") as tmp:
        started = time.perf_counter()
        with NetnsLab(scenario, timeout=5.0) as lab:
            up_seconds = time.perf_counter() - started
            figures = [measure(lab, urls[: args.sample], 1, Path(tmp), python=args.python)]
            print(figures[-1], file=sys.stderr)
            for workers in args.workers:
                for concurrency in args.concurrency:
                    figures.append(measure(lab, urls, concurrency, Path(tmp), workers, args.python))
                    print(figures[-1], file=sys.stderr)
    interpreter = f"`{args.python}`" if args.python else "this checkout's interpreter (development venv)"
    text = report(figures, args.targets, args.rtt_ms, args.sample, up_seconds, _commit(), interpreter)
    print(text)
    if not args.no_write:
        with args.results.open("a", encoding="utf-8") as out:
            out.write(("\n" if args.results.exists() and args.results.stat().st_size else "") + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

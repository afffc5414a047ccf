"""What SQLite's synchronous=FULL costs the probe: one commit per measurement.

Run on demand::

    .venv/bin/python benchmarks/bench_store_sync.py [--measurements 300] [--no-write]

Why: the README promises that a power cut keeps every measurement already done, which
needs each commit's WAL frames on disk before the commit returns (``synchronous=FULL``;
``NORMAL`` syncs only at checkpoints).  A run commits once per measurement, as
``probe.run`` does, so the figure is the time of one ``save_measurement`` with each
setting; the reference is ``NORMAL``, run in the same process on the same disk.  A
measurement itself takes seconds (round trips and timeouts), so milliseconds here are
what matters to compare against.  The section is appended to ``benchmarks/RESULTS.md``
unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import machine
from sqlalchemy import event

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "tests"))

from test_store import make_measurement  # noqa: E402

from probe.records import Measurement  # noqa: E402
from probe.store import Store  # noqa: E402


def _measurement() -> Measurement:
    """The store tests' measurement (one fixture, not a copy), with a typical page's
    first 64 KiB, roughly, as its body sample."""
    m = make_measurement()
    m.http[0].failure = None
    m.http[0].status_code = 200
    m.http[0].body_sample = os.urandom(48 * 1024)
    return m


def _time_saves(directory: Path, synchronous: str, count: int) -> float:
    """Seconds per ``save_measurement`` with ``PRAGMA synchronous=<synchronous>``."""
    store = Store.open(f"sqlite:///{directory / f'{synchronous.lower()}.db'}")

    @event.listens_for(store.engine, "connect")
    def _override(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA synchronous={synchronous}")

    store.engine.dispose()  # new connections get the override after the store's own pragmas
    try:
        store.save_measurement(_measurement())  # warm up
        started = time.perf_counter()
        for _ in range(count):
            store.save_measurement(_measurement())
        return (time.perf_counter() - started) / count
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measurements", type=int, default=300)
    parser.add_argument("--dir", type=Path, help="where the databases go (default: a temporary directory)")
    parser.add_argument("--no-write", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        normal = _time_saves(Path(tmp), "NORMAL", args.measurements)
        full = _time_saves(Path(tmp), "FULL", args.measurements)
    lines = [
        f"## SQLite synchronous=FULL for the probe ({datetime.now(UTC):%Y-%m-%d})",
        "",
        f"Machine: {machine()}.  `benchmarks/bench_store_sync.py`: {args.measurements} measurements "
        "(48 KiB body sample each) saved one commit each, as a run does; WAL mode.",
        "",
        "| synchronous | ms per measurement | ratio to NORMAL |",
        "|---|---|---|",
        f"| NORMAL (reference) | {normal * 1000:.2f} | 1.00 |",
        f"| FULL | {full * 1000:.2f} | {full / normal:.2f} |",
        "",
        "Reading: a measurement takes seconds of network time; FULL adds one fsync per commit, which "
        "is what keeps the README's promise that a power cut loses nothing already done.",
        "",
    ]
    print("\n".join(lines))
    if not args.no_write:
        with open(REPO / "benchmarks" / "RESULTS.md", "a", encoding="utf-8") as results:
            results.write("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()

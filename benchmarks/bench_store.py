"""What saving costs a run, per measurement: one writer task with batched commits
against the saving of one measurement at a time.

Run on demand::

    .venv/bin/python benchmarks/bench_store.py [--measurements 2000] [--producers 64]
        [--reference trial] [--no-write]

Why: a run at concurrency 64 used to be capped by its store (issue 18): every
measurement was signed and saved alone, through the ORM, in its own transaction and
fsync, in a worker thread that had to win the GIL back from the event loop.  Here the
measuring is left out; ``--producers`` trio tasks hand over finished, realistic
measurements (the synthetic history's, about 2-3 KB of record each) as fast as the
store takes them, on SQLite with the probe's own settings (WAL, ``synchronous=FULL``),
signing each with a fresh ed25519 key.  Three modes, each in its own child process:

- ``before``: the saving code of ``--reference`` (a git revision, by default
  the merge-base with ``trial``; extracted to a temporary directory), driven as its ``probe.run`` drove
  it: a lock, ``sign`` then ``save_measurement`` in a worker thread, per measurement;
- ``each``: the same loop over this tree's ``save_measurement`` (the one row builder
  and bulk writer, one item at a time);
- ``writer``: this tree's run path, :class:`probe.store.writer.MeasurementWriter`
  (default delay 0.25 s, at most 200 items per commit).

Figures: wall and CPU (the child's user+system) per measurement, commits made, and the
ratios against ``before``.  A section is appended to ``benchmarks/RESULTS.md`` unless
``--no-write``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from machine import machine

REPO = Path(__file__).resolve().parents[1]


def _measurements(n: int) -> list[Any]:
    import uuid

    from analysis.synthetic import example_history

    history = example_history(every=timedelta(hours=1))
    out = []
    while len(out) < n:
        for m in history:
            if len(out) >= n:
                break
            copy = type(m).from_dict(m.to_dict())
            copy.id = str(uuid.uuid4())
            out.append(copy)
    return out


def child(mode: str, n: int, producers: int, db: str) -> dict[str, Any]:
    import trio

    from probe.signing import SigningKey
    from probe.store import Store

    store = Store.open(db)
    key = SigningKey.generate()
    items = _measurements(n)
    record_bytes = sum(len(m.canonical_json()) for m in items) / n
    commits = 0

    async def main() -> None:
        nonlocal commits
        queue = list(reversed(items))
        if mode in ("before", "each"):
            lock = trio.Lock()

            async def producer() -> None:
                while queue:
                    m = queue.pop()
                    async with lock:
                        envelope = key.sign(m)
                        await trio.to_thread.run_sync(
                            partial(store.save_measurement, m, signature=envelope, bytes_used=1000)
                        )

            async with trio.open_nursery() as nursery:
                for _ in range(producers):
                    nursery.start_soon(producer)
            commits = n
        else:
            from probe.store.writer import Finished, MeasurementWriter

            writer = MeasurementWriter(store, sign_hash=key.sign_hash)
            send, receive = writer.open_channel()

            async def producer() -> None:
                while queue:
                    m = queue.pop()
                    await send.send(Finished(m, 1000))
                    await trio.lowlevel.checkpoint()

            async with trio.open_nursery() as outer:
                outer.start_soon(writer.run, receive)
                async with send, trio.open_nursery() as nursery:
                    for _ in range(producers):
                        nursery.start_soon(producer)
            commits = writer.commits

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    trio.run(main)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stored = store.count_measurements()
    store.close()
    import probe

    return {
        "code": str(Path(probe.__file__).parent),
        "mode": mode,
        "measurements": n,
        "stored": stored,
        "wall_s": wall,
        "cpu_s": cpu,
        "commits": commits,
        "record_bytes": record_bytes,
    }


def _run_child(root: Path, mode: str, n: int, producers: int, workdir: Path) -> dict[str, Any]:
    db = f"sqlite:///{workdir / f'{mode}.db'}"
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{REPO}", "KUZOT_BENCH_ROOT": str(root)}
    args = [sys.executable, str(Path(__file__).resolve()), "--child", mode, str(n), str(producers), db]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False, cwd=workdir)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _extract(revision: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "probe"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measurements", type=int, default=2000)
    parser.add_argument("--producers", type=int, default=64)
    parser.add_argument(
        "--reference", default=None, help="git revision whose saving is 'before' (default: base of trial)"
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "N", "PRODUCERS", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, n, producers, db = args.child
        root = Path(os.environ.get("KUZOT_BENCH_ROOT", REPO))
        sys.path[:0] = [str(root), str(REPO)]
        print(json.dumps(child(mode, int(n), int(producers), db)))
        return
    if args.reference is None:
        args.reference = subprocess.run(
            ["git", "-C", str(REPO), "merge-base", "HEAD", "trial"], capture_output=True, text=True
        ).stdout.strip() or "trial"
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    reference = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", args.reference], capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="kuzot-bench-store-") as tmp:
        work = Path(tmp)
        (work / "reference").mkdir()
        old = _extract(args.reference, work / "reference")
        runs = [
            _run_child(old, "before", args.measurements, args.producers, work),
            _run_child(REPO, "each", args.measurements, args.producers, work),
            _run_child(REPO, "writer", args.measurements, args.producers, work),
        ]
    base = runs[0]
    lines = [
        "| mode | code | measurements | commits | wall ms/measurement | CPU ms/measurement | "
        "measurements/s | CPU ratio to before | rate ratio to before |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        assert r["stored"] == r["measurements"], r
        print(f"{r['mode']}: code from {r['code']}", file=sys.stderr)
        code = reference if r["mode"] == "before" else commit
        rate = r["measurements"] / r["wall_s"]
        base_rate = base["measurements"] / base["wall_s"]
        lines.append(
            f"| {r['mode']} | {code} | {r['measurements']} | {r['commits']} | "
            f"{1000 * r['wall_s'] / r['measurements']:.2f} | {1000 * r['cpu_s'] / r['measurements']:.2f} | "
            f"{rate:.0f} | {r['cpu_s'] / base['cpu_s']:.2f} | {rate / base_rate:.1f}x |"
        )
    table = "\n".join(lines)
    print(table)
    if args.no_write:
        return
    today = datetime.now(UTC).date().isoformat()
    section = f"""
## Probe store path: one writer with batched commits ({today}, commit {commit})

Machine: {machine()}.
`benchmarks/bench_store.py --measurements {args.measurements} --producers {args.producers}`: {args.producers}
trio tasks hand over finished synthetic measurements (about {base['record_bytes']:.0f} bytes of record
each) as fast as the store takes them; SQLite in WAL mode with `synchronous=FULL`, each measurement
signed with ed25519.  `before` is the saving code of {reference} driven as its
`probe.run` drove it (a lock, sign, `save_measurement` in a worker thread, per measurement); `each` is
the same loop over this commit's `save_measurement`; `writer` is this commit's run path
(`probe.store.writer.MeasurementWriter`, commit within 0.25 s or 200 items).  Each mode runs in its own
child process of one benchmark run; CPU is that child's user+system time, generating the inputs
excluded.

{table}
"""
    with open(REPO / "benchmarks" / "RESULTS.md", "a", encoding="utf-8") as out:
        out.write(section)


if __name__ == "__main__":
    main()

"""Starting ``kuzot run --workers`` children, apart from trio: the first thing a run does.

Why a module of its own: ``kuzot run`` starts its workers before it imports anything
heavy (see :class:`EarlyWorkers`), and :mod:`probe.workers` imports trio, a tenth of a
second that the children would otherwise wait for.  What happens after the start
(frames, the pool, the child's loop) is :mod:`probe.workers`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: How long a child may take to exit after its stdin closes before it is killed.
EXIT_GRACE = 5.0


def worker_command() -> list[str]:
    """This interpreter running :mod:`probe.workers`."""
    return [sys.executable, "-m", "probe.workers"]


def popen_worker(command: Sequence[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": _package_root() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


def early_count(workers: int) -> int:
    """How many of a run's ``workers`` children to start before the parent's start-up:
    one fewer than the CPUs this process may use, at least one (none without workers).

    Why not all: each child's imports and the parent's are CPU work of about half a
    second each; on two cores, two children importing beside the parent made all three
    wait for the CPU (start-up 1.07 s against 0.74 s with one early child, median of
    four runs at concurrency 64).  The first targets go to the early child; the others
    join as soon as they are ready."""
    if workers <= 1:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(workers, cpus - 1))


class EarlyWorkers:
    """Children started before the parent's own start-up, waiting for their spec.

    Why: a child spends about half a second importing what it measures with, and the
    parent as long again opening its database and writing the run row; started only
    when the run row exists, the children made every ``--workers`` run that much longer.
    Started first (``kuzot run`` does, before it imports the session), they import on
    the other cores while the parent gets ready.  ``kuzot run`` starts only as many
    this way as leave the parent a core (:func:`early_count`); the pool starts the rest
    when the run begins, and sends them targets only once they say they are ready
    (:mod:`probe.workers`).  A child does
    nothing before its spec arrives: no traffic, no file.  Closing what no pool took (a
    refused run, an error) ends those children; a :class:`WorkerPool` given this takes
    them over.
    """

    def __init__(self, count: int, command: Sequence[str] | None = None) -> None:
        self.command = list(command) if command is not None else worker_command()
        self._waiting: list[subprocess.Popen[bytes]] = []
        for _ in range(count):
            try:
                self._waiting.append(popen_worker(self.command))
            except OSError:
                break  # the pool starts what is missing, or measures in the parent

    def take(self) -> subprocess.Popen[bytes] | None:
        return self._waiting.pop(0) if self._waiting else None

    def close(self) -> None:
        """End the children nobody took: their stdin closes, so they exit."""
        while (popen := self.take()) is not None:
            for pipe in (popen.stdin, popen.stdout):
                if pipe is not None:
                    pipe.close()
            try:
                popen.wait(EXIT_GRACE)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()

    def __enter__(self) -> EarlyWorkers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _package_root() -> str:
    """The directory holding the ``probe`` package this parent runs, for the child's path."""
    return str(Path(__file__).resolve().parents[1])

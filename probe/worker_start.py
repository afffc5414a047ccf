"""Starting ``kuzot run --workers`` children, apart from trio: the first thing a run does.

Why a module of its own: ``kuzot run`` starts its workers before it imports anything
heavy (see :class:`EarlyWorkers`), and :mod:`probe.workers` imports trio, a tenth of a
second that the children would otherwise wait for.  What happens after the start
(frames, the pool, the child's loop) is :mod:`probe.workers`.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, cast

#: How long a child may take to exit after its stdin closes before it is killed.
EXIT_GRACE = 5.0
#: The option that hands the first child its siblings' pipes (``IN:OUT,IN:OUT``).
SIBLINGS_OPTION = "--siblings"


def worker_command() -> list[str]:
    """This interpreter running :mod:`probe.workers`."""
    return [sys.executable, "-m", "probe.workers"]


def popen_worker(command: Sequence[str], pass_fds: Sequence[int] = ()) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": _package_root() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, pass_fds=tuple(pass_fds)
    )


def can_fork_siblings(command: Sequence[str]) -> bool:
    """Whether the first child can fork the others (Linux, the real worker command)."""
    return sys.platform == "linux" and hasattr(os, "fork") and list(command) == worker_command()


class Sibling:
    """A child that the first child forked once its imports were done: its pipes, as a
    :class:`subprocess.Popen` offers them, and what little this process can know of it.

    Why forked rather than started: each interpreter that starts imports trio, httpx,
    dnspython and cryptography, about half a second of CPU; forked from the first child
    after its imports, a sibling costs a few milliseconds and is ready at the same
    moment.  It is not this process's child, so it cannot be waited for; its pid
    arrives with its ready frame (:meth:`adopt`), after which a pidfd tells its exit
    and carries a kill without the risk of a reused pid.  Before that, closing its
    stdin is the only way to end it, and the only one a child waiting for its spec needs.
    """

    def __init__(self, stdin_fd: int, stdout_fd: int) -> None:
        self.stdin: IO[bytes] | None = os.fdopen(stdin_fd, "wb")
        self.stdout: IO[bytes] | None = os.fdopen(stdout_fd, "rb")
        self.pid: int | None = None
        self.returncode: int | None = None
        self._pidfd: int | None = None

    def adopt(self, pid: int) -> None:
        """The pid the sibling reported (it is alive: it just said so)."""
        if self.pid is not None:
            return
        self.pid = pid
        with contextlib.suppress(AttributeError, OSError):
            self._pidfd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        """``None`` while it runs; 0 once it exited, or if it never said who it is (its
        exit status belongs to the first child, which reaps it as it exits)."""
        if self.returncode is None and (self._pidfd is None or _readable(self._pidfd)):
            self.returncode = 0
            self._close_pidfd()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired("sibling worker", cast(float, timeout))
            assert self._pidfd is not None
            select.select([self._pidfd], [], [], left)
        return code

    def kill(self) -> None:
        if self.poll() is None and self._pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


Child = subprocess.Popen[bytes] | Sibling


def early_count(workers: int) -> int:
    """How many of a run's ``workers`` children to start before the parent's own start-up.

    All of them where the first child can fork the others (one import for all of them).
    Elsewhere each child imports for itself, about half a second of CPU, and as many as
    leave the parent a core: on two cores, two children importing beside the parent
    made all three wait for the CPU (start-up 1.07 s against 0.74 s with one early
    child, median of four runs at concurrency 64); the others join once ready."""
    if workers <= 1:
        return 0
    if can_fork_siblings(worker_command()):
        return workers
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
    the other cores while the parent gets ready.  On Linux the first child forks the
    others once its imports are done (:class:`Sibling`); elsewhere ``kuzot run`` starts
    only as many as leave the parent a core (:func:`early_count`) and the pool starts the
    rest when the run begins.  The pool sends a child targets only once it says it is
    ready (:mod:`probe.workers`).  A child does
    nothing before its spec arrives: no traffic, no file.  Closing what no pool took (a
    refused run, an error) ends those children; a :class:`WorkerPool` given this takes
    them over.
    """

    def __init__(self, count: int, command: Sequence[str] | None = None) -> None:
        self.command = list(command) if command is not None else worker_command()
        self._waiting: list[Child] = []
        try:
            if count > 1 and can_fork_siblings(self.command):
                self._start_family(count)
            else:
                for _ in range(count):
                    self._waiting.append(popen_worker(self.command))
        except OSError:
            pass  # the pool starts what is missing, or measures in the parent

    def _start_family(self, count: int) -> None:
        """One child started, the others forked by it (:class:`Sibling`), each with its
        own pair of pipes to this process."""
        theirs: list[int] = []
        ours: list[tuple[int, int]] = []
        try:
            for _ in range(count - 1):
                their_in, our_out = os.pipe()
                our_in, their_out = os.pipe()
                theirs += [their_in, their_out]
                ours.append((our_out, our_in))
            pairs = ",".join(f"{theirs[i]}:{theirs[i + 1]}" for i in range(0, len(theirs), 2))
            first = popen_worker([*self.command, SIBLINGS_OPTION, pairs], pass_fds=theirs)
        except OSError:
            for fd in theirs + [fd for pair in ours for fd in pair]:
                os.close(fd)
            raise
        for fd in theirs:  # the first child's now: its exit must reach us as end of file
            os.close(fd)
        self._waiting.append(first)
        self._waiting.extend(Sibling(stdin_fd, stdout_fd) for stdin_fd, stdout_fd in ours)

    def take(self) -> Child | None:
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

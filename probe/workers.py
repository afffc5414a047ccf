"""Worker processes for one run (``kuzot run --workers N``): measuring on several cores.

Why: at high concurrency one core is the limit (TLS handshakes, DNS and HTTP parsing),
while everything that makes a run trustworthy must stay single: one run row, one
writer committing in batches, one byte budget, one deadline.  So the *parent* keeps all
of that (:mod:`probe.run`) and hands each target, when a slot frees up and the budget
allows, to the ready child with the fewest in flight (a child says it is ready, with
a first frame, once its imports are done and its spec read: a target sent earlier would
wait in its pipe while another child sat idle); the child measures it and sends the
record back, and the parent saves it as it saves its own.  Children never touch the
database, the budget or the deadline: they only measure.

Ownership (structured): :meth:`WorkerPool.run` is a task in the run's outer nursery,
beside the writer and outside the deadline.  It starts the children, owns their pipes,
reads their results, and when it ends (the parent closed the children's stdin because
measuring is over, or the run is cancelled) waits briefly for each child and kills
what is left.  A child exits when its stdin closes (the parent finished, or died:
``kill -9`` of the parent closes the pipe too), so no child outlives its run.

A child that dies (or is not ready within :data:`READY_LIMIT`) takes only the targets
it had in flight: each becomes a recorded
failure (``unknown_failure``, exception ``probe.WorkerLost``), never a lost run; the
remaining targets go to the surviving children, or are measured in the parent if none
is left.  Frames are a 4-byte length and a pickle: parent and child are the same
program and the same user, so pickle is as trusted as the code itself.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import signal
import ssl
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from probe.records import Measurement
from probe.settings import ProbeSettings
from probe.targets import Target
from probe.worker_start import (
    EXIT_GRACE,
    SIBLINGS_OPTION,
    Child,
    EarlyWorkers,
    Sibling,
    popen_worker,
    worker_command,
)

#: How long a frame may take to go into a child's pipe before the child counts as stuck.
SEND_LIMIT = 10.0
#: How long a child may take to say it is ready (imports done, spec read) before it
#: counts as lost: a child that never gets there must not hold the run's targets back.
READY_LIMIT = 60.0
#: The key of the frame a child sends once it can measure (records have keys from 0).
READY = -1

_LENGTH = struct.Struct("!I")


class WorkerLost(Exception):
    """The worker process measuring a target died before sending its record."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a child needs to measure as the parent would: the settings, the run id
    and, if the run has a control vantage, how to build its own (a picklable factory)."""

    settings: ProbeSettings
    run_id: str | None
    control_factory: Callable[[], Any] | None = None


def encode(item: object) -> bytes:
    body = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


class FrameReader:
    """Length-prefixed pickles from a byte stream; ``None`` at a clean end of stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def _fill(self, size: int) -> bool:
        while len(self.buffer) < size:
            chunk = await self.stream.receive_some(1 << 16)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    async def receive(self) -> Any:
        if not await self._fill(_LENGTH.size):
            if self.buffer:
                raise EOFError("stream ended inside a frame header")
            return None
        (length,) = _LENGTH.unpack_from(self.buffer)
        if not await self._fill(_LENGTH.size + length):
            raise EOFError("stream ended inside a frame")
        body = bytes(self.buffer[_LENGTH.size : _LENGTH.size + length])
        del self.buffer[: _LENGTH.size + length]
        return pickle.loads(body)


# --- the parent's side -------------------------------------------------------------------


@dataclass
class _Pending:
    done: trio.Event = field(default_factory=trio.Event)
    measurement: Measurement | None = None


@dataclass
class _Worker:
    number: int
    process: _Process
    lock: trio.Lock = field(default_factory=trio.Lock)
    pending: dict[int, _Pending] = field(default_factory=dict)
    alive: bool = True
    #: True once the child has its imports done and its spec read: targets go only to
    #: ready children, so none waits in the pipe of one still starting.
    ready: bool = False
    #: Set once the child is ready or lost, whichever comes first.
    settled: trio.Event = field(default_factory=trio.Event)
    #: Where the pool's targets wait for a child to become ready (woken here when this
    #: one becomes ready or is lost).
    waiting: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)

    def lose(self) -> None:
        """Dead: whatever it had in flight is woken with no record (a recorded failure)."""
        self.alive = False
        for pending in self.pending.values():
            pending.done.set()
        self.settled.set()
        self.waiting.unpark_all()

    def become_ready(self) -> None:
        self.ready = True
        self.settled.set()
        self.waiting.unpark_all()


class _Process:
    """A child as trio sees it: its pipes as trio streams, its exit awaited without a
    thread (a pidfd where the kernel has one)."""

    def __init__(self, popen: Child) -> None:
        assert popen.stdin is not None and popen.stdout is not None
        self.popen = popen
        self.stdin = trio.lowlevel.FdStream(os.dup(popen.stdin.fileno()))
        self.stdout = trio.lowlevel.FdStream(os.dup(popen.stdout.fileno()))
        popen.stdin.close()
        popen.stdout.close()

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()

    async def wait(self) -> int:
        while (code := self.popen.poll()) is None:
            assert self.popen.pid is not None  # a Sibling without one polls as exited
            await _exited(self.popen.pid)
        return code

    def adopt(self, pid: object) -> None:
        """The pid a child sent with its ready frame: a forked sibling's only source."""
        if isinstance(self.popen, Sibling) and isinstance(pid, int):
            self.popen.adopt(pid)

    async def aclose(self) -> None:
        await self.stdin.aclose()
        await self.stdout.aclose()


async def _exited(pid: int) -> None:
    """Return once ``pid`` has exited (or soon, where there is no pidfd to wait on)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (macOS, old kernels), or already reaped
        await trio.sleep(0.05)
        return
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


class WorkerPool:
    """N child processes measuring for one run; see the module docstring."""

    def __init__(
        self,
        spec: WorkerSpec,
        count: int,
        command: Sequence[str] | None = None,
        early: EarlyWorkers | None = None,
    ) -> None:
        self.spec = spec
        self.count = count
        self.command = list(command) if command is not None else worker_command()
        self.early = early
        self.workers: list[_Worker] = []
        self._keys = itertools.count()
        #: Targets waiting for a child to become ready (or for every child to be lost).
        self._waiting = trio.lowlevel.ParkingLot()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children (or take those started early), read their results until
        they end, then reap them."""
        try:
            async with trio.open_nursery() as nursery:
                for number in range(self.count):
                    popen = self.early.take() if self.early is not None else None
                    if popen is None:
                        try:
                            popen = await trio.to_thread.run_sync(popen_worker, self.command)
                        except OSError:
                            continue  # one fewer worker; with none, the parent measures
                    worker = _Worker(number, _Process(popen), waiting=self._waiting)
                    self.workers.append(worker)
                    nursery.start_soon(self._read, worker)
                    nursery.start_soon(self._await_ready, worker)
                    await self._send(worker, self.spec)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                for worker in self.workers:
                    await _reap(worker)

    async def close(self) -> None:
        """Measuring is over: close each child's stdin, so it exits."""
        for worker in self.workers:
            with trio.CancelScope(shield=True):
                async with worker.lock:
                    await worker.process.stdin.aclose()

    async def measure(self, target: Target, role: str) -> Measurement | None:
        """The record of ``target`` measured by a child; ``None`` when no child is left
        (the caller measures it itself).  Raises :class:`WorkerLost` when the child
        died with it in flight."""
        while True:
            alive = [w for w in self.workers if w.alive]
            if not alive:
                return None
            ready = [w for w in alive if w.ready]
            if not ready:
                await self._waiting.park()  # until one is ready, or lost
                continue
            worker = min(ready, key=lambda w: len(w.pending))
            key = next(self._keys)
            pending = worker.pending[key] = _Pending()
            try:
                if not await self._send(worker, (key, target, role)):
                    continue  # never reached the child: another one measures it
                await pending.done.wait()
            finally:
                worker.pending.pop(key, None)
            if pending.measurement is None:
                raise WorkerLost(f"worker {worker.number} died")
            return pending.measurement

    async def _await_ready(self, worker: _Worker) -> None:
        """Lose ``worker`` if it is neither ready nor lost within :data:`READY_LIMIT`."""
        with trio.move_on_after(READY_LIMIT):
            await worker.settled.wait()
        if worker.alive and not worker.ready:
            worker.lose()
            worker.process.kill()

    async def _send(self, worker: _Worker, item: object) -> bool:
        """One frame to ``worker``; False (and the worker lost) if it cannot take it.

        Shielded: a frame cut in half by a cancellation would garble every later one."""
        data = encode(item)
        with trio.CancelScope(shield=True), trio.move_on_after(SEND_LIMIT) as limit:
            try:
                async with worker.lock:
                    await worker.process.stdin.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                worker.lose()
                return False
        if limit.cancelled_caught:
            worker.lose()
            return False
        return True

    async def _read(self, worker: _Worker) -> None:
        """The child's records, each to the target waiting for it, until its stdout ends."""
        reader = FrameReader(worker.process.stdout)
        try:
            while (frame := await reader.receive()) is not None:
                key, measurement = frame
                if key == READY:
                    worker.process.adopt(measurement)  # a ready frame carries the pid
                    worker.become_ready()
                    continue
                pending = worker.pending.get(key)
                if pending is not None:
                    pending.measurement = measurement
                    pending.done.set()
        except Exception:  # whatever cannot be read makes the worker lost, not the run
            pass
        finally:
            worker.lose()


async def _reap(worker: _Worker) -> None:
    """Close the child's stdin, wait a little for it to exit on its own, then kill it."""
    worker.lose()
    await worker.process.stdin.aclose()
    with trio.move_on_after(EXIT_GRACE):
        await worker.process.wait()
    if worker.process.returncode is None:
        worker.process.kill()
        await worker.process.wait()
    await worker.process.aclose()


# --- the child's side --------------------------------------------------------------------


def _measuring_stack() -> ssl.SSLContext:
    """Import what a child measures with and load the system trust store (about 50 ms),
    before its spec arrives and, for the first child, before it forks its siblings, who
    then have both for nothing.  Not probe.run: a child needs no database (SQLAlchemy is
    0.3 s of each child's start)."""
    import probe.measure  # noqa: F401  (the import is the point)
    from probe.steps import tls

    return tls.make_ssl_context()


async def _serve(inbox: trio.abc.ReceiveStream, outbox: trio.abc.SendStream, context: ssl.SSLContext) -> None:
    """Measure every target the parent sends, until it closes our stdin."""
    from probe.measure import MeasurementContext, measure_or_record
    from probe.steps.bundle import trust_bundle

    frames = FrameReader(inbox)
    spec: WorkerSpec | None = await frames.receive()
    if spec is None:
        return
    if spec.settings.ca_bundle is not None:
        trust_bundle(context, spec.settings.ca_bundle)
    ctx = MeasurementContext(spec.settings, run_id=spec.run_id, ssl_context=context)
    control = spec.control_factory() if spec.control_factory is not None else None
    lock = trio.Lock()
    await outbox.send_all(encode((READY, os.getpid())))

    async def one(key: int, target: Target, role: str) -> None:
        measurement = await measure_or_record(target, ctx, role, control if role == "target" else None)
        async with lock:
            await outbox.send_all(encode((key, measurement)))

    try:
        async with trio.open_nursery() as nursery:
            while (frame := await frames.receive()) is not None:
                nursery.start_soon(one, *frame)
            nursery.cancel_scope.cancel()  # the parent wants nothing more
    finally:
        if control is not None:
            with trio.CancelScope(shield=True):
                await control.aclose()


def serve_stdio(argv: Sequence[str] | None = None) -> None:
    """The child's entry point: frames on stdin and stdout, stray prints to stderr.

    With ``--siblings IN:OUT,...`` (the first child of a family, :class:`EarlyWorkers`)
    it forks one sibling per pair of pipe ends once its imports are done; each sibling
    serves its own pair.  Forking happens before trio runs and before any thread
    exists, the one moment a Python process forks safely."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    siblings = _sibling_pipes(sys.argv[1:] if argv is None else argv)
    out_fd = os.dup(1)
    os.dup2(2, 1)
    in_fd = os.dup(0)
    context = _measuring_stack()
    channel = (in_fd, out_fd)
    forked: list[int] = []
    for number, pair in enumerate(siblings):
        pid = os.fork()
        if pid == 0:  # the sibling: keep only its own pair of ends
            forked = []
            for fd in (in_fd, out_fd, *(fd for later in siblings[number + 1 :] for fd in later)):
                os.close(fd)
            # Not the first child's stdin either: a parent writing to a dead first
            # child must meet a broken pipe, not a reader nobody serves.
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            channel = pair
            break
        forked.append(pid)
        os.close(pair[0])
        os.close(pair[1])
    _serve_channel(*channel, context, forked)


def _sibling_pipes(argv: Sequence[str]) -> list[tuple[int, int]]:
    if len(argv) != 2 or argv[0] != SIBLINGS_OPTION:
        return []
    pairs = [pair.split(":") for pair in argv[1].split(",") if pair]
    return [(int(stdin_fd), int(stdout_fd)) for stdin_fd, stdout_fd in pairs]


def _serve_channel(in_fd: int, out_fd: int, context: ssl.SSLContext, forked: Sequence[int] = ()) -> None:
    async def main() -> None:
        async with trio.lowlevel.FdStream(in_fd) as inbox, trio.lowlevel.FdStream(out_fd) as outbox:
            try:
                await _serve(inbox, outbox, context)
            except* (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the parent is gone: nobody wants these records

    trio.run(main)
    # The siblings this first child forked end when the parent closes their stdin, as
    # it closes ours: waiting for them here hands their CPU time up to the parent with
    # ours (what a benchmark's wait4 counts) and leaves no zombie behind.
    for pid in forked:
        with contextlib.suppress(ChildProcessError, InterruptedError):
            os.waitpid(pid, 0)
    # Every record went out with send_all, and the parent waits for this exit before it
    # closes the run: skip the interpreter's teardown (freeing every module and object,
    # a tenth of a second here), which would hold up the end of every run.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    from probe.workers import serve_stdio as _entry

    _entry()

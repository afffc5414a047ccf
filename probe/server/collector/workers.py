"""The collector's validation workers: batches parsed and checked off the event loop.

Why processes: parsing JSON, checking every field and verifying ed25519 signatures is
CPU work; in worker processes it uses every core and never blocks the event loop that
serves other probes.  The workers are spawned (never forked from a process with
threads and an event loop) and end with the collector, even if it is killed.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import trio

from probe.server.collector.validate import Problem, Refusal, validate_batch
from probe.store.database import PreparedItem


def _warm_worker() -> None:
    """Import the validator once per worker, not on its first batch."""
    import probe.server.collector.validate  # noqa: F401


def _start_worker(parent: int) -> None:
    """In each worker: end when the collector ends, even if it was killed (-9), so no
    orphaned workers outlive it."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="kuzot-parent-watch", daemon=True).start()
    _warm_worker()


class Validator:
    """Runs :func:`validate_batch` in worker processes, or in a thread when there are none."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            # spawn: never fork this process, which has threads and an event loop; the
            # workers are its own children, so they can tell when it is gone.
            context = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
            )
        return self.pool

    async def __call__(
        self, body: bytes, max_items: int, probe_id: str
    ) -> list[PreparedItem] | list[Problem] | Refusal:
        if self.workers <= 0:
            return await trio.to_thread.run_sync(validate_batch, body, max_items, probe_id)
        for attempt in range(2):
            try:
                future = self._pool().submit(validate_batch, body, max_items, probe_id)
                return await _wait(future)
            except BrokenProcessPool:
                # A worker died (killed, out of memory): start a fresh pool once.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def start(self) -> None:
        """Start every worker now, so the first batches do not wait for processes to
        start and import (seconds on a loaded machine)."""
        if self.workers > 0:
            pool = self._pool()
            await _wait_all([pool.submit(_warm_worker) for _ in range(self.workers)])

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None


async def _wait_all(futures: list[Future[Any]]) -> None:
    for future in futures:
        await _wait(future)


async def _wait(future: Future[Any]) -> Any:
    """Wait for a concurrent future without holding a thread."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    future.add_done_callback(lambda _f: token.run_sync_soon(done.set))
    try:
        await done.wait()
    finally:
        future.cancel()
    return future.result()

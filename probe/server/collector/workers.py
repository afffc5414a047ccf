"""The collector's validation workers: batches parsed and checked off the event loop.

Why processes: parsing JSON, checking every field and verifying ed25519 signatures is
CPU work; in worker processes it uses every core and never blocks the event loop that
serves other probes.  The workers are spawned (never forked from a process with
threads and an event loop) and end with the collector, even if it is killed.

Why the workers also store, on PostgreSQL: sending a checked batch back to the event
loop's process (its rows pickled one way, unpickled and formatted for COPY the other)
cost that one process about as much CPU as the checks themselves, and its threads then
fought the event loop for the GIL.  A worker that holds its own connection writes the
batch in one transaction itself and sends back only the ids and whether each was new.
SQLite has one writer at a time, so there the checked rows still come back to the one
writer of the collector's process.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any

import trio
from sqlalchemy.exc import SQLAlchemyError

from probe.server.collector.validate import Problem, Refusal, validate_batch
from probe.store.database import BatchConflict, PreparedItem, StoreError


@dataclass(frozen=True)
class Stored:
    """A batch a worker checked and stored: each item's id and whether it is new."""

    results: list[tuple[str, bool]]


@dataclass(frozen=True)
class Conflict:
    """A batch the store refused as a whole (:class:`BatchConflict`'s problems)."""

    problems: list[tuple[int, str, str]]


@dataclass(frozen=True)
class StoreFailed:
    """The worker could not write the batch (database down, disk full): nothing kept."""

    message: str


Checked = list[PreparedItem] | list[Problem] | Refusal
Outcome = Stored | Conflict | StoreFailed | list[Problem] | Refusal

#: A storing worker's own store (one connection), made by its initializer.
_store: Any = None


def with_connection_asn(items: list[PreparedItem], asn: int | None) -> list[PreparedItem]:
    """Records without an AS number get the connection's (from ``--asn-db``)."""
    if asn is None or all(item.row["probe_asn"] is not None for item in items):
        return items
    return [
        replace(item, row={**item.row, "probe_asn": asn}, asn_source="connection")
        if item.row["probe_asn"] is None
        else item
        for item in items
    ]


def is_refusal(checked: Checked) -> bool:
    """Whether a checked batch is a refusal (the batch, or problems with its items)."""
    return isinstance(checked, Refusal) or bool(checked and isinstance(checked[0], Problem))


def store_checked(store: Any, items: list[PreparedItem]) -> Stored | Conflict | StoreFailed:
    """Write checked items in one transaction; a refusal or failure as data, never raised."""
    try:
        stored = store.save_prepared(items)
    except BatchConflict as conflict:
        return Conflict(conflict.problems)
    except (StoreError, SQLAlchemyError) as exc:
        return StoreFailed(str(exc)[:500])
    return Stored([(item.id, new) for item, new in zip(items, stored, strict=True)])


def check_and_store(body: bytes, max_items: int, probe_id: str, asn: int | None) -> Outcome:
    """In a storing worker: check the batch, then write it in one transaction."""
    checked = validate_batch(body, max_items, probe_id)
    if is_refusal(checked):
        return checked  # type: ignore[return-value]
    return store_checked(_store, with_connection_asn(checked, asn))  # type: ignore[arg-type]


def _warm_worker() -> None:
    """Import the validator once per worker, not on its first batch."""
    import probe.server.collector.validate  # noqa: F401


def _start_worker(parent: int, store_url: str | None = None) -> None:
    """In each worker: end when the collector ends, even if it was killed (-9), so no
    orphaned workers outlive it; a storing worker makes its engine (it connects on the
    first batch, so a database that is down makes batches fail, not the pool)."""
    import threading

    global _store
    if store_url is not None:
        from probe.store import Store
        from probe.store.engine import create_store_engine

        _store = Store(create_store_engine(store_url))

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="kuzot-parent-watch", daemon=True).start()
    _warm_worker()


class Validator:
    """Runs :func:`validate_batch` in worker processes, or in a thread when there are none.

    With ``store_url`` (PostgreSQL) the workers also store what they checked
    (:meth:`check_and_store`)."""

    def __init__(self, workers: int, store_url: str | None = None) -> None:
        self.workers = workers
        self.store_url = store_url if workers > 0 else None
        self.pool: ProcessPoolExecutor | None = None

    @property
    def stores(self) -> bool:
        """Whether the workers store the batches they check."""
        return self.store_url is not None

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            # spawn: never fork this process, which has threads and an event loop; the
            # workers are its own children, so they can tell when it is gone.
            context = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(os.getpid(), self.store_url),
            )
        return self.pool

    async def __call__(self, body: bytes, max_items: int, probe_id: str) -> Checked:
        if self.workers <= 0:
            return await trio.to_thread.run_sync(validate_batch, body, max_items, probe_id)
        result: Checked = await self._submit(validate_batch, body, max_items, probe_id)
        return result

    async def check_and_store(self, body: bytes, max_items: int, probe_id: str, asn: int | None) -> Outcome:
        """Check and store the batch in a worker (only when :attr:`stores`)."""
        result: Outcome = await self._submit(check_and_store, body, max_items, probe_id, asn)
        return result

    async def _submit(self, function: Any, *args: Any) -> Any:
        for attempt in range(2):
            try:
                future = self._pool().submit(function, *args)
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

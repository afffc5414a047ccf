"""The run's one writer: finished measurements in, multi-row commits out.

Why one task and batches: saving each measurement alone (its own ORM session, its own
transaction and fsync, its own hop to a worker thread that must win the GIL back from
the event loop) capped a run at the rate of those hops, whatever the concurrency.  Here
the measuring tasks only put a finished measurement on a channel; this task takes what
has piled up (at most ``max_items``, waiting at most ``max_delay`` seconds after the
first), builds the rows, signs them and commits them in one worker-thread call and
one transaction.

The store may still be opening when the writer starts (``opening``: ``kuzot run``
opens its database in a thread while the first measurements are in flight); the
first commit waits for it.

Durability: a measurement counts as done (progress, the run's summary, resume, live
upload) only once its batch is committed: ``on_committed`` is called then, never
before.  So a kill -9 loses at most what was still waiting here, which nothing had
reported, and ``kuzot run --resume`` measures it again.  On cancellation (deadline,
Ctrl-C, a failing sibling) whatever already reached the channel is still committed,
in a shielded scope, before the task ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from probe.records import Measurement

if TYPE_CHECKING:  # the database code is loaded by the first commit (probe/store/__init__.py)
    from probe.store.database import PreparedItem, Store

#: Commit at the latest this long after the first waiting measurement arrived ...
DEFAULT_MAX_DELAY = 0.25
#: ... or as soon as this many are waiting.
DEFAULT_MAX_ITEMS = 200


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished measurement and the bytes it cost (kept in its row)."""

    measurement: Measurement
    bytes_used: int = 0


OnCommitted = Callable[[Finished], Awaitable[None]]


class MeasurementWriter:
    """Drain a channel of :class:`Finished` into ``store``; see the module docstring.

    Use: ``send, receive = writer.open_channel()``, start ``writer.run(receive)`` in a
    nursery, ``await send.send(...)`` from the measuring tasks, close ``send`` when
    measuring is over; ``run`` returns once everything sent is committed.
    """

    def __init__(
        self,
        store: Store | None,
        *,
        opening: Callable[[], Awaitable[Store]] | None = None,
        on_committed: OnCommitted | None = None,
        sign: Callable[[Measurement], dict[str, str]] | None = None,
        sign_hash: Callable[[str], dict[str, str]] | None = None,
        source: str = "kuzot",
        max_delay: float = DEFAULT_MAX_DELAY,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        if store is None and opening is None:
            raise ValueError("a writer needs a store, or a way to wait for one")
        self.store = store
        self.opening = opening
        self.on_committed = on_committed
        self.sign = sign
        self.sign_hash = sign_hash
        self.source = source
        self.max_delay = max_delay
        self.max_items = max(1, max_items)
        #: Transactions committed and measurements in them (for benchmarks and tests).
        self.commits = 0
        self.committed = 0
        self._failed = False

    def open_channel(
        self,
    ) -> tuple[trio.MemorySendChannel[Finished], trio.MemoryReceiveChannel[Finished]]:
        # Bounded, so a writer that falls behind slows the measuring down instead of
        # holding every finished measurement in memory.
        return trio.open_memory_channel[Finished](self.max_items * 4)

    async def run(self, receive: trio.MemoryReceiveChannel[Finished]) -> None:
        pending: list[Finished] = []
        self._failed = False
        try:
            while True:
                try:
                    pending.append(await receive.receive())
                except trio.EndOfChannel:
                    break
                ended = False
                with trio.move_on_after(self.max_delay):
                    while len(pending) < self.max_items:
                        try:
                            pending.append(await receive.receive())
                        except trio.EndOfChannel:
                            ended = True
                            break
                batch, pending = pending, []
                await self._commit(batch)
                if ended:
                    break
        finally:
            with trio.CancelScope(shield=True):
                # Cancelled (or failing): still commit what had finished, unless the
                # database itself is what failed.  Drained again after each commit, as
                # tasks that finished meanwhile may have sent more.
                while not self._failed:
                    try:
                        while True:
                            pending.append(receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                        pass
                    if not pending:
                        break
                    batch, pending = pending, []
                    await self._commit(batch)
                receive.close()

    async def _commit(self, batch: list[Finished]) -> None:
        with trio.CancelScope(shield=True):
            try:
                if self.store is None:
                    assert self.opening is not None
                    self.store = await self.opening()
                await trio.to_thread.run_sync(self._write, batch)
            except BaseException:
                self._failed = True
                raise
            self.commits += 1
            self.committed += len(batch)
            if self.on_committed is not None:
                for item in batch:
                    await self.on_committed(item)

    def _write(self, batch: list[Finished]) -> list[bool]:
        """In the worker thread: rows, signatures and one transaction for the batch."""
        from probe.store.database import prepare_item

        assert self.store is not None
        items: list[PreparedItem] = []
        for finished in batch:
            m = finished.measurement
            signature = self.sign(m) if self.sign is not None and self.sign_hash is None else None
            items.append(
                prepare_item(m, signature=signature, sign_hash=self.sign_hash, bytes_used=finished.bytes_used)
            )
        return self.store.save_prepared(items, source=self.source, changed="keep")

"""Run lab servers in a trio loop of their own, on a background thread.

Why a thread: the code under test may be the probe in-process (its own ``trio.run``)
or the ``kuzot`` command in a subprocess; servers in a separate loop serve both, and a
hostile server that blocks (a drip, a blackhole) can never stall the probe's loop.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import trio


class LabThread:
    """A nursery on a background thread; ``start`` runs a server in it.

    A server is an async function taking ``task_status`` like ``nursery.start`` wants:
    it binds, reports what it bound with ``task_status.started(value)``, and serves
    until cancelled.  Leaving the ``with`` block cancels every server and joins.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> LabThread:
        self._thread = threading.Thread(target=self._run, name="kuzot-lab", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError("lab thread failed to start") from self._error
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread is None:
            return
        if self._token is not None and self._stop is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(timeout=10)
        self._thread = None

    def start(self, server: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Start ``server(*args, task_status=...)`` and return what it reported."""
        assert self._nursery is not None and self._token is not None, "use LabThread as a context manager"
        return trio.from_thread.run(self._nursery.start, server, *args, trio_token=self._token)

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run a coroutine function in the lab's loop (to reconfigure a server, say)."""
        assert self._token is not None
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to the starting thread, not swallowed
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

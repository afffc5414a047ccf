"""Every Kuzot HTTP service (collector, control helper, Explorer, lab servers) runs here.

One place decides how an ASGI app is served on trio, for two reasons:

- Hypercorn's trio worker lets an internal error in *one* connection end the whole
  server: its connection handlers run in the listeners' nursery, so an exception there
  cancels every other connection and stops the process.  A client that hangs up halfway
  through a body while the server is still answering it is enough (h11 raises on the
  early EOF, hypercorn's error answer then collides with its own closing of the stream:
  ``trio.BusyResourceError``).  A collector that volunteers upload to must not die of
  one rude client, so each connection is guarded: its error is logged as one line and
  the server goes on.  Errors that are cancellations (shutdown) pass through untouched.
- The same privacy settings everywhere: no access log (it would record every volunteer's
  and reader's address), no ``Server`` header.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.trio.tcp_server import TCPServer

from probe.errors import first_error


class _GuardedTCPServer(TCPServer):
    """Hypercorn's connection handler, with its errors kept to the connection."""

    async def run(self) -> None:
        try:
            await super().run()
        except Exception as exc:  # one connection's failure, whatever it is, ends only it
            await self.config.log.error(
                "a connection ended on a server error (%s); the server goes on",
                _describe(exc),
            )


def _describe(exc: BaseException) -> str:
    inner = first_error(exc)
    return f"{type(inner).__name__}: {inner}"


def _guard_connections() -> None:
    # hypercorn.trio.run looks TCPServer up in its own namespace when a connection
    # arrives; replacing it there is the one hook it offers.
    if hypercorn_run.TCPServer is not _GuardedTCPServer:
        hypercorn_run.TCPServer = _GuardedTCPServer  # type: ignore[misc]


def server_config(listen: str, *, errorlog: str | None = "-") -> Config:
    """A hypercorn configuration listening on ``listen`` (HOST:PORT) that logs no addresses."""
    config = Config()
    config.bind = [listen]
    config.accesslog = None
    config.errorlog = errorlog
    config.include_server_header = False
    return config


async def serve(
    app: Any,
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown_trigger`` returns; ``task_status`` gets the bound URLs."""
    _guard_connections()
    await hypercorn_serve(
        app,
        config,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


async def serve_until_signal(
    app: Any,
    config: Config,
    started: Callable[[list[str], trio.Nursery, trio.Event], Awaitable[None]] | None = None,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then finish the requests in flight.

    ``started`` is called once the server listens, with its URLs, a nursery for
    background work (cancelled at shutdown) and the stop event.
    """
    stop = trio.Event()
    async with trio.open_nursery() as nursery:

        async def on_signal() -> None:
            # systemd's and docker's SIGTERM and Ctrl-C alike: a batch in flight is one
            # transaction, stored whole or not at all.
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    stop.set()
                    return

        nursery.start_soon(on_signal)
        binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        if started is not None:
            async with trio.open_nursery() as background:
                background.start_soon(started, binds, background, stop)
                await stop.wait()
                background.cancel_scope.cancel()

"""What every route needs: the snapshot (refreshed when stale), the source, the settings."""

from __future__ import annotations

import time
from dataclasses import dataclass

import trio

from probe.web.cache import AnalysisCache, Snapshot
from probe.web.source import Source


@dataclass(frozen=True)
class WebConfig:
    #: "local" shows the volunteer page; "public" (a collector) never does.
    mode: str = "public"
    #: Seconds between checks for newly stored measurements.
    refresh_seconds: float = 15.0
    #: Seconds browsers and proxies may reuse a page.
    max_age: int = 60
    #: Evidence bundles built at once (each judges and writes a report folder).
    bundle_concurrency: int = 1


class WebContext:
    def __init__(self, cache: AnalysisCache, source: Source, config: WebConfig) -> None:
        self.cache = cache
        self.source = source
        self.config = config
        self.db_limiter = trio.CapacityLimiter(4)
        self.bundle_limiter = trio.CapacityLimiter(config.bundle_concurrency)
        self._checked = 0.0
        #: True when a background task keeps the snapshot current (``kuzot web``);
        #: mounted in the collector there is none, and requests look for news instead.
        self.background = False

    async def snapshot(self) -> Snapshot:
        """The current snapshot; at most every ``refresh_seconds`` one request first takes
        in newly stored measurements (others keep the previous snapshot meanwhile)."""
        now = time.monotonic()
        stale = not self.background and now - self._checked >= self.config.refresh_seconds
        if self.cache.snapshot is None or stale:
            self._checked = now
            await trio.to_thread.run_sync(self.cache.refresh, limiter=self.db_limiter)
        assert self.cache.snapshot is not None
        return self.cache.snapshot

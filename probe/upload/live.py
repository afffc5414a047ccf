"""Upload while a run measures, so that a long run's measurements reach the collector
before the run ends (and before the laptop lid closes).

The uploader (``probe.upload``) is synchronous and works on the queue in the database,
so the run only has to tell this task that something new was stored; the task sends
the queue in a worker thread when enough has piled up or enough time has passed.
Nothing here can lose a measurement: it is stored before it is announced, and it
leaves the queue only when the collector has acknowledged it.  What does not get
through stays queued for the upload at the end of the run, or for ``kuzot upload``.

Why thresholds and not one request per measurement: a home uplink is metered and
a batch of a hundred costs one round trip and a few headers.  Why the backoff: a
collector that is down must not be knocked on every few seconds for the whole run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import trio

from probe.records import Measurement
from probe.store import Store
from probe.upload import UploadError, UploadResult, upload
from probe.upload.pacing import DEFAULT_EVERY, DEFAULT_INTERVAL, MAX_INTERVAL

__all__ = ["DEFAULT_EVERY", "DEFAULT_INTERVAL", "MAX_INTERVAL", "LiveUploader", "merge"]


class LiveUploader:
    """A task in the run's nursery: ``await uploader.run()`` there, ``notify`` after each
    stored measurement, ``uploader.stop()`` when measuring is over."""

    def __init__(
        self,
        store: Store,
        collector_url: str,
        *,
        every: int = DEFAULT_EVERY,
        interval: float = DEFAULT_INTERVAL,
        log: Callable[[str], None] | None = None,
        **options: Any,
    ) -> None:
        self.store = store
        self.collector_url = collector_url
        self.every = max(1, every)
        self.interval = interval
        self.log = log or (lambda _message: None)
        #: Passed to :func:`probe.upload.upload`.  Few retries: the upload at the end of
        #: the run, and the next run, try again anyway.
        self.options = {"max_retries": 0, "timeout": 30.0, **options}
        self.result: UploadResult | None = None
        self.attempts = 0
        self._waiting = 0
        self._wake = trio.Event()
        self._stopping = False

    def notify(self, _measurement: Measurement | None = None) -> None:
        self._waiting += 1
        # The first waiting measurement starts the clock; the threshold ends the wait.
        if self._waiting == 1 or self._waiting >= self.every:
            self._wake.set()

    def stop(self) -> None:
        """Measuring is over: finish the upload in progress, if any, and return."""
        self._stopping = True
        self._wake.set()

    async def _sleep_until_woken(self) -> None:
        await self._wake.wait()
        self._wake = trio.Event()

    async def run(self) -> None:
        wait = self.interval
        while not self._stopping:
            if self._waiting == 0:
                await self._sleep_until_woken()
                continue
            with trio.move_on_after(wait):
                while self._waiting < self.every and not self._stopping:
                    await self._sleep_until_woken()
            if self._stopping:
                return  # the upload at the end of the run sends the rest
            self._waiting = 0
            outcome = await self._upload_once()
            if outcome.error is not None or outcome.rejected:
                wait = min(MAX_INTERVAL, max(wait, 1.0) * 2)
                if outcome.error is not None:
                    self.log(f"{outcome.error}; trying again later (the measurements stay queued)")
            else:
                wait = self.interval

    async def _upload_once(self) -> UploadResult:
        self.attempts += 1
        send = partial(upload, self.store, self.collector_url, log=self.log, **self.options)
        try:
            # Not abandoned on cancellation: a batch the collector has answered must
            # also be marked here, or it would only be sent (harmlessly) again.
            outcome = await trio.to_thread.run_sync(send)
        except UploadError as exc:
            outcome = UploadResult(collector=self.collector_url, error=str(exc))
        self.result = outcome if self.result is None else merge(self.result, outcome)
        return outcome


def merge(earlier: UploadResult, later: UploadResult) -> UploadResult:
    """Two uploads of one run as one account: counts add up, what is still queued and
    why the last one stopped come from the later one."""
    # The later upload went through the whole queue unless it stopped on an error, so
    # its refusals are then the whole story; otherwise keep the earlier ones too.
    seen = {r["id"] for r in later.rejected}
    earlier_rejected = [r for r in earlier.rejected if r["id"] not in seen] if later.error else []
    return UploadResult(
        collector=later.collector,
        acknowledged=earlier.acknowledged + later.acknowledged,
        stored=earlier.stored + later.stored,
        duplicate=earlier.duplicate + later.duplicate,
        batches=earlier.batches + later.batches,
        retries=earlier.retries + later.retries,
        rejected=earlier_rejected + later.rejected,
        remaining=later.remaining,
        error=later.error,
    )

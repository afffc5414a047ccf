"""One run: every target measured concurrently, each saved soon after it completes.

Structure (trio's way): one nursery holds a task per target; a ``CapacityLimiter``
bounds how many measure at once; the measuring sits in an optional deadline scope.
Beside it, outside the deadline, runs the one writer task
(:class:`probe.store.writer.MeasurementWriter`): each finished measurement is handed
to it in a *shielded* scope, and it commits them in batches (within
``RunPlan.commit_delay`` seconds), so that neither the deadline nor Ctrl-C can drop a
measurement that already completed.  A measurement counts as done (progress, the
result, live upload) only once committed, so a kill -9 loses nothing that was reported.
Targets still in flight are simply not recorded; ``kuzot run --resume`` measures them
next time.

With ``RunPlan.workers`` above 1 the measuring is done by child processes
(:mod:`probe.workers`), whose pool runs beside the writer; everything above (the
limiter, the budget check, the deadline, the one writer) stays here, in the parent.

One target never ends a run: an exception that escapes ``measure_url`` (a bug, or
hostile input nobody foresaw) becomes that target's stored measurement, with
annotations ``failure: unknown_failure`` and ``exception: <module.Class>``, so the run
goes on and ``--resume`` does not meet the same target again.  Only the class is
kept: an exception's message may hold anything, the probe's own address included.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, cast

import trio

from probe import SOFTWARE_NAME, __version__
from probe.bandwidth import ByteBudget, estimate_bytes
from probe.context import ControlFetcher, MeasurementContext, failed_measurement, measure_or_record
from probe.errors import first_error
from probe.records import ControlObservations, Measurement, Run, utc_now
from probe.settings import ProbeSettings
from probe.steps.bundle import check_bundle
from probe.store.deferred import DeferredStore
from probe.store.writer import DEFAULT_MAX_DELAY, DEFAULT_MAX_ITEMS, Finished, MeasurementWriter
from probe.targets import Target
from probe.worker_start import EarlyWorkers
from probe.workers import WorkerPool, WorkerSpec

if TYPE_CHECKING:  # the database code is loaded when the store opens (probe/store/__init__.py)
    from probe.store import Store

#: failed_measurement and measure_or_record live in probe.context (a worker process
#: imports them without this, and so without the database layer); still offered here.
__all__ = ["RunPlan", "RunResult", "execute_run", "failed_measurement", "measure_or_record"]


@dataclass
class RunPlan:
    targets: Sequence[Target]
    settings: ProbeSettings
    concurrency: int = 16
    deadline: float | None = None
    canaries: Sequence[Target] = ()
    control: ControlFetcher | None = None
    options: dict[str, object] = field(default_factory=dict)
    budget: ByteBudget | None = None
    #: Continue this interrupted run (its id) instead of starting a new one.
    resume_run_id: str | None = None
    #: A finished measurement is committed at the latest this many seconds later ...
    commit_delay: float = DEFAULT_MAX_DELAY
    #: ... or as soon as this many are waiting.
    commit_items: int = DEFAULT_MAX_ITEMS
    #: Child processes that measure (1: measure in this process).  The run, its
    #: writer, budget and deadline stay here either way (probe/workers.py).
    workers: int = 1
    #: With workers: builds a child's own control vantage (picklable, e.g. a partial
    #: of a module-level function), since ``control`` cannot cross a process boundary.
    control_factory: Callable[[], object] | None = None
    #: With workers: the child's command (tests start a failing one); default
    #: :func:`probe.workers.worker_command`.
    worker_command: Sequence[str] | None = None
    #: With workers: children started ahead of the run (``kuzot run`` starts them first).
    early_workers: EarlyWorkers | None = None


@dataclass
class RunResult:
    run: Run
    measurements: list[Measurement] = field(default_factory=list)
    deadline_hit: bool = False
    skipped_for_budget: int = 0
    bytes_used: int = 0


Progress = Callable[[Measurement], None]
AfterSave = Callable[[Measurement], Awaitable[None]]


async def execute_run(
    plan: RunPlan,
    store: Store | DeferredStore,
    *,
    progress: Progress | None = None,
    sign: Callable[[Measurement], dict[str, str]] | None = None,
    after_save: AfterSave | None = None,
    run_id: str | None = None,
    sign_hash: Callable[[str], dict[str, str]] | None = None,
) -> RunResult:
    """Measure every target (and canary) of ``plan``; store each as it completes.

    ``sign_hash`` (preferred; :meth:`probe.signing.SigningKey.sign_hash`) signs a
    record's content hash, computed once with its row; ``sign`` signs a measurement.
    ``progress`` and ``after_save`` are called once the measurement is committed.

    Returns when every target is done or the deadline passed.  The run row is
    written first (status ``running``) and closed last; if the process dies in
    between, the row stays ``running`` with no end time, which ``kuzot status``
    reports as an interrupted run.  With a :class:`DeferredStore` (a new run only)
    the measuring starts first and the row is written as soon as the database is
    open, before any measurement is committed.
    """
    run = _new_run(plan, run_id)
    opening: _RunRow | None = None
    ready: Store | None = None
    if isinstance(store, DeferredStore):
        if plan.resume_run_id is not None:
            raise ValueError("a resumed run needs its database open before it starts")
        opening = _RunRow(store, run)
    else:
        ready = store
        if plan.resume_run_id is not None:
            await trio.to_thread.run_sync(ready.reopen_run, plan.resume_run_id)
        else:
            await trio.to_thread.run_sync(ready.begin_run, run)
    result = RunResult(run=run)
    status = "interrupted"
    try:
        try:
            await _Runner(plan, result, progress, after_save).measure_all(ready, sign, sign_hash, opening)
        except BaseExceptionGroup as group:
            failed = _store_error(group)
            if failed is not None:
                raise failed from None
            raise
        status = "deadline" if result.deadline_hit else "finished"
    finally:
        with trio.CancelScope(shield=True):
            opened = opening.written if opening is not None else ready
            if opened is not None:  # no row was written if the database never opened
                await trio.to_thread.run_sync(opened.finish_run, run.id, status)
        run.status = status
        run.finished_at = utc_now() + timedelta(seconds=plan.settings.clock_offset)
    return result


class _RunRow:
    """A deferred store, opened once, with the run's row written before anything else."""

    def __init__(self, deferred: DeferredStore, run: Run) -> None:
        self.deferred = deferred
        self.run = run
        #: The store, once the run row is in it.
        self.written: Store | None = None
        self._lock = trio.Lock()

    async def __call__(self) -> Store:
        async with self._lock:
            if self.written is None:
                self.written = await trio.to_thread.run_sync(self._open_and_begin)
            return self.written

    def _open_and_begin(self) -> Store:
        """In the worker thread: the database opened (SQLAlchemy imported) and the run's
        row written, one hop."""
        store = self.deferred.open()
        store.begin_run(self.run)
        return store


def _new_run(plan: RunPlan, run_id: str | None) -> Run:
    settings = plan.settings
    return Run(
        id=plan.resume_run_id or run_id or str(uuid.uuid4()),
        started_at=utc_now() + timedelta(seconds=settings.clock_offset),
        software_name=SOFTWARE_NAME,
        software_version=__version__,
        probe_asn=settings.probe_asn,
        probe_cc=settings.probe_cc,
        probe_network=settings.probe_network,
        resolvers=[f"{ip}:{port}" if ":" not in ip else f"[{ip}]:{port}" for ip, port in settings.resolvers]
        + (["system"] if settings.system_resolver else []),
        targets_total=len(plan.targets),
        options={**plan.options, "targets": [[t.url, t.category_code] for t in plan.targets]},
    )


def _store_error(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The database failing (full disk) is the run's one error, not a group (unless the
    user pressed Ctrl-C, which stays what it is)."""
    from probe.store.engine import StoreError

    failed = group.subgroup(StoreError)
    if failed is None or group.subgroup(KeyboardInterrupt) is not None:
        return None
    return first_error(failed)


class _Runner:
    """One run's measuring tasks and their hand-over to the writer."""

    def __init__(
        self, plan: RunPlan, result: RunResult, progress: Progress | None, after_save: AfterSave | None
    ) -> None:
        self.plan = plan
        self.result = result
        self.progress = progress
        self.after_save = after_save
        self.ctx = MeasurementContext(plan.settings, run_id=result.run.id)
        # A malformed CA bundle fails here, before anything is measured (``kuzot run``
        # refuses it even earlier, with its options; this guards other callers).  With
        # workers the parent measures only if they all die: it checks the bundle alone
        # and builds its TLS context (the system store, about 50 ms) only if it must.
        if plan.workers <= 1:
            _ = self.ctx.ssl_context
        elif plan.settings.ca_bundle is not None:
            check_bundle(plan.settings.ca_bundle)
        self.limiter = trio.CapacityLimiter(max(1, plan.concurrency))
        self.send: trio.MemorySendChannel[Finished] | None = None
        self.pool: WorkerPool | None = None
        self.fallback_control: _FallbackControl | None = None
        if plan.workers > 1:
            spec = WorkerSpec(plan.settings, result.run.id, plan.control_factory)
            self.pool = WorkerPool(spec, plan.workers, plan.worker_command, plan.early_workers)
            if plan.control is None and plan.control_factory is not None:
                self.fallback_control = _FallbackControl(plan.control_factory)

    async def measure_all(
        self,
        store: Store | None,
        sign: Callable[[Measurement], dict[str, str]] | None,
        sign_hash: Callable[[str], dict[str, str]] | None,
        opening: Callable[[], Awaitable[Store]] | None = None,
    ) -> None:
        plan, result = self.plan, self.result
        writer = MeasurementWriter(
            store,
            opening=opening,
            on_committed=self.committed,
            sign=sign,
            sign_hash=sign_hash,
            max_delay=plan.commit_delay,
            max_items=plan.commit_items,
        )
        send, receive = writer.open_channel()
        self.send = send
        scope = trio.move_on_after(plan.deadline) if plan.deadline and math.isfinite(plan.deadline) else None
        async with trio.open_nursery() as outer:
            outer.start_soon(writer.run, receive)
            if opening is not None:
                # Opened beside the first measurements (a failure ends the run at once);
                # the writer's first commit waits for it.
                outer.start_soon(opening)
            async with send:  # closed when measuring ends: the writer commits the rest
                if self.pool is not None:
                    await outer.start(self.pool.run)
                try:
                    with scope if scope is not None else nullcontext():
                        async with trio.open_nursery() as nursery:
                            for canary in plan.canaries:
                                nursery.start_soon(self.one, canary, "canary")
                            for target in plan.targets:
                                nursery.start_soon(self.one, target, "target")
                finally:
                    if self.pool is not None:
                        await self.pool.close()  # the children exit; run() reaps them
                    if self.fallback_control is not None:
                        with trio.CancelScope(shield=True):
                            await self.fallback_control.aclose()
                # "Hit" also when the work merely ended after the deadline: a report
                # that says the deadline held when it did not would be a lie.
                result.deadline_hit = scope is not None and (
                    scope.cancelled_caught or trio.current_time() >= scope.deadline
                )

    async def committed(self, item: Finished) -> None:
        self.result.measurements.append(item.measurement)
        self.result.bytes_used += item.bytes_used
        if self.progress is not None:
            self.progress(item.measurement)
        if self.after_save is not None:
            await self.after_save(item.measurement)

    async def save(self, m: Measurement) -> None:
        cost = estimate_bytes(m)
        if self.plan.budget is not None:
            # Spent at once (the bytes have crossed the network), so the next target's
            # budget check counts them although the commit comes a little later.
            self.plan.budget.spend(cost)
        assert self.send is not None
        # A broken channel means the writer failed: its error ends the run.
        with trio.CancelScope(shield=True), suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.send.send(Finished(m, cost))

    async def one(self, target: Target, role: str) -> None:
        plan = self.plan
        async with self.limiter:
            if plan.budget is not None and plan.budget.exhausted():
                # Checked when a slot frees up, so at most `concurrency` measurements
                # can still be in flight when the cap is reached.
                self.result.skipped_for_budget += 1
                return
            control = (plan.control or self.fallback_control) if role == "target" else None
            delegate = self.pool.measure if self.pool is not None else None
            m = await measure_or_record(target, self.ctx, role, control, delegate=delegate)
            # Handed over while still holding the slot, so the next target's budget
            # check already counts this measurement's bytes.
            await self.save(m)


class _FallbackControl:
    """The parent's own control vantage in a ``--workers`` run, built the first time the
    parent has to measure a target itself (every child died).

    Why not built at the start: each child builds its own, and the parent's would cost
    it httpx and the DoH client (about 0.15 s of CPU, on the critical path of the run's
    start) for something it almost never uses."""

    def __init__(self, factory: Callable[[], object]) -> None:
        self.factory = factory
        self.built: object | None = None
        self.tried = False

    async def __call__(self, url: str) -> ControlObservations | None:
        if not self.tried:
            self.tried = True
            self.built = self.factory()
        if self.built is None:
            return None  # the run has no control vantage: nothing to compare with
        fetch = cast(ControlFetcher, self.built)
        return await fetch(url)

    async def aclose(self) -> None:
        close = getattr(self.built, "aclose", None)
        if close is not None:
            await close()

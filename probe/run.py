"""One run: every target measured concurrently, each saved the moment it completes.

Structure (trio's way): one nursery holds a task per target; a ``CapacityLimiter``
bounds how many measure at once; the whole run sits in an optional deadline scope.
Each finished measurement is written inside a *shielded* scope under a lock, so that
neither the deadline nor Ctrl-C can drop a measurement that already completed: the
write finishes, then the cancellation proceeds.  Targets still in flight are simply
not recorded; ``kuzot run --resume`` measures them next time.

One target never ends a run: an exception that escapes :func:`measure_url` (a bug, or
hostile input nobody foresaw) becomes that target's stored measurement, with
annotations ``failure: unknown_failure`` and ``exception: <module.Class>``, so the run
goes on and ``--resume`` does not meet the same target again.  Only the class is
kept: an exception's message may hold anything, the probe's own address included.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import trio

from probe import SOFTWARE_NAME, __version__
from probe.bandwidth import ByteBudget, estimate_bytes
from probe.failures import Failure
from probe.measure import ControlFetcher, MeasurementContext, measure_url
from probe.records import Measurement, Run, utc_now
from probe.settings import ProbeSettings
from probe.store import Store
from probe.targets import Target


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
    store: Store,
    *,
    progress: Progress | None = None,
    sign: Callable[[Measurement], dict[str, str]] | None = None,
    after_save: AfterSave | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Measure every target (and canary) of ``plan``; store each as it completes.

    Returns when every target is done or the deadline passed.  The run row is
    written first (status ``running``) and closed last; if the process dies in
    between, the row stays ``running`` with no end time, which ``kuzot status``
    reports as an interrupted run.
    """
    settings = plan.settings
    run = Run(
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
    if plan.resume_run_id is not None:
        await trio.to_thread.run_sync(store.reopen_run, plan.resume_run_id)
    else:
        await trio.to_thread.run_sync(store.begin_run, run)
    result = RunResult(run=run)
    ctx = MeasurementContext(settings, run_id=run.id)
    limiter = trio.CapacityLimiter(max(1, plan.concurrency))
    write_lock = trio.Lock()
    status = "interrupted"

    async def save(m: Measurement) -> None:
        with trio.CancelScope(shield=True):
            async with write_lock:
                envelope = sign(m) if sign is not None else None
                cost = estimate_bytes(m)
                await trio.to_thread.run_sync(
                    lambda: store.save_measurement(m, signature=envelope, bytes_used=cost)
                )
                result.measurements.append(m)
                result.bytes_used += cost
                if plan.budget is not None:
                    plan.budget.spend(cost)
                if progress is not None:
                    progress(m)
        if after_save is not None:
            await after_save(m)

    async def one(target: Target, role: str) -> None:
        async with limiter:
            if plan.budget is not None and plan.budget.exhausted():
                # Checked when a slot frees up, so at most `concurrency` measurements
                # can still be in flight when the cap is reached.
                result.skipped_for_budget += 1
                return
            started_at = utc_now() + timedelta(seconds=settings.clock_offset)
            try:
                m = await measure_url(
                    target, ctx, role=role, control=plan.control if role == "target" else None
                )
            except Exception as exc:  # one target's trouble is that target's record
                m = failed_measurement(target, ctx, role, exc, started_at)
            except BaseExceptionGroup as group:
                _, cancellation = group.split(Exception)
                if cancellation is None:  # pragma: no cover -- split() leaves something
                    raise
                raise cancellation from None  # the run is being cancelled: not a failure
            # Saved while still holding the slot, so the next target's budget check
            # already counts this measurement's bytes.
            await save(m)

    try:
        scope = trio.move_on_after(plan.deadline) if plan.deadline and math.isfinite(plan.deadline) else None
        with scope if scope is not None else nullcontext():
            async with trio.open_nursery() as nursery:
                for canary in plan.canaries:
                    nursery.start_soon(one, canary, "canary")
                for target in plan.targets:
                    nursery.start_soon(one, target, "target")
        # "Hit" also when the work merely ended after the deadline: a report that says
        # the deadline held when it did not would be a lie.
        result.deadline_hit = scope is not None and (
            scope.cancelled_caught or trio.current_time() >= scope.deadline
        )
        status = "deadline" if result.deadline_hit else "finished"
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(store.finish_run, run.id, status)
        run.status = status
        run.finished_at = utc_now() + timedelta(seconds=plan.settings.clock_offset)
    return result


def failed_measurement(
    target: Target, ctx: MeasurementContext, role: str, exc: BaseException, started_at: datetime
) -> Measurement:
    """The record of a target whose measurement raised ``exc``: no observations, and
    annotations naming ``unknown_failure`` and the innermost exception's class."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]  # trio wraps a task's error in a group per nursery
    settings = ctx.settings
    kind = type(exc)
    module = kind.__module__.split(".")[0]
    measurement = Measurement(
        id=str(uuid.uuid4()),
        url=target.url,
        domain=(urlsplit(target.url).hostname or "").lower(),
        started_at=started_at,
        run_id=ctx.run_id,
        role=role,
        category_code=target.category_code,
        probe_asn=settings.probe_asn,
        probe_cc=settings.probe_cc,
        probe_network=settings.probe_network,
        software_name=SOFTWARE_NAME,
        software_version=__version__,
        annotations={
            "failure": Failure.UNKNOWN.value,
            "exception": kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}",
        },
    )
    if settings.clock_offset:
        measurement.annotations["simulated_clock"] = "true"
    return measurement

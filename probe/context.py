"""What every measurement of a run shares, and the record of one that failed.

Why apart from :mod:`probe.measure`: the parent of a ``kuzot run --workers`` run
hands every target to a child and never measures unless all of them die, yet it needs
the run's context, the blank record a measurement starts from and the record of a
failure.  Importing them from :mod:`probe.measure` loaded the whole measuring stack
(httpx, dnspython's message code, cryptography's X.509 parser; about a fifth of a
second of CPU) into that parent, on the critical path of every run's start, on a core
its children were importing on.  Here they cost only the record types; the measuring
itself is imported the first time this process has to measure.
"""

from __future__ import annotations

import functools
import ssl
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from probe import SOFTWARE_NAME, __version__
from probe.errors import first_error
from probe.failures import Failure
from probe.records import ControlObservations, Measurement, utc_now
from probe.settings import ProbeSettings
from probe.targets import Target

ControlFetcher = Callable[[str], Awaitable[ControlObservations | None]]


class MeasurementContext:
    """What all measurements of one run share: settings and the TLS context."""

    def __init__(
        self, settings: ProbeSettings, *, run_id: str | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.settings = settings
        self.run_id = run_id
        if ssl_context is not None:
            self.ssl_context = ssl_context

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """Built when first needed (or given, prebuilt): loading the system trust store
        is about 50 ms, which a run whose workers measure need not spend in its parent."""
        from probe.steps import tls

        return tls.make_ssl_context(self.settings.ca_bundle)


def new_measurement(target: Target, ctx: MeasurementContext, role: str, started_at: datetime) -> Measurement:
    """The record a measurement of ``target`` starts from: what and from where, no
    observations yet (a run whose measurement raised stores exactly this)."""
    settings = ctx.settings
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
    )
    if settings.clock_offset:
        measurement.annotations["simulated_clock"] = "true"
    if target.original_url:
        measurement.annotations["original_url"] = target.original_url
    return measurement


async def measure_or_record(
    target: Target,
    ctx: MeasurementContext,
    role: str,
    control: ControlFetcher | None,
    *,
    delegate: Callable[[Target, str], Awaitable[Measurement | None]] | None = None,
) -> Measurement:
    """``target``'s measurement, or, if that raised, the record of the failure: one
    target never ends a run.  ``delegate`` (a worker pool's ``measure``) is asked
    first; its ``None`` means "measure it here"."""
    started_at = utc_now() + timedelta(seconds=ctx.settings.clock_offset)
    try:
        measured = await delegate(target, role) if delegate is not None else None
        if measured is not None:
            return measured
        from probe.measure import measure_url  # loaded once, by the first target measured here

        return await measure_url(target, ctx, role=role, control=control)
    except Exception as exc:  # one target's trouble is that target's record
        return failed_measurement(target, ctx, role, exc, started_at)
    except BaseExceptionGroup as group:
        _, cancellation = group.split(Exception)
        if cancellation is None:  # pragma: no cover -- split() leaves something
            raise
        raise cancellation from None  # the run is being cancelled: not a failure


def failed_measurement(
    target: Target, ctx: MeasurementContext, role: str, exc: BaseException, started_at: datetime
) -> Measurement:
    """The record of a target whose measurement raised ``exc``: no observations, and
    annotations naming ``unknown_failure`` and the innermost exception's class."""
    kind = type(first_error(exc))
    module = kind.__module__.split(".")[0]
    measurement = new_measurement(target, ctx, role, started_at)
    measurement.annotations["failure"] = Failure.UNKNOWN.value
    measurement.annotations["exception"] = (
        kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
    )
    return measurement

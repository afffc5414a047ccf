"""One volunteer's run, wired end to end: what ``kuzot run`` does, callable from a script.

:func:`probe.run.execute_run` measures a plan into a store; a *session* is everything
around it that a volunteer's run needs: consent, the settings file under the options,
the network learnt from the control helper, the resume look-up, the byte budget, the
signing key, the control vantage's lifetime, uploading while measuring and at the end.
The command only parses, calls :func:`run_session` and prints; a notebook or a script
does the same with a :class:`SessionOptions`.

Judging the run for its summary sentence is not here: judging is ``analysis``, which
only the presentation layers (the CLI, the Explorer) import.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from probe.bandwidth import ByteBudget
from probe.control.choice import ControlChoice
from probe.errors import InputError, KuzotError, SetupError
from probe.i18n import gettext as _
from probe.records import Measurement, Run
from probe.run import RunPlan, RunResult, execute_run
from probe.settings import ProbeSettings, Timeouts
from probe.signing import SigningKey
from probe.steps import dns
from probe.store.deferred import DeferredStore, looks_usable
from probe.targets import RefusedInput, Target, default_targets_path, load_targets, targets_from_urls
from probe.upload.pacing import DEFAULT_EVERY
from probe.volunteer.paths import default_db_url
from probe.volunteer.trust import check_ca_bundle
from probe.worker_start import EarlyWorkers

if TYPE_CHECKING:  # the uploader (httpx) is loaded only by a run that uploads
    from probe.store import Store
    from probe.upload import UploadResult
    from probe.upload.live import LiveUploader

#: Hosts every network can reach; if all of them fail, the volunteer's link is down
#: and none of the run's measurements may say "blocked".
DEFAULT_CANARIES = ("https://www.google.com/", "https://www.wikipedia.org/", "https://www.cloudflare.com/")


@dataclass
class SessionOptions:
    """The options of ``kuzot run``, by the names of its command-line options (``--url``
    is ``url``, ``--resolver`` is ``resolver``); ``None`` means "the settings file's or
    the built-in default"."""

    targets: str | Path | None = None
    url: list[str] = field(default_factory=list)
    db: str | None = None
    resolver: list[str] = field(default_factory=list)
    no_system_resolver: bool = False
    ca_bundle: Path | None = None
    source_address: str | None = None
    concurrency: int | None = None
    #: Child processes that measure (``--workers``); 1 measures in this process.
    workers: int = 1
    deadline: float | None = None
    timeout: float | None = None
    max_body_bytes: int = 1 << 20
    dns_window: float = 0.3
    probe_asn: int | None = None
    probe_cc: str | None = None
    probe_network: str | None = None
    simulated_start: datetime | None = None
    canary: list[str] | None = None
    no_canaries: bool = False
    control: str | None = None
    doh_control: str | None = None
    doh_connect_ip: str | None = None
    lab_public_network: list[str] = field(default_factory=list)
    resume: bool = False
    max_bytes: int | None = None
    max_bytes_per_day: int | None = None
    accept_risks: bool = False
    upload: str | None = None
    upload_every: int = DEFAULT_EVERY
    #: Where the network's AS number came from (``option``, ``control-helper``); set by the session.
    asn_source: str | None = None

    @classmethod
    def from_namespace(cls, args: Any) -> SessionOptions:
        """The options from parsed ``kuzot run`` arguments (extra attributes are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in vars(args).items() if name in names})


@dataclass
class SessionHooks:
    """What a caller hears while the session runs (each optional): the CLI's messages and
    progress bar.  ``planned`` is called as soon as the targets (and the inputs refused)
    are known; ``started`` just before measuring; ``measured`` after each measurement;
    ``finished`` when measuring ends, before the final upload; ``upload_log`` with the
    live and final uploads' messages."""

    planned: Callable[[SessionPlan], None] | None = None
    started: Callable[[SessionPlan], None] | None = None
    measured: Callable[[Measurement], None] | None = None
    finished: Callable[[], None] | None = None
    upload_log: Callable[[str], None] | None = None


@dataclass
class SessionPlan:
    """What the session is about to measure."""

    targets: list[Target]
    canaries: list[Target]
    refused: list[RefusedInput]
    #: The interrupted run being finished (``resume``), or None for a new run.
    resumed: Run | None = None


@dataclass
class SessionResult:
    """A finished session.  ``result`` is None when there was nothing to resume."""

    plan: SessionPlan
    result: RunResult | None
    #: The live and final uploads as one account, or None without ``upload``.
    upload: UploadResult | None = None
    #: Why the final upload did not start (the measurements stay queued), if it did not.
    upload_error: str | None = None


def build_settings(options: SessionOptions) -> ProbeSettings:
    """The probe's settings from the options; a malformed option is an :class:`InputError`."""
    try:
        resolvers = tuple(dns.parse_resolver(r) for r in options.resolver)
    except ValueError as exc:
        raise InputError(_("--resolver: {error}").format(error=exc)) from exc
    if not resolvers:
        resolvers = tuple(dns.system_nameservers())
    check_ca_bundle(options.ca_bundle)
    for network in options.lab_public_network:
        try:
            ipaddress.ip_network(network)
        except ValueError as exc:
            raise InputError(_("--lab-public-network: {error}").format(error=exc)) from exc
    start = options.simulated_start
    return ProbeSettings(
        resolvers=resolvers,
        system_resolver=not options.no_system_resolver,
        ca_bundle=options.ca_bundle,
        source_address=options.source_address,
        timeouts=Timeouts.scaled(options.timeout) if options.timeout else Timeouts(),
        dns_window=options.dns_window,
        max_bytes=options.max_body_bytes,
        probe_asn=options.probe_asn,
        probe_cc=options.probe_cc,
        probe_network=options.probe_network,
        clock_offset=(start - datetime.now(UTC)).total_seconds() if start else 0.0,
        public_networks=tuple(options.lab_public_network),
    )


def apply_config(options: SessionOptions) -> SessionOptions:
    """The options with what the command line left out filled from the settings file."""
    from probe.volunteer.config import load_config

    config = load_config()
    merged = config.merged_with(
        {
            "targets": options.targets,
            "resolvers": options.resolver,
            "concurrency": options.concurrency,
            "db": options.db,
            "max_bytes": options.max_bytes,
            "max_bytes_per_day": options.max_bytes_per_day,
            "probe_asn": options.probe_asn,
            "probe_cc": options.probe_cc,
        }
    )
    upload = options.upload
    if upload is None and config.get("upload") and config.get("collector_url"):
        upload = str(config.get("collector_url"))
    return dataclasses.replace(
        options,
        targets=options.targets if options.url else merged["targets"],
        resolver=list(merged["resolvers"]),
        concurrency=merged["concurrency"],
        db=merged["db"],
        max_bytes=merged["max_bytes"],
        max_bytes_per_day=merged["max_bytes_per_day"],
        probe_asn=merged["probe_asn"],
        probe_cc=merged["probe_cc"],
        upload=upload,
    )


def learn_vantage(options: SessionOptions) -> SessionOptions:
    """Without ``probe_asn``, ask the control helper which network this is (it answers
    only the AS number, country and network name; see probe/control/vantage.py)."""
    options = dataclasses.replace(options, asn_source="option" if options.probe_asn is not None else None)
    # The control helper, else the collector this run uploads to (kuzot serve --with-control).
    helper = options.control
    if not helper and options.upload:
        parts = urlsplit(str(options.upload))
        helper = f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else None
    if options.probe_asn is not None or not helper:
        return options
    from probe.control.vantage import ask_vantage

    vantage = ask_vantage(helper, source_address=options.source_address)
    if vantage is None:
        return options
    return dataclasses.replace(
        options,
        probe_asn=vantage.probe_asn,
        asn_source="control-helper",
        probe_cc=vantage.probe_cc or options.probe_cc,
        probe_network=options.probe_network or vantage.probe_network_name,
    )


def _targets(options: SessionOptions, refused: list[RefusedInput]) -> list[Target]:
    """The run's targets; a bad URL or row goes into ``refused`` (with its reason) and the
    rest are measured.  Only a list that cannot be read at all stops the run."""
    if options.url:
        targets = targets_from_urls(options.url, refused=refused)
        if options.targets:
            targets = load_targets(options.targets, refused=refused) + targets
        return targets
    return load_targets(options.targets or default_targets_path(), refused=refused)


def _canaries(options: SessionOptions) -> list[Target]:
    if options.no_canaries:
        return []
    return targets_from_urls(options.canary if options.canary is not None else list(DEFAULT_CANARIES))


def resumable(store: Store) -> tuple[Run, list[Target]] | None:
    """The newest run that did not finish, and its targets not yet measured."""
    for run in reversed(store.runs()):
        if run.status == "finished":
            return None
        if run.status in ("interrupted", "running", "deadline"):
            planned = [Target(url, code) for url, code in run.options.get("targets", [])]
            done = {m.url for m in store.iter_measurements(run_id=run.id)}
            return run, [t for t in planned if t.url not in done]
    return None


def _signing_key(store: Store | DeferredStore) -> SigningKey:
    """This installation's key (made on first run) that signs every measurement."""
    from probe.signing import SigningKeyError, load_or_create_key
    from probe.volunteer.paths import config_dir

    try:
        return load_or_create_key(config_dir())
    except (SigningKeyError, OSError) as exc:
        store.close()
        raise InputError(_("cannot use the signing key: {error}").format(error=exc)) from exc


def _control_choice(options: SessionOptions) -> ControlChoice:
    return ControlChoice(options.control, options.doh_control, options.doh_connect_ip, options.ca_bundle)


def _budget(options: SessionOptions, store: Store | DeferredStore) -> ByteBudget | None:
    if options.max_bytes is None and options.max_bytes_per_day is None:
        return None
    assert not isinstance(store, DeferredStore)  # a capped run opens its database first
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    budget = ByteBudget(
        per_run=options.max_bytes,
        per_day=options.max_bytes_per_day,
        used_today=store.bytes_used_since(midnight),
    )
    if budget.exhausted():
        store.close()
        raise SetupError(_("today's byte cap is already used up; nothing measured (try tomorrow)"))
    return budget


def _prepare(options: SessionOptions) -> tuple[SessionOptions, ProbeSettings, list[Target]]:
    """Consent, the settings file, the network; the options checked before anything is opened."""
    from probe.volunteer.consent import require_consent

    require_consent(accept_flag=options.accept_risks)
    options = learn_vantage(apply_config(options))
    settings = build_settings(options)
    canaries = _canaries(options)
    if options.concurrency is None or options.concurrency < 1:
        raise InputError(_("--concurrency must be at least 1"))
    if options.upload_every < 1:
        raise InputError(_("--upload-every must be at least 1"))
    if options.workers < 1:
        raise InputError(_("--workers must be at least 1"))
    return options, settings, canaries


def _open(
    options: SessionOptions, canaries: list[Target], hooks: SessionHooks
) -> tuple[Store | DeferredStore | None, SessionPlan]:
    """The store and what to measure; no store when there is nothing to resume.

    A new run with no byte cap and no upload, whose database looks usable, gets a
    :class:`DeferredStore`: it needs nothing from its database before its first
    commit, and opening it (SQLAlchemy's import, most of it) then overlaps the first
    measurements instead of delaying them.  Everything else opens it here, first."""
    refused: list[RefusedInput] = []
    if options.resume:
        store = _open_now(options.db)
        found = resumable(store)
        if found is None:
            store.close()
            return None, SessionPlan([], canaries, refused)
        run, targets = found
        plan = SessionPlan(targets, canaries, refused, resumed=run)
    else:
        plan = SessionPlan(_targets(options, refused), canaries, refused)
    if hooks.planned is not None:
        hooks.planned(plan)
    if options.resume:
        return store, plan
    if not plan.targets and refused:
        raise InputError(_("no valid URL to measure (each one was refused, see above)"))
    url = options.db or default_db_url()
    capped = options.max_bytes is not None or options.max_bytes_per_day is not None
    if not capped and not options.upload and looks_usable(url):
        return DeferredStore(url), plan
    return _open_now(url), plan


def _open_now(url: str | None) -> Store:
    from probe.store import Store  # SQLAlchemy and the models: a deferred store loads them later

    return Store.open(url)


def _run_plan(
    options: SessionOptions,
    settings: ProbeSettings,
    plan: SessionPlan,
    store: Store | DeferredStore,
    early_workers: EarlyWorkers | None = None,
) -> RunPlan:
    assert options.concurrency is not None
    return RunPlan(
        targets=plan.targets,
        settings=settings,
        concurrency=options.concurrency,
        deadline=options.deadline,
        canaries=plan.canaries,
        workers=options.workers,
        control_factory=_control_choice(options).build if options.workers > 1 else None,
        early_workers=early_workers,
        options={
            "concurrency": options.concurrency,
            **({"workers": options.workers} if options.workers > 1 else {}),
            "canaries": len(plan.canaries),
            "asn_source": options.asn_source,
            **({"refused_inputs": [r.to_dict() for r in plan.refused]} if plan.refused else {}),
        },
        budget=_budget(options, store),
        resume_run_id=plan.resumed.id if plan.resumed is not None else None,
    )


async def _measure(
    options: SessionOptions,
    run_plan: RunPlan,
    store: Store | DeferredStore,
    signer: SigningKey,
    live: LiveUploader | None,
    hooks: SessionHooks,
) -> RunResult:
    """The run under a nursery: the live uploader beside it, the control closed after it.

    With workers, each child builds its own control and this process builds one only
    if it has to measure (:class:`probe.run.RunPlan`'s ``control_factory``); the
    option is still checked here, before anything is measured."""
    choice = _control_choice(options)
    if options.workers > 1:
        choice.check()
        control = None
    else:
        control = choice.build()

    def progress(m: Measurement) -> None:
        if hooks.measured is not None:
            hooks.measured(m)

    async def announce(m: Measurement) -> None:
        if live is not None:
            live.notify(m)

    async def measure() -> RunResult:
        run_plan.control = control
        try:
            return await execute_run(
                run_plan, store, progress=progress, sign_hash=signer.sign_hash, after_save=announce
            )
        finally:
            if control is not None:
                with trio.CancelScope(shield=True):
                    await control.aclose()

    if live is None:
        return await measure()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(live.run)
        try:
            return await measure()
        finally:
            live.stop()


def _final_upload(
    options: SessionOptions, hooks: SessionHooks, during: UploadResult | None
) -> tuple[UploadResult | None, str | None]:
    """Send the queue (this run and anything left from earlier ones) to the collector.

    Never fails the run: every measurement is already stored, and whatever does not
    reach the collector now stays queued for the next upload.  So only a few quick
    retries here (a scheduled run should not hang on a dead collector); ``kuzot upload``
    tries harder.  Returns the upload's account, or why it did not start."""
    assert options.upload is not None
    from probe.upload import upload_database
    from probe.upload.live import merge

    try:
        outcome = upload_database(
            options.db, options.upload, log=hooks.upload_log, max_retries=2, backoff=1.0
        )
    except KuzotError as exc:
        return None, str(exc)
    return (merge(during, outcome) if during is not None else outcome), None


def run_session(
    options: SessionOptions, hooks: SessionHooks | None = None, early_workers: EarlyWorkers | None = None
) -> SessionResult:
    """Run ``kuzot run`` with these options: measure, store, sign, upload; see the module.

    ``early_workers``: with ``--workers``, children the caller started before this
    session's own start-up (:class:`probe.workers.EarlyWorkers`); the caller closes it."""
    hooks = hooks or SessionHooks()
    options, settings, canaries = _prepare(options)
    store, plan = _open(options, canaries, hooks)
    if store is None:
        return SessionResult(plan, None)
    # _run_plan closes the store if the budget is spent.
    run_plan = _run_plan(options, settings, plan, store, early_workers)
    signer = _signing_key(store)  # closes the store if the key cannot be used
    live = None
    if options.upload:
        from probe.upload.live import LiveUploader

        assert not isinstance(store, DeferredStore)  # an uploading run opens its database first
        live = LiveUploader(store, options.upload, every=options.upload_every, log=hooks.upload_log)
    if hooks.started is not None:
        hooks.started(plan)
    try:
        result = trio.run(_measure, options, run_plan, store, signer, live, hooks)
    finally:
        if hooks.finished is not None:
            hooks.finished()
        store.close()
    if options.upload is None:
        return SessionResult(plan, result)
    uploaded, error = _final_upload(options, hooks, live.result if live is not None else None)
    return SessionResult(plan, result, upload=uploaded, upload_error=error)


__all__ = [
    "DEFAULT_CANARIES",
    "SessionHooks",
    "SessionOptions",
    "SessionPlan",
    "SessionResult",
    "apply_config",
    "build_settings",
    "learn_vantage",
    "resumable",
    "run_session",
]

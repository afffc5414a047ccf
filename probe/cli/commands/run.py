"""``kuzot run``: measure a target list from this network and store the results."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from probe.bandwidth import ByteBudget
from probe.cli._analysis import parse_date
from probe.cli._common import add_db_option, open_store, parse_asn
from probe.cli._output import write_rows
from probe.cli.commands import CommandError
from probe.records import Measurement, Run
from probe.run import RunPlan, RunResult, execute_run
from probe.settings import ProbeSettings, Timeouts
from probe.signing import SigningKey
from probe.steps import dns
from probe.store import Store
from probe.targets import (
    RefusedInput,
    Target,
    default_targets_path,
    load_targets,
    targets_from_urls,
)
from probe.upload import UploadResult
from probe.upload.live import DEFAULT_EVERY, DEFAULT_INTERVAL, LiveUploader, merge

#: Hosts every network can reach; if all of them fail, the volunteer's link is down
#: and none of the run's measurements may say "blocked".
DEFAULT_CANARIES = ("https://www.google.com/", "https://www.wikipedia.org/", "https://www.cloudflare.com/")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="measure the target list and store the results")
    p.add_argument(
        "--targets", metavar="FILE", help="test list in Citizen Lab format (default: our kg.csv)"
    )
    p.add_argument("--url", action="append", default=[], metavar="URL", help="measure this URL (repeatable)")
    add_db_option(p)
    p.add_argument(
        "--resolver",
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="ask this DNS resolver directly (repeatable; default: the system's nameservers)",
    )
    p.add_argument(
        "--no-system-resolver", action="store_true", help="skip getaddrinfo; ask only the --resolver servers"
    )
    p.add_argument(
        "--ca-bundle", metavar="FILE", type=Path, help="trust this CA in addition to the system store"
    )
    p.add_argument("--source-address", metavar="ADDR", help="send all probe traffic from this local address")
    p.add_argument("--concurrency", type=int, default=None, help="targets measured at once (default 16)")
    p.add_argument("--deadline", type=float, metavar="SECONDS", help="stop the whole run after this long")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="connect timeout; DNS, TLS and HTTP limits scale with it",
    )
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="bytes read per page (default 1 MiB)")
    p.add_argument("--dns-window", type=float, default=0.3, help="seconds to wait for injected DNS replies")
    p.add_argument("--probe-asn", type=parse_asn, help="your network's AS number, if you know it")
    p.add_argument("--probe-cc", help="your country code (default KG)", default=None)
    p.add_argument("--probe-network", help="your ISP's name, if you want to record it")
    p.add_argument(
        "--simulated-start",
        type=parse_date,
        metavar="TIME",
        help="labs and demos only: record times as if the run started at TIME (ISO 8601); "
        "such measurements are marked simulated_clock",
    )
    p.add_argument(
        "--canary",
        action="append",
        default=None,
        metavar="URL",
        help="a site every network reaches, to tell a dead link from blocking (repeatable)",
    )
    p.add_argument("--no-canaries", action="store_true", help="measure no canary sites")
    p.add_argument(
        "--control",
        metavar="URL",
        help="control helper to ask about each target while measuring it (kuzot control serve)",
    )
    p.add_argument(
        "--doh-control",
        metavar="URL|off",
        default=None,
        help="without --control, compare DNS with this DNS-over-HTTPS resolver "
        "(default: $KUZOT_DOH_CONTROL or https://dns.google/dns-query; 'off' disables)",
    )
    p.add_argument(
        "--doh-connect-ip",
        metavar="IP",
        help="connect to the DoH control at this address instead of resolving its name (labs, tests)",
    )
    p.add_argument(
        "--lab-public-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="labs only: count this network as public for the redirect-to-private rule (repeatable)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish the last interrupted run: measure only its targets not yet measured",
    )
    p.add_argument(
        "--max-bytes", type=int, metavar="N", help="stop starting measurements after N bytes this run"
    )
    p.add_argument(
        "--max-bytes-per-day",
        type=int,
        metavar="N",
        help="daily cap across runs (UTC day), counted from the database",
    )
    p.add_argument(
        "--accept-risks",
        action="store_true",
        help="accept the informed consent without the interactive screen (read `kuzot consent --show` first)",
    )
    p.add_argument(
        "--upload",
        metavar="URL",
        help="send measurements to this collector as the run goes (see --upload-every) and what is "
        "left at its end (default: the config's collector_url when upload is on); what cannot be sent "
        "stays queued for `kuzot upload`",
    )
    p.add_argument(
        "--upload-every",
        type=int,
        default=DEFAULT_EVERY,
        metavar="N",
        help=f"with --upload: send once N measurements are waiting, or {DEFAULT_INTERVAL:.0f} s after "
        f"the first of them (default {DEFAULT_EVERY})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    p.add_argument(
        "--json", action="store_true", help="print a machine-readable summary instead of the table"
    )
    p.set_defaults(handler=handle)


def _targets(args: argparse.Namespace, refused: list[RefusedInput] | None = None) -> list[Target]:
    """The run's targets; a bad URL or row goes into ``refused`` (with its reason) and the
    rest are measured.  Only a list that cannot be read at all stops the run."""
    if args.url:
        targets = targets_from_urls(args.url, refused=refused)
        if args.targets:
            targets = load_targets(args.targets, refused=refused) + targets
        return targets
    return load_targets(args.targets or default_targets_path(), refused=refused)


def build_settings(args: argparse.Namespace) -> ProbeSettings:
    try:
        resolvers = tuple(dns.parse_resolver(r) for r in args.resolver)
    except ValueError as exc:
        raise CommandError(f"--resolver: {exc}", status=2) from exc
    if not resolvers:
        resolvers = tuple(dns.system_nameservers())
    if args.ca_bundle is not None and not args.ca_bundle.is_file():
        raise CommandError(f"--ca-bundle {args.ca_bundle}: no such file", status=2)
    for network in args.lab_public_network:
        try:
            ipaddress.ip_network(network)
        except ValueError as exc:
            raise CommandError(f"--lab-public-network: {exc}", status=2) from exc
    return ProbeSettings(
        resolvers=resolvers,
        system_resolver=not args.no_system_resolver,
        ca_bundle=args.ca_bundle,
        source_address=args.source_address,
        timeouts=Timeouts.scaled(args.timeout) if args.timeout else Timeouts(),
        dns_window=args.dns_window,
        max_bytes=args.max_body_bytes,
        probe_asn=args.probe_asn,
        probe_cc=args.probe_cc,
        probe_network=args.probe_network,
        clock_offset=(args.simulated_start - datetime.now(UTC)).total_seconds()
        if args.simulated_start
        else 0.0,
        public_networks=tuple(args.lab_public_network),
    )


def _canaries(args: argparse.Namespace) -> list[Target]:
    if args.no_canaries:
        return []
    urls = args.canary if args.canary is not None else list(DEFAULT_CANARIES)
    return targets_from_urls(urls)


def step_summary(m: Measurement) -> dict[str, str]:
    """What each step did, in a word: ``ok``, a failure string, or ``-`` (not reached)."""

    def word(observations: list, *, purpose: str | None = None) -> str:
        chosen = [o for o in observations if purpose is None or getattr(o, "purpose", None) == purpose]
        if not chosen:
            return "-"
        if any(o.failure is None for o in chosen):
            return "ok"
        return str(chosen[0].failure)

    http = "-"
    if m.http:
        last = m.http[-1]
        http = str(last.failure) if last.failure else f"{last.status_code} ({len(m.http)} hop)"
    elif "failure" in m.annotations:  # the measurement itself failed (probe.run.failed_measurement)
        http = f"{m.annotations['failure']} ({m.annotations.get('exception', '?')})"
    return {
        "url": m.url,
        "dns": word(m.dns),
        "tcp": word(m.tcp),
        "tls": word(m.tls, purpose="target"),
        "http": http,
    }


def _apply_config(args: argparse.Namespace) -> None:
    """Fill options not given on the command line from the settings file (``kuzot config``)."""
    from probe.volunteer.config import load_config

    config = load_config()
    merged = config.merged_with(
        {
            "targets": args.targets,
            "resolvers": args.resolver,
            "concurrency": args.concurrency,
            "db": args.db,
            "max_bytes": args.max_bytes,
            "max_bytes_per_day": args.max_bytes_per_day,
            "probe_asn": args.probe_asn,
            "probe_cc": args.probe_cc,
        }
    )
    if not args.url:
        args.targets = merged["targets"]
    args.resolver = list(merged["resolvers"])
    args.concurrency = merged["concurrency"]
    args.db = merged["db"]
    args.max_bytes = merged["max_bytes"]
    args.max_bytes_per_day = merged["max_bytes_per_day"]
    args.probe_asn = merged["probe_asn"]
    args.probe_cc = merged["probe_cc"]
    if args.upload is None and config.get("upload") and config.get("collector_url"):
        args.upload = str(config.get("collector_url"))


def _learn_vantage(args: argparse.Namespace) -> None:
    """Without --probe-asn, ask the control helper which network this is (it answers
    only the AS number, country and network name; see probe/server/control/geolookup.py)."""
    args.asn_source = "option" if args.probe_asn is not None else None
    # The control helper, else the collector this run uploads to (kuzot serve --with-control).
    helper = getattr(args, "control", None)
    if not helper and getattr(args, "upload", None):
        from urllib.parse import urlsplit

        parts = urlsplit(str(args.upload))
        helper = f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else None
    if args.probe_asn is not None or not helper:
        return
    from probe.server.control.geolookup import ask_vantage

    vantage = ask_vantage(helper, source_address=args.source_address)
    if vantage is None:
        return
    args.probe_asn = vantage.probe_asn
    args.asn_source = "control-helper"
    if vantage.probe_cc:
        args.probe_cc = vantage.probe_cc
    if not args.probe_network and vantage.probe_network_name:
        args.probe_network = vantage.probe_network_name


def _judge(measurements: list[Measurement]) -> list:
    """This run's verdicts, for the summary sentence; a broken fingerprint file must not
    lose a finished run, so failures here only drop the sentence."""
    try:
        from analysis.fingerprints import load_fingerprints
        from analysis.verdicts import judge_all

        return judge_all(measurements, fingerprints=load_fingerprints())
    except Exception as exc:  # the run is stored; only the summary is missing
        print(f"(could not judge this run: {exc})", file=sys.stderr)
        return []


def _plain_summary(verdicts: list, blocked: list[str], offline: bool) -> str:
    """One sentence for a person, not a table, in their language (probe/i18n.py)."""
    from probe import i18n

    if offline:
        return i18n.gettext(
            "Your own connection seemed down during this run (the reference sites failed too), "
            "so no site is reported as blocked. Try again when you are online."
        )
    sites = len({v.domain for v in verdicts})
    if not blocked:
        return i18n.ngettext(
            "None of the {sites} site looks blocked on your network.",
            "None of the {sites} sites looks blocked on your network.",
            sites,
        ).format(sites=sites)
    names = ", ".join(blocked[:8]) + (", ..." if len(blocked) > 8 else "")
    return i18n.ngettext(
        "{blocked} of {sites} site looks blocked on your network: {names}. "
        "See `kuzot verdicts` for how and why.",
        "{blocked} of {sites} sites look blocked on your network: {names}. "
        "See `kuzot verdicts` for how and why.",
        sites,
    ).format(blocked=len(blocked), sites=sites, names=names)


def _signing_key(store: Store) -> SigningKey:
    """This installation's key (made on first run) that signs every measurement."""
    from probe.signing import SigningKeyError, load_or_create_key
    from probe.volunteer.paths import config_dir

    try:
        return load_or_create_key(config_dir())
    except (SigningKeyError, OSError) as exc:
        store.close()
        raise CommandError(f"cannot use the signing key: {exc}", status=2) from exc


def _control_fetcher(args: argparse.Namespace):  # -> ControlClient | DohControl | None
    """The control vantage: the helper when given, else a DoH resolver for DNS only."""
    if args.control:
        from probe.control.client import ControlClient

        return ControlClient(args.control)
    import os

    from probe.control.doh import DEFAULT_DOH_URL, DohControl

    doh = args.doh_control or os.environ.get("KUZOT_DOH_CONTROL") or DEFAULT_DOH_URL
    if doh.lower() == "off":
        return None
    if not doh.startswith("https://"):
        raise CommandError(f"--doh-control {doh!r}: must be an https:// URL or 'off'", status=2)
    return DohControl(doh, connect_ip=args.doh_connect_ip, ca_bundle=args.ca_bundle)


def _resumable(store: Store) -> tuple[Run, list[Target]] | None:
    """The newest run that did not finish, and its targets not yet measured."""
    for run in reversed(store.runs()):
        if run.status == "finished":
            return None
        if run.status in ("interrupted", "running", "deadline"):
            planned = [Target(url, code) for url, code in run.options.get("targets", [])]
            done = {m.url for m in store.iter_measurements(run_id=run.id)}
            return run, [t for t in planned if t.url not in done]
    return None


def _live_uploader(args: argparse.Namespace, store: Store, progress_bar: Any) -> LiveUploader | None:
    """The task that uploads while the run measures (``--upload``), or None."""
    if not args.upload:
        return None

    def log(message: str) -> None:
        if args.quiet or args.json:
            return
        if progress_bar is not None:
            progress_bar.console.print(f"upload: {message}")
        else:
            print(f"upload: {message}", file=sys.stderr)

    return LiveUploader(store, args.upload, every=args.upload_every, log=log)


def _upload_after_run(args: argparse.Namespace, during: UploadResult | None = None) -> dict | None:
    """Send the queue (this run and anything left from earlier ones) to the collector.

    Never fails the run: every measurement is already stored, and whatever does not
    reach the collector now stays queued for the next upload.  So only a few quick
    retries here (a scheduled run should not hang on a dead collector); ``kuzot upload``
    tries harder."""
    from probe.cli.commands.upload import describe, run_upload
    from probe.errors import KuzotError

    try:
        outcome = run_upload(
            args.db, args.upload, log_progress=not args.quiet and not args.json, max_retries=2, backoff=1.0
        )
    except KuzotError as exc:
        print(f"kuzot run: upload skipped: {exc}; the measurements stay queued", file=sys.stderr)
        return {"error": str(exc)}
    if during is not None:
        outcome = merge(during, outcome)
    if outcome.error or outcome.rejected:
        print(f"kuzot run: {describe(outcome)}", file=sys.stderr)
    elif not args.quiet and not args.json:
        print(describe(outcome), file=sys.stderr)
    return outcome.to_dict()


def handle(args: argparse.Namespace) -> int:
    from probe.volunteer.consent import require_consent

    require_consent(accept_flag=args.accept_risks)
    _apply_config(args)
    _learn_vantage(args)
    settings = build_settings(args)
    canaries = _canaries(args)
    if args.concurrency < 1:
        raise CommandError("--concurrency must be at least 1", status=2)
    if args.upload_every < 1:
        raise CommandError("--upload-every must be at least 1", status=2)
    resume_run_id = None
    refused: list[RefusedInput] = []
    if args.resume:
        store = open_store(args.db)
        found = _resumable(store)
        if found is None:
            store.close()
            print("Nothing to resume: the last run finished.", file=sys.stderr)
            return 0
        run, targets = found
        resume_run_id = run.id
        print(f"Resuming run {run.id}: {len(targets)} targets left.", file=sys.stderr)
    else:
        targets = _targets(args, refused)
        for item in refused:
            print(f"not measured: {item}", file=sys.stderr)
        if not targets and refused:
            raise CommandError("no valid URL to measure (each one was refused, see above)", status=2)
        store = open_store(args.db)
    budget = None
    if args.max_bytes is not None or args.max_bytes_per_day is not None:
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        budget = ByteBudget(
            per_run=args.max_bytes,
            per_day=args.max_bytes_per_day,
            used_today=store.bytes_used_since(midnight),
        )
        if budget.exhausted():
            store.close()
            raise CommandError(
                "today's byte cap is already used up; nothing measured (try tomorrow)", status=1
            )
    plan = RunPlan(
        targets=targets,
        settings=settings,
        concurrency=args.concurrency,
        deadline=args.deadline,
        canaries=canaries,
        options={
            "concurrency": args.concurrency,
            "canaries": len(canaries),
            "asn_source": args.asn_source,
            **({"refused_inputs": [r.to_dict() for r in refused]} if refused else {}),
        },
        budget=budget,
        resume_run_id=resume_run_id,
    )
    show_progress = not args.quiet and not args.json and sys.stderr.isatty()
    progress_bar = None
    task = None
    if show_progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress_bar = Progress(
            TextColumn("measuring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
        )
        progress_bar.start()
        task = progress_bar.add_task("run", total=len(targets) + len(canaries))

    def on_progress(_m: Measurement) -> None:
        if progress_bar is not None and task is not None:
            progress_bar.advance(task)

    signer = _signing_key(store)

    live = _live_uploader(args, store, progress_bar)

    async def announce(m: Measurement) -> None:
        if live is not None:
            live.notify(m)

    async def measure() -> RunResult:
        client = _control_fetcher(args)
        if client is None:
            return await execute_run(
                plan, store, progress=on_progress, sign_hash=signer.sign_hash, after_save=announce
            )
        plan.control = client
        try:
            return await execute_run(
                plan, store, progress=on_progress, sign_hash=signer.sign_hash, after_save=announce
            )
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()

    async def main() -> RunResult:
        if live is None:
            return await measure()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(live.run)
            try:
                return await measure()
            finally:
                live.stop()

    try:
        result = trio.run(main)
    finally:
        if progress_bar is not None:
            progress_bar.stop()
        store.close()
    upload_summary = _upload_after_run(args, live.result) if live is not None else None
    verdicts = _judge(result.measurements)
    blocked = sorted({v.domain for v in verdicts if v.status == "blocked"})
    offline = any(v.status == "probe_offline" for v in verdicts)
    if args.json:
        summary = {
            "run_id": result.run.id,
            "status": result.run.status,
            "targets": len(targets),
            "refused_inputs": [r.to_dict() for r in refused],
            "measured": len([m for m in result.measurements if m.role == "target"]),
            "skipped_for_budget": result.skipped_for_budget,
            "deadline_hit": result.deadline_hit,
            "bytes_used": result.bytes_used,
            "probe_offline": offline,
            "blocked_domains": blocked,
            "measurements": [
                {**step_summary(m), "id": m.id} for m in result.measurements if m.role == "target"
            ],
            "upload": upload_summary,
            "control_refused": control_refusals(result.measurements),
        }
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        rows = [step_summary(m) for m in result.measurements if m.role == "target"]
        rows.sort(key=lambda r: r["url"])
        write_rows(rows, "table", columns=["url", "dns", "tcp", "tls", "http"], title=f"run {result.run.id}")
        note = " (deadline reached: unmeasured targets were skipped)" if result.deadline_hit else ""
        if result.skipped_for_budget:
            note += f" ({result.skipped_for_budget} skipped: byte cap reached)"
        print(
            f"{len(rows)} of {len(targets)} targets measured{note}; about {result.bytes_used:,} bytes used.",
            file=sys.stderr,
        )
        refusals = control_refusals(result.measurements)
        if refusals["count"]:
            reasons = "; ".join(f"{r['failure']}: {r['reason']}" for r in refusals["reasons"])
            print(
                f"The control helper refused {refusals['count']} of {len(rows)} targets ({reasons}); "
                "their verdicts cannot rule out an outage.",
                file=sys.stderr,
            )
        print(_plain_summary(verdicts, blocked, offline))
    return 0


def control_refusals(measurements: list[Measurement]) -> dict[str, Any]:
    """How many targets the control helper refused to measure, and why (for the summary)."""
    from probe.control.client import REFUSALS

    counts: dict[tuple[str, str], int] = {}
    for m in measurements:
        if m.role == "target" and m.control is not None and m.control.failure in REFUSALS:
            key = (str(m.control.failure), m.control.reason or "")
            counts[key] = counts.get(key, 0) + 1
    return {
        "count": sum(counts.values()),
        "reasons": [
            {"failure": failure, "reason": reason, "targets": n}
            for (failure, reason), n in sorted(counts.items(), key=lambda item: -item[1])
        ],
    }

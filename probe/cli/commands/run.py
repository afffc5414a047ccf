"""``kuzot run``: measure a target list from this network and store the results."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.cli._analysis import parse_date
from probe.cli._common import add_db_option, parse_asn
from probe.cli._output import describe_upload, step_summary, write_rows
from probe.i18n import gettext as _
from probe.records import Measurement
from probe.settings import ProbeSettings
from probe.upload.pacing import DEFAULT_EVERY, DEFAULT_INTERVAL
from probe.worker_start import EarlyWorkers, early_count

if TYPE_CHECKING:
    # Imported when the command runs, after the early workers have started: the session
    # brings the store and SQLAlchemy, a third of a second of start-up.
    from probe.volunteer import session


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="measure the target list and store the results")
    _add_measuring_options(p)
    _add_vantage_options(p)
    _add_control_options(p)
    _add_session_options(p)
    p.set_defaults(handler=handle)


def _add_measuring_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--targets", metavar="FILE", help="test list in Citizen Lab format (default: our kg.csv)")
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
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="measure in N worker processes (for more than one core); one run, one writer, "
        "one byte budget and one deadline across them (default 1)",
    )
    p.add_argument("--deadline", type=float, metavar="SECONDS", help="stop the whole run after this long")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="connect timeout; DNS, TLS and HTTP limits scale with it",
    )
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="bytes read per page (default 1 MiB)")
    p.add_argument("--dns-window", type=float, default=0.3, help="seconds to wait for injected DNS replies")


def _add_vantage_options(p: argparse.ArgumentParser) -> None:
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


def _add_control_options(p: argparse.ArgumentParser) -> None:
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


def _add_session_options(p: argparse.ArgumentParser) -> None:
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


def build_settings(args: argparse.Namespace) -> ProbeSettings:
    """The probe's settings from parsed ``kuzot run`` options (scripts and tests use it)."""
    from probe.volunteer import session

    return session.build_settings(session.SessionOptions.from_namespace(args))


class _Console:
    """The session's hooks for a person at a terminal: messages, the progress bar."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.chatty = not args.quiet and not args.json
        self.bar: Any = None
        self.task: Any = None

    def planned(self, plan: session.SessionPlan) -> None:
        if plan.resumed is not None:
            message = _("Resuming run {run}: {n} targets left.")
            print(message.format(run=plan.resumed.id, n=len(plan.targets)), file=sys.stderr)
        for item in plan.refused:
            print(_("not measured: {item}").format(item=item.localized()), file=sys.stderr)

    def started(self, plan: session.SessionPlan) -> None:
        if not (self.chatty and sys.stderr.isatty()):
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("measuring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
        )
        self.bar.start()
        self.task = self.bar.add_task("run", total=len(plan.targets) + len(plan.canaries))

    def measured(self, _m: Measurement) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def finished(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def upload_log(self, message: str) -> None:
        if not self.chatty:
            return
        if self.bar is not None:
            self.bar.console.print(f"upload: {message}")
        else:
            print(f"upload: {message}", file=sys.stderr)

    def hooks(self) -> session.SessionHooks:
        from probe.volunteer import session

        return session.SessionHooks(self.planned, self.started, self.measured, self.finished, self.upload_log)


def _upload_summary(console: _Console, done: session.SessionResult) -> dict | None:
    """Say how the upload went (never a failure of the run: what was not sent stays queued)."""
    if done.upload_error is not None:
        error = done.upload_error
        message = _("upload skipped: {error}; the measurements stay queued").format(error=error)
        print(f"kuzot run: {message}", file=sys.stderr)
        return {"error": done.upload_error}
    outcome = done.upload
    if outcome is None:
        return None
    if outcome.error or outcome.rejected:
        print(f"kuzot run: {describe_upload(outcome)}", file=sys.stderr)
    elif console.chatty:
        print(describe_upload(outcome), file=sys.stderr)
    return outcome.to_dict()


def handle(args: argparse.Namespace) -> int:
    # With --workers, children start first (as many as leave this process a core), to
    # import while this process opens its database (probe.worker_start.EarlyWorkers);
    # the pool starts the others once the run begins.  Unused, they end with the command.
    with EarlyWorkers(early_count(args.workers)) as early:
        return _run(args, early)


def _run(args: argparse.Namespace, early: EarlyWorkers) -> int:
    from probe.volunteer import session

    console = _Console(args)
    done = session.run_session(session.SessionOptions.from_namespace(args), console.hooks(), early)
    if done.result is None:
        print(_("Nothing to resume: the last run finished."), file=sys.stderr)
        return 0
    upload = _upload_summary(console, done)
    if args.quiet and not args.json:
        # Nothing will be printed: judging the run (and importing the analysis for it)
        # would only delay the exit of a scheduled or scripted run.
        return 0
    verdicts = _judge(done.result.measurements)
    blocked = sorted({v.domain for v in verdicts if v.status == "blocked"})
    offline = any(v.status == "probe_offline" for v in verdicts)
    if args.json:
        print(json.dumps(_json_summary(done, upload, blocked, offline), indent=2))
    elif not args.quiet:
        _print_summary(done, verdicts, blocked, offline)
    return 0


def _json_summary(
    done: session.SessionResult, upload: dict | None, blocked: list[str], offline: bool
) -> dict:
    result = done.result
    assert result is not None
    targets = [m for m in result.measurements if m.role == "target"]
    return {
        "run_id": result.run.id,
        "status": result.run.status,
        "targets": len(done.plan.targets),
        "refused_inputs": [r.to_dict() for r in done.plan.refused],
        "measured": len(targets),
        "skipped_for_budget": result.skipped_for_budget,
        "deadline_hit": result.deadline_hit,
        "bytes_used": result.bytes_used,
        "probe_offline": offline,
        "blocked_domains": blocked,
        "measurements": [{**step_summary(m), "id": m.id} for m in targets],
        "upload": upload,
        "control_refused": control_refusals(result.measurements),
    }


def _print_summary(done: session.SessionResult, verdicts: list, blocked: list[str], offline: bool) -> None:
    result = done.result
    assert result is not None
    targets = len(done.plan.targets)
    rows = [step_summary(m) for m in result.measurements if m.role == "target"]
    rows.sort(key=lambda r: r["url"])
    title = _("run {run}").format(run=result.run.id)
    write_rows(rows, "table", columns=["url", "dns", "tcp", "tls", "http"], title=title)
    note = " " + _("(deadline reached: unmeasured targets were skipped)") if result.deadline_hit else ""
    if result.skipped_for_budget:
        note += " " + _("({n} skipped: byte cap reached)").format(n=result.skipped_for_budget)
    print(
        _("{measured} of {targets} targets measured{note}; about {bytes} bytes used.").format(
            measured=len(rows), targets=targets, note=note, bytes=f"{result.bytes_used:,}"
        ),
        file=sys.stderr,
    )
    refusals = control_refusals(result.measurements)
    if refusals["count"]:
        reasons = "; ".join(f"{r['failure']}: {r['reason']}" for r in refusals["reasons"])
        print(
            _(
                "The control helper refused {refused} of {targets} targets ({reasons}); "
                "their verdicts cannot rule out an outage."
            ).format(refused=refusals["count"], targets=len(rows), reasons=reasons),
            file=sys.stderr,
        )
    print(_plain_summary(verdicts, blocked, offline))


def _judge(measurements: list[Measurement]) -> list:
    """This run's verdicts, for the summary sentence; a broken fingerprint file must not
    lose a finished run, so failures here only drop the sentence."""
    try:
        from analysis.fingerprints import load_fingerprints
        from analysis.verdicts import judge_all

        return judge_all(measurements, fingerprints=load_fingerprints())
    except Exception as exc:  # the run is stored; only the summary is missing
        print(_("(could not judge this run: {error})").format(error=exc), file=sys.stderr)
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

"""``kuzot export``: write stored measurements to a file, in OONI's format or ours.

Why OONI's format: it is what the censorship-measurement community reads; OONI's tools
and analysts can then use what Kuzot volunteers measured next to OONI's own data.
Each measurement carries OONI's summary keys (``blocking``, ``accessible`` and the
classic comparisons) computed from *our* verdict, since a judgement is only as good as
the rules behind it and ours are the ones we can vouch for; the full verdict (rule id,
reason) rides along in ``test_keys.x_kuzot``.  The probe's IP address is never
written.  ``--format jsonl`` writes our own archival records instead, canaries
included, so that they can be re-judged elsewhere.

The file is written to a temporary name and renamed when complete: an interrupted
export leaves no half-written file that looks whole.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from probe.cli._analysis import add_filters, database_url
from probe.cli._common import CommandError, add_db_option, open_store
from probe.i18n import gettext as _
from probe.i18n import ngettext
from probe.records import Measurement

#: Our blocking kinds in OONI's vocabulary; OONI's classic test has no "tls" and counts a
#: failed handshake as an HTTP failure.
OONI_BLOCKING = {
    "dns": "dns",
    "tcp_ip": "tcp_ip",
    "tls": "http-failure",
    "http-failure": "http-failure",
    "http-diff": "http-diff",
}


#: What of our verdict rides along in ``test_keys.x_kuzot.verdict``.
_VERDICT_KEYS = ("status", "blocking", "confirmed", "reason", "rule_id", "rules_version")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write measurements to a file (OONI web_connectivity JSONL, or our records)",
        description="Write stored measurements to FILE, one JSON object a line: OONI Web Connectivity "
        "measurements (--format ooni, the default) or our own archival records (--format jsonl).",
    )
    p.add_argument("file", metavar="FILE", help="where to write; a .gz name is gzipped; - writes to stdout")
    p.add_argument(
        "--format",
        choices=["ooni", "jsonl"],
        default="ooni",
        help="ooni: OONI's data format (targets only); jsonl: our records (canaries included)",
    )
    add_db_option(p)
    add_filters(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON (to stderr when FILE is -)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from analysis.data import iter_measurements

    url = database_url(args)
    open_store(url, must_exist=True).close()  # a clear error for a bad URL, and the schema in place
    measurements = list(
        iter_measurements(url, domain=args.domain, probe_asn=args.asn, since=args.since, until=args.until)
    )
    lines = _ooni_lines(measurements) if args.format == "ooni" else _record_lines(measurements)
    count = _write(args.file, lines)
    where = _("standard output") if args.file == "-" else args.file
    summary = (
        json.dumps({"written": count, "format": args.format, "file": args.file})
        if args.json
        else (
            ngettext(
                "{count} OONI measurement written to {where}",
                "{count} OONI measurements written to {where}",
                count,
            )
            if args.format == "ooni"
            else ngettext("{count} record written to {where}", "{count} records written to {where}", count)
        ).format(count=count, where=where)
    )
    print(summary, file=sys.stderr if args.file == "-" else sys.stdout)
    return 0


def _record_lines(measurements: Iterable[Measurement]) -> Iterator[str]:
    for m in measurements:
        yield json.dumps(m.to_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _ooni_lines(measurements: list[Measurement]) -> Iterator[str]:
    """Targets only: a canary is our probe's self-check, not a measurement of a site;
    canaries are still judged with their run, since they decide ``probe_offline``."""
    from analysis.fingerprints import load_fingerprints
    from analysis.verdicts import judge_all
    from probe.formats.ooni import dumps_line, measurement_to_ooni

    fingerprints = load_fingerprints()
    verdicts = {v.measurement_id: v for v in judge_all(measurements, fingerprints=fingerprints)}
    for m in measurements:
        verdict = verdicts.get(m.id)
        if m.role == "canary" or verdict is None:
            continue
        summary = ooni_summary(m, verdict)
        kept = {k: getattr(verdict, k) for k in _VERDICT_KEYS}
        yield dumps_line(measurement_to_ooni(m, summary=summary, verdict=kept))


def ooni_summary(m: Measurement, verdict: Any) -> dict[str, Any]:
    """OONI's summary test keys for one measurement, from our verdict and records.

    ``blocking``/``accessible`` follow OONI's spec: accessible -> ``false``/``true``;
    blocked -> the layer/``false``; down (the site fails everywhere) ->
    ``false``/``false``; anything we cannot tell -> ``null``/``null``.
    """
    status = verdict.status
    blocking: bool | str | None
    if status == "accessible":
        blocking, accessible = False, True
    elif status == "blocked":
        blocking, accessible = OONI_BLOCKING.get(verdict.blocking or ""), False
    elif status == "down":
        blocking, accessible = False, False
    else:
        blocking, accessible = None, None
    return {
        "blocking": blocking,
        "accessible": accessible,
        "dns_consistency": _dns_consistency(m),
        **_http_comparison(m),
    }


def _host(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _dns_consistency(m: Measurement) -> str | None:
    """OONI's ``dns_consistency``: the probe's addresses against the control's, an
    address validated by TLS counting as consistent, as OONI's own rule does."""
    import ipaddress

    try:
        ipaddress.ip_address(m.domain)
        return "consistent"
    except ValueError:
        pass
    control = m.control
    if control is None or control.failure is not None:
        return None
    probe_dns = [o for o in m.dns if _host(o.hostname) == _host(m.domain)]
    control_dns = [o for o in control.dns if _host(o.hostname) == _host(m.domain)]
    if not probe_dns or not control_dns:
        return None
    ours = {a for o in probe_dns for a in o.addresses()}
    theirs = {a for o in control_dns for a in o.addresses()}
    if ours & theirs or (not ours and not theirs):
        return "consistent"
    validated = {o.ip for o in m.tls if o.purpose == "target" and o.validated is True}
    if ours and ours <= validated:
        return "consistent"
    return "inconsistent"


def _http_comparison(m: Measurement) -> dict[str, Any]:
    """OONI's classic comparisons of the final responses, when both sides have one."""
    from analysis.verdicts import compare_http

    empty = {
        "body_length_match": None,
        "body_proportion": None,
        "headers_match": None,
        "status_code_match": None,
        "title_match": None,
    }
    control = m.control
    if control is None or control.failure is not None or control.source.startswith("doh:"):
        return empty
    if not m.http or not control.http:
        return empty
    probe, ctrl = m.http[-1], control.http[-1]
    if probe.status_code is None or ctrl.status_code is None or probe.failure or ctrl.failure:
        return empty
    diff = compare_http(probe, ctrl)
    return {
        "body_length_match": not diff.body_mismatch,
        "body_proportion": diff.body_proportion,
        "headers_match": diff.headers_match,
        "status_code_match": probe.status_code == ctrl.status_code,
        "title_match": diff.title_match,
    }


def _open_text(path: Path, *, compress: bool) -> TextIO:
    if compress:
        return gzip.open(path, "wt", encoding="utf-8")
    return open(path, "w", encoding="utf-8")


def _write(target: str, lines: Iterable[str]) -> int:
    count = 0
    if target == "-":
        for line in lines:
            sys.stdout.write(line + "\n")
            count += 1
        return count
    path = Path(target)
    if not path.parent.is_dir():
        raise CommandError(_("{folder}: no such directory").format(folder=path.parent), status=2)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with _open_text(partial, compress=path.name.endswith(".gz")) as out:
            for line in lines:
                out.write(line + "\n")
                count += 1
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CommandError(_("cannot write {path}: {error}").format(path=path, error=exc)) from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count

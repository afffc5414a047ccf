"""``kuzot targets``: fetch the current Citizen Lab lists, or check a list file."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from probe.cli._common import CommandError, add_json_option, emit
from probe.i18n import gettext as _
from probe.i18n import ngettext
from probe.targets import RefusedInput, TargetsError, load_targets, parse_targets
from probe.volunteer.paths import targets_cache_dir

LICENCE = "CC BY-NC-SA 4.0 (Citizen Lab and others)"
CITIZENLAB_BASE = "https://raw.githubusercontent.com/citizenlab/test-lists/master/lists"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("targets", help="update or check target lists")
    sub = p.add_subparsers(dest="targets_command", metavar="ACTION", required=True)
    up = sub.add_parser(
        "update", help="download Citizen Lab's kg.csv and global.csv into your data directory"
    )
    up.add_argument(
        "--base-url",
        default=CITIZENLAB_BASE,
        metavar="URL",
        help="download the lists from this mirror (default: Citizen Lab's repository)",
    )
    up.add_argument("--lists", default="kg,global", help="comma-separated list names (default kg,global)")
    add_json_option(up)
    up.set_defaults(handler=handle_update)
    check = sub.add_parser("check", help="lint a test-list file")
    check.add_argument("file", type=Path, help="the test list to check (Citizen Lab CSV format)")
    add_json_option(check)
    check.set_defaults(handler=handle_check)


def targets_dir() -> Path:
    return targets_cache_dir()


def handle_update(args: argparse.Namespace) -> int:
    dest = targets_dir()
    dest.mkdir(parents=True, exist_ok=True)
    written: list[dict[str, object]] = []
    lines: list[str] = []
    import httpx  # only to download: not at every command's start

    with httpx.Client(timeout=30, follow_redirects=True) as client:
        for name in [n.strip() for n in args.lists.split(",") if n.strip()]:
            url = f"{args.base_url.rstrip('/')}/{name}.csv"
            try:
                response = client.get(url)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise CommandError(_("could not download {url}: {error}").format(url=url, error=exc)) from exc
            try:
                targets = parse_targets(response.text, name=url)
            except TargetsError as exc:
                raise CommandError(
                    _("downloaded list is not valid, kept the old one: {error}").format(error=exc)
                ) from exc
            fd, tmp = tempfile.mkstemp(dir=dest, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(response.text)
            os.replace(tmp, dest / f"{name}.csv")
            written.append({"list": name, "path": str(dest / f"{name}.csv"), "urls": len(targets)})
            urls = ngettext("{path}: {n} URL", "{path}: {n} URLs", len(targets))
            lines.append(urls.format(path=dest / f"{name}.csv", n=len(targets)))
    emit(
        args,
        {"lists": written, "licence": LICENCE},
        "\n".join([*lines, _("Citizen Lab test lists are {licence}.").format(licence=LICENCE)]),
    )
    return 0


def handle_check(args: argparse.Namespace) -> int:
    """Every bad row is reported with its line (not only the first); exit 2 when any."""
    refused: list[RefusedInput] = []
    targets = load_targets(args.file, refused=refused)
    idn = [t for t in targets if t.original_url]
    urls = ngettext("{path}: {n} URL", "{path}: {n} URLs", len(targets)).format(
        path=args.file, n=len(targets)
    )
    state = _("valid") if not refused else _("{n} refused").format(n=len(refused))
    lines = [f"{urls}, {state}"]
    lines += [f"  {item.localized()}" for item in refused]
    lines += [
        "  " + _("{original} is measured as {url}").format(original=t.original_url, url=t.url) for t in idn
    ]
    emit(
        args,
        {
            "file": str(args.file),
            "urls": len(targets),
            "valid": not refused,
            "refused": [r.to_dict() for r in refused],
            "converted": [{"url": t.original_url, "ascii_url": t.url} for t in idn],
        },
        "\n".join(lines),
    )
    if refused:
        return 2
    return 0

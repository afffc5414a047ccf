"""``kuzot verify DIR``: check a report's files and signed measurements.

Exit status: 0 everything checks out; 1 something was changed, added, removed or does
not verify (every problem printed, one a line); 2 the directory or its manifest is
missing, so nothing could be checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from probe.i18n import localized
from probe.verify import verify_report


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        help="check that a report and its evidence are unchanged and correctly signed",
        description=(
            "Check every file of a report directory against evidence/MANIFEST.sha256, and every "
            "measurement in evidence/*.jsonl against its content hash and signature."
        ),
    )
    p.add_argument("directory", type=Path, metavar="DIR", help="the report directory (kuzot report --out)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=handle)


def _printable(text: str) -> str:
    """A lone surrogate from a hostile line cannot be written as UTF-8: show it as its
    escape (inside JSON strings that is the same character, so --json stays JSON)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def handle(args: argparse.Namespace) -> int:
    result = verify_report(args.directory)
    status = 0 if result.ok else (1 if result.manifest_found else 2)
    if args.json:
        print(_printable(json.dumps(result.to_dict(), indent=2, ensure_ascii=False)))
        return status
    if not result.manifest_found:
        # Not "checked and found wrong" but "could not check": say why on stderr, as
        # other commands do for bad input.
        for problem in result.problems:
            message = localized(problem.message)
            print(_printable(f"kuzot verify: {args.directory}: {message}"), file=sys.stderr)
        return status
    for problem in result.problems:
        print(_printable(problem.localized()))
    print(result.summary())
    return status

"""The ``kuzot`` command: parse arguments, dispatch to one module per subcommand.

The CLI is the only layer that joins ``probe`` and ``analysis``; every subcommand
module under :mod:`probe.cli.commands` parses its own options and calls library code.
Exit status: 0 success, 1 runtime failure, 2 bad input (usage, malformed files),
3 consent required, 130 interrupted.  Every error meant for a person is a
:class:`probe.errors.KuzotError`, caught here once; its class gives the status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from probe import __version__
from probe.cli.commands import COMMANDS
from probe.errors import KuzotError, first_error
from probe.extras import find_missing_extra
from probe.i18n import gettext as _


def _named_command(argv: Sequence[str] | None) -> str | None:
    """The subcommand module ``argv`` names first, or ``None`` (help, version, a typo)."""
    if not argv or argv[0].startswith("-"):
        return None
    name = argv[0].replace("-", "_")
    return name if name in COMMANDS else None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv`` naming a subcommand, only that one is registered.

    Why: registering a subcommand imports what its options' defaults come from (the
    collector's, the analysis stack's); ``kuzot run`` should pay for none of that at
    start-up.  Without a subcommand every one is registered,
    for ``kuzot --help`` and for argparse's "invalid choice" message.
    """
    parser = argparse.ArgumentParser(
        prog="kuzot",
        description="Measure website blocking from your network and turn it into citable evidence.",
    )
    parser.add_argument("--version", action="version", version=f"kuzot {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    named = _named_command(argv)
    for name in COMMANDS if named is None else [named]:
        COMMANDS[name].register(subparsers)
    return parser


def entry() -> int:
    """The ``kuzot`` program (console script and ``python -m probe``): :func:`main`, then
    an exit without the collector's last passes.

    Why ``gc.freeze()``: at exit the interpreter's final collections walk every object a
    run built (its thousand measurements, a thousand modules), about a quarter of a
    second of a short run on a small machine, to free memory the process is about to
    give back anyway.  Frozen objects are skipped; atexit handlers, finalizers and the
    flushing of files still run as usual.  Not in :func:`main`, which tests and scripts
    call in-process, where frozen objects would never be collected."""
    import gc

    status = main()
    gc.freeze()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    _use_configured_language()
    try:
        return int(args.handler(args) or 0)
    except KuzotError as exc:
        print(f"kuzot {args.command}: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return _interrupted()
    except BaseExceptionGroup as group:
        # trio reports Ctrl-C from inside a nursery as a group holding KeyboardInterrupt.
        if group.subgroup(KeyboardInterrupt) is not None:
            return _interrupted()
        errors = group.subgroup(KuzotError)
        if errors is not None and errors.exceptions:
            first = first_error(errors)
            print(f"kuzot {args.command}: {first}", file=sys.stderr)
            return first.exit_status if isinstance(first, KuzotError) else 1
        message = find_missing_extra(group)
        if message is not None:
            print(f"kuzot {args.command}: {message}", file=sys.stderr)
            return 2
        raise
    except BrokenPipeError:
        return 0
    except Exception as exc:
        # An optional dependency that is not installed: one line naming the extra.
        message = find_missing_extra(exc)
        if message is None:
            raise
        print(f"kuzot {args.command}: {message}", file=sys.stderr)
        return 2


def _use_configured_language() -> None:
    """The config's ``language`` (only when set there): a config file that cannot be read
    is not this step's error to report (``kuzot config`` says what is wrong with it)."""
    from probe import i18n
    from probe.volunteer.config import load_config

    try:
        chosen = load_config().values.get("language")
    except KuzotError:
        chosen = None
    i18n.use_configured(chosen)


def _interrupted() -> int:
    print("\nkuzot: " + _("interrupted; everything measured so far is saved."), file=sys.stderr)
    return 130


if __name__ == "__main__":
    raise SystemExit(main())

"""One module per ``kuzot`` subcommand; each defines ``register(subparsers)``.

The modules are imported here by name, not found from strings: a reader (and mypy)
sees every command in one list.  Importing them is cheap, because a command imports
its heavy stack (the analysis, the collector, the Explorer) only inside ``register``
or its handler; :func:`probe.cli.build_parser` registers only the command named.
Commands never import each other: what two of them share is in ``probe/cli/_*.py``
or in the library.
"""

from __future__ import annotations

from types import ModuleType

from probe.cli._common import CommandError
from probe.cli.commands import (
    chart,
    config,
    consent,
    control,
    db,
    demo,
    episodes,
    export,
    fingerprints,
    import_ooni,
    lab,
    ooni,
    orders,
    report,
    run,
    schedule,
    serve,
    show,
    status,
    targets,
    upload,
    verdicts,
    verify,
    web,
)

#: Subcommands in the order ``kuzot --help`` lists them, by module name (``_`` for the
#: command's ``-``: ``import_ooni`` registers ``kuzot import-ooni``).
COMMANDS: dict[str, ModuleType] = {
    "run": run,
    "show": show,
    "verdicts": verdicts,
    "episodes": episodes,
    "orders": orders,
    "chart": chart,
    "report": report,
    "control": control,
    "targets": targets,
    "fingerprints": fingerprints,
    "verify": verify,
    "import_ooni": import_ooni,
    "ooni": ooni,
    "export": export,
    "lab": lab,
    "demo": demo,
    "consent": consent,
    "config": config,
    "schedule": schedule,
    "status": status,
    "upload": upload,
    "serve": serve,
    "db": db,
    "web": web,
}

__all__ = ["COMMANDS", "CommandError"]

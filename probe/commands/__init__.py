"""One module per ``kuzot`` subcommand; each defines ``register(subparsers)``.

A module's name is the command's with ``_`` for ``-`` (``import_ooni`` registers
``kuzot import-ooni``): the parser name comes from ``register``, this list only
imports the modules.
"""

from __future__ import annotations

#: Subcommands in the order ``kuzot --help`` lists them.
COMMANDS: list[str] = [
    "run",
    "show",
    "verdicts",
    "episodes",
    "orders",
    "chart",
    "report",
    "control",
    "targets",
    "fingerprints",
    "verify",
    "import_ooni",
    "ooni",
    "export",
    "lab",
    "demo",
    "consent",
    "config",
    "schedule",
    "status",
    "upload",
    "serve",
    "db",
    "web",
]


class CommandError(Exception):
    """A failure the user can act on; printed without a traceback."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status

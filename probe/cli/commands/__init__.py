"""One module per ``kuzot`` subcommand; each defines ``register(subparsers)``.

A module's name is the command's with ``_`` for ``-`` (``import_ooni`` registers
``kuzot import-ooni``): the parser name comes from ``register``, this list only
imports the modules.
"""

from __future__ import annotations

from probe.errors import KuzotError

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


class CommandError(KuzotError):
    """A command line the user must change; the exit status is given where it is raised."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.exit_status = status

    @property
    def status(self) -> int:
        """The old name of :attr:`exit_status`."""
        return self.exit_status

"""One module per ``kuzot`` subcommand; each defines ``register(subparsers)``."""

from __future__ import annotations

#: Subcommands in the order ``kuzot --help`` lists them.
COMMANDS: list[str] = [
    "run",
    "show",
    "verdicts",
    "control",
    "targets",
    "fingerprints",
    "lab",
    "consent",
    "config",
    "schedule",
    "status",
    "upload",
    "serve",
    "db",
]


class CommandError(Exception):
    """A failure the user can act on; printed without a traceback."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status

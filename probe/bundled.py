"""Files that ship inside the ``probe`` package (target list, lab scenarios, migrations).

Why one place: a wheel, a pipx install and an editable checkout put the package in
different directories, and only the import system knows where.  Everything is found
through :mod:`importlib.resources`, never by walking up from a module to a checkout.
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

_EXTRACTED = contextlib.ExitStack()
atexit.register(_EXTRACTED.close)


def bundled_path(*parts: str) -> Path:
    """A real filesystem path for ``probe/<parts>``.

    Installed packages are plain directories, so this is normally the file itself; from a
    zip import it is extracted once and kept until the process ends (Alembic and the
    lab need real paths).
    """
    resource = resources.files("probe").joinpath(*parts)
    if isinstance(resource, Path):
        return resource
    return Path(_EXTRACTED.enter_context(resources.as_file(resource)))


def default_targets_file() -> Path:
    """Our own test list for Kyrgyzstan (``probe/data/kg.csv``)."""
    return bundled_path("data", "kg.csv")

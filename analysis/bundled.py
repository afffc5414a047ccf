"""Files that ship inside the ``analysis`` package: our blockpage fingerprints, the
orders file and the network table.

Why here and not beside a checkout: users install a wheel, and only
:mod:`importlib.resources` knows where its files are; nothing walks up from a module
to a source tree.
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

_EXTRACTED = contextlib.ExitStack()
atexit.register(_EXTRACTED.close)


def bundled_path(*parts: str) -> Path:
    """A real filesystem path for ``analysis/<parts>`` (extracted once from a zip import)."""
    resource = resources.files("analysis").joinpath(*parts)
    if isinstance(resource, Path):
        return resource
    return Path(_EXTRACTED.enter_context(resources.as_file(resource)))


def fingerprint_dir() -> Path:
    """Our own blockpage fingerprints (``analysis/data/fingerprints/*.csv``)."""
    return bundled_path("data", "fingerprints")


def orders_file() -> Path:
    """The Ministry's orders and related legal events, with sources (``analysis/data/orders.csv``)."""
    return bundled_path("data", "orders.csv")

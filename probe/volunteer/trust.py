"""The ``--ca-bundle`` a user gives, checked before anything starts.

Why before: the TLS context that loads it is built when the first target is measured
(or the control helper's first request arrives); a file that is not a PEM bundle would
fail there, after a run row was written or once per request, instead of as one line
about the option.  ``kuzot run`` and the control helper (``kuzot control serve``,
``kuzot serve --with-control``) both ask here.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from probe.errors import InputError
from probe.i18n import gettext as _
from probe.steps.bundle import check_bundle


def check_ca_bundle(path: Path | None) -> None:
    """Raise :class:`InputError` if ``path`` is given and is not a readable PEM bundle."""
    if path is None:
        return
    option = f"--ca-bundle {path}"
    if not path.is_file():
        raise InputError(_("{path}: no such file").format(path=option))
    try:
        check_bundle(path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        message = _("{path}: not a PEM certificate bundle ({error})")
        raise InputError(message.format(path=option, error=exc)) from exc

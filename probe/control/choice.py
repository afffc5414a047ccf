"""The control vantage a run compares with, as a small picklable value.

Why its own module: with ``--workers`` each child builds its own control from this
value, and unpickling imports the module that defines it.  Defined beside the session,
it made every child import the session, the store and SQLAlchemy (about 0.3 s of CPU
per child) for nothing it uses; here it costs the child only what it measures with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.errors import InputError
from probe.i18n import gettext as _
from probe.volunteer.paths import DOH_CONTROL_ENV

#: The DNS-over-HTTPS resolver a run compares with when no control helper is given.
DEFAULT_DOH_URL = "https://dns.google/dns-query"


@dataclass(frozen=True, slots=True)
class ControlChoice:
    """The control helper when given, else a DNS-over-HTTPS resolver for DNS only."""

    control: str | None = None
    doh_control: str | None = None
    doh_connect_ip: str | None = None
    ca_bundle: Path | None = None

    def build(self) -> Any:  # ControlClient | DohControl | None
        """A fresh control fetcher (``None`` with ``--doh-control off``); a malformed
        ``--doh-control`` is an :class:`InputError`."""
        if self.control:
            from probe.control.client import ControlClient

            return ControlClient(self.control)
        doh = self.check()
        if doh is None:
            return None
        from probe.control.doh import DohControl

        return DohControl(doh, connect_ip=self.doh_connect_ip, ca_bundle=self.ca_bundle)

    def check(self) -> str | None:
        """The DNS-over-HTTPS URL :meth:`build` would use (``None``: a control helper, or
        ``off``), refusing a malformed one as :meth:`build` does, without building the
        client: the parent of a ``--workers`` run, whose children build their own, should
        not load httpx to learn that an option is wrong."""
        if self.control:
            return None
        doh = self.doh_control or os.environ.get(DOH_CONTROL_ENV) or DEFAULT_DOH_URL
        if doh.lower() == "off":
            return None
        if not doh.startswith("https://"):
            message = _("--doh-control {value}: must be an https:// URL or 'off'")
            raise InputError(message.format(value=repr(doh)))
        return doh

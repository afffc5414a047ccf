"""Which network (autonomous system) an address belongs to, from an ASN database.

Why: a CDN gives different addresses to different vantages, so "no address in common
with the control" alone is weak evidence of a lying resolver.  OONI also counts answers
in the control's ASN as consistent; with a GeoLite2-ASN-format database (``kuzot[asn]``,
``maxminddb``) Kuzot does the same.  Without one the rules fall back to addresses and
TLS, as before.

The database is named by ``KUZOT_ASN_DB`` (a path to an ``.mmdb`` file) for every command
that judges measurements through :func:`analysis.verdicts.judge_all`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

from probe.errors import SetupError

#: ``ip -> AS number`` (``None`` when the database does not know the address).
AsnLookup = Callable[[str], int | None]

ENV_VAR = "KUZOT_ASN_DB"


class AsnDatabaseError(SetupError, RuntimeError):
    """The ASN database cannot be used; the message says why and what to install."""


class AsnDatabase:
    """A read-only GeoLite2-ASN-format database; call it with an address."""

    def __init__(self, path: str | Path) -> None:
        try:
            import maxminddb
        except ImportError as exc:  # depends on the install
            raise AsnDatabaseError(
                f"{ENV_VAR}={path} needs the maxminddb package: pip install 'kuzot[asn]'"
            ) from exc
        try:
            self._reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, RuntimeError) as exc:  # InvalidDatabaseError is a RuntimeError
            raise AsnDatabaseError(f"{ENV_VAR}={path}: not a usable ASN database ({exc})") from exc
        self.path = Path(path)
        self._cached = functools.lru_cache(maxsize=65536)(self._lookup)

    def _lookup(self, address: str) -> int | None:
        try:
            found = self._reader.get(address)
        except ValueError:
            return None
        number = found.get("autonomous_system_number") if isinstance(found, dict) else None
        return number if isinstance(number, int) and 0 < number < 2**32 else None

    def __call__(self, address: str) -> int | None:
        return self._cached(address)

    def close(self) -> None:
        self._reader.close()


@functools.cache
def _open(path: str) -> AsnDatabase:
    return AsnDatabase(path)


def default_lookup() -> AsnLookup | None:
    """The database named by ``KUZOT_ASN_DB``, or ``None`` when the variable is unset."""
    path = os.environ.get(ENV_VAR, "").strip()
    return _open(path) if path else None


__all__ = ["ENV_VAR", "AsnDatabase", "AsnDatabaseError", "AsnLookup", "default_lookup"]

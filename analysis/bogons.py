"""Addresses that no public web site has: private, loopback, link-local, unspecified...

Why it matters: a resolver that answers ``10.10.34.34`` or ``0.0.0.0`` for a news site
is not pointing readers at the site; OONI counts such a "bogon" answer as an artefact
of DNS blocking.  Why the caller must still compare with the control: in the Kuzot lab
the whole "internet" lives on ``127.0.0.0/8``, and on a corporate network a split-horizon
resolver may legitimately answer private addresses.  So :mod:`analysis.verdicts` flags a
special address only when the control's answers for the same name are all public.

Only :mod:`ipaddress` from the standard library: the ranges are the IANA special-purpose
registries as Python knows them.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=65536)
def parse_address(value: str) -> IPAddress | None:
    """The address in ``value`` (IPv4-mapped IPv6 unwrapped), or ``None`` for a name.
    Cached (addresses are immutable values) for the reason :func:`special_kind` is."""
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=65536)
def special_kind(value: str) -> str | None:
    """Why ``value`` is not a public address ("loopback", "private", ...), or ``None``
    when it is public or not an address at all.  The words are meant for a verdict's
    reason, which a journalist reads.

    Cached: judging asks this for every answer and connection of every measurement,
    the same few thousand addresses again and again, and parsing one with
    :mod:`ipaddress` was a quarter of judging's CPU."""
    address = parse_address(value)
    if address is None:
        return None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public"  # shared (100.64.0.0/10), documentation ranges and the like
    return None


def is_bogon(value: str) -> bool:
    """True when ``value`` is an IP address that no public web site can have."""
    return special_kind(value) is not None

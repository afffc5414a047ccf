"""Which addresses a probe may go to: IP literals, and the line between public and
non-global addresses a hostile redirect must not cross (see :mod:`probe.steps.http`).

One module so that the measurement (which tries a target's addresses) and the HTTP step
(which follows redirects) ask the same question the same way.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence


@functools.lru_cache(maxsize=4096)
def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``text`` spells, or ``None`` if it is not an IP literal.

    Cached because a run asks about the same few strings over and over (the resolver's
    address, each target's, the source address), about ten times per measurement, and
    ``ipaddress`` parses a literal, or fails on a name by raising, in pure Python."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def ip_version(text: str) -> int:
    """4 or 6; ``ValueError`` if ``text`` is not an IP literal (a name never gets here
    to be resolved by the system resolver behind our back)."""
    address = parse_ip(text)
    if address is None:
        raise ValueError(f"{text!r} is not an IP address")
    return address.version


def is_ip(host: str) -> bool:
    return parse_ip(host) is not None


def non_global(ip: str, public: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:192.168.1.1 is 192.168.1.1
    if any(address.version == network.version and address in network for network in public):
        return False
    return not address.is_global


def leaves_public(
    origin: str | None, target: str, public: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    """Whether a hop from ``origin`` (``None``: unknown, taken as public, the safe
    side) to ``target`` goes from a public address into a non-global one."""
    if origin is not None and is_ip(origin) and non_global(origin, public):
        return False
    return non_global(target, public)

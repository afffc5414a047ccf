"""Which addresses a probe may go to: IP literals, and the line between public and
non-global addresses a hostile redirect must not cross (see :mod:`probe.steps.http`).

One module so that the measurement (which tries a target's addresses) and the HTTP step
(which follows redirects) ask the same question the same way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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

"""Network names: ``ElCat (AS8449)`` instead of a bare number.

Why: a journalist cites an ISP by the name its customers know; an AS number alone is
unreadable and easy to mistype.  Names come from one maintained table shipped with the
package (``analysis/data/networks.csv``: ``asn,name,operator,source``, each row with the
public source it was taken from), and, for networks the table does not know, from the
name a measurement itself recorded (OONI's ``probe_network_name``).  The table wins:
recorded names are whatever a registry calls the AS ("ELCAT-AS"), not the brand.

Pure functions over a small table; the only I/O is reading the packaged CSV once.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class Network:
    asn: int
    name: str
    operator: str
    source: str


@functools.cache
def known_networks() -> dict[int, Network]:
    """The packaged table, keyed by AS number."""
    text = resources.files("analysis").joinpath("data", "networks.csv").read_text(encoding="utf-8")
    table: dict[int, Network] = {}
    for row in csv.DictReader(io.StringIO(text)):
        asn = int(row["asn"])
        table[asn] = Network(asn, row["name"].strip(), row["operator"].strip(), row["source"].strip())
    return table


def _as_int(asn: object) -> int | None:
    if asn is None:
        return None
    if isinstance(asn, float):
        return int(asn) if math.isfinite(asn) and asn > 0 else None
    try:
        value = int(str(asn).strip().upper().removeprefix("AS"))
    except ValueError:
        return None
    return value if value > 0 else None


def network_name(asn: object, recorded: str | None = None) -> str | None:
    """The network's name: the table's, else the recorded one, else ``None``."""
    number = _as_int(asn)
    if number is not None and number in known_networks():
        return known_networks()[number].name
    recorded = (recorded or "").strip()
    return recorded or None


def network_label(asn: object, recorded: str | None = None) -> str:
    """``ElCat (AS8449)``; ``AS64601`` when no name is known; ``unknown network`` without an ASN."""
    number = _as_int(asn)
    name = network_name(number, recorded)
    if number is None:
        return name or "unknown network"
    return f"{name} (AS{number})" if name else f"AS{number}"

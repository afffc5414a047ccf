"""The TCP rule: every connect failed, compared with the control's connects to the same addresses."""

from __future__ import annotations

from analysis.verdicts.facts import Facts, unique
from analysis.verdicts.reasons import failure_words, ids_of, listed, no_control_words
from analysis.verdicts.verdict import Decision
from probe.records import TcpObservation


def _control_tcp(f: Facts, ip: str, port: int) -> list[TcpObservation]:
    if f.control is None:
        return []
    return [o for o in f.control.tcp if o.ip == ip and o.port == port]


def tcp_connects(f: Facts) -> Decision | None:
    """Every connect failed."""
    attempts = f.m.tcp
    if not attempts or any(o.failure is None for o in attempts):
        return None
    shown = (
        f"{listed(unique(f'{o.ip}:{o.port}' for o in attempts))} "
        f"({failure_words(attempts[0])}, {ids_of(attempts)})"
    )
    ids = [o.id for o in attempts]
    if not f.control_full:
        return Decision(
            "tcp.connect_unverified",
            f"The probe could not connect to {shown}, but {no_control_words(f.m)}, so a server that is "
            "down for everyone cannot be ruled out.",
            tuple(ids),
        )
    worked = [c for o in attempts for c in _control_tcp(f, o.ip, o.port) if c.failure is None]
    if worked:
        return Decision(
            "tcp.connect_vs_control",
            f"The probe could not connect to {shown} while the control connected to "
            f"{listed(unique(c.ip for c in worked))} ({ids_of(worked)}) and loaded the page.",
            (*ids, *(c.id for c in worked)),
        )
    tried = [c for o in attempts for c in _control_tcp(f, o.ip, o.port)]
    if tried:
        return Decision(
            "tcp.connect_failed_in_control_too",
            f"Neither the probe ({shown}) nor the control ({ids_of(tried)}) could connect to the same "
            "addresses: those servers are down.",
            (*ids, *(c.id for c in tried)),
        )
    return Decision(
        "tcp.connect_unverified",
        f"The probe could not connect to {shown}; the control loaded the page through other addresses, "
        "so a fault of those particular servers cannot be ruled out.",
        tuple(ids),
    )

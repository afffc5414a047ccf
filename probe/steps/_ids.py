"""Observation ids: stable names for every observation of one measurement."""

from __future__ import annotations

from collections import Counter


class ObservationIds:
    """Hands out ``"dns/0"``, ``"dns/1"``, ``"tls/0"``... in the order steps start.

    A verdict cites observations by these ids, so they must be unique within a
    measurement and never reused; the control's observations get a ``"control/"``
    prefix so that both sides of a comparison can be cited from one list.
    """

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix
        self._counts: Counter[str] = Counter()

    def next(self, kind: str) -> str:
        number = self._counts[kind]
        self._counts[kind] += 1
        return f"{self._prefix}{kind}/{number}"

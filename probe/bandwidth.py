"""How many bytes a measurement cost, and whether the next one still fits the budget.

Why estimate rather than count: the steps run over the kernel's sockets and httpx's
streams, and counting every byte would mean wrapping each of them.  What dominates a
volunteer's bill is what the record already holds exactly (page bodies read,
certificate chains), plus a small, fixed overhead per exchange; the estimate errs on
the high side so a cap is never exceeded by surprise.
"""

from __future__ import annotations

import base64

from probe.records import Measurement

#: Bytes per DNS exchange (query and reply, UDP/IP headers included).
DNS_EXCHANGE = 180
#: A TCP handshake and teardown, headers only.
TCP_EXCHANGE = 360
#: A TLS handshake besides the certificate chain (hellos, key exchange, finished).
TLS_OVERHEAD = 1_500
#: An HTTP request and the response head.
HTTP_OVERHEAD = 1_200


def estimate_bytes(m: Measurement) -> int:
    total = DNS_EXCHANGE * sum(1 + len(d.extra_responses) for d in m.dns if d.transport != "system")
    total += TCP_EXCHANGE * len(m.tcp)
    for t in m.tls:
        total += TLS_OVERHEAD + sum(
            len(base64.b64decode(c.der_b64)) if c.der_b64 else 1_200 for c in t.certificates
        )
    for h in m.http:
        total += HTTP_OVERHEAD + h.body_length + sum(len(k) + len(v) + 4 for k, v in h.headers)
    return total


class ByteBudget:
    """The remaining allowance of a run: the smaller of the per-run cap and what is left
    of today's cap after earlier runs.  ``None`` caps mean unlimited."""

    def __init__(self, *, per_run: int | None, per_day: int | None, used_today: int = 0) -> None:
        self.per_run = per_run
        self.per_day = per_day
        self.used_today = used_today
        self.used_this_run = 0

    def remaining(self) -> int | None:
        limits = []
        if self.per_run is not None:
            limits.append(self.per_run - self.used_this_run)
        if self.per_day is not None:
            limits.append(self.per_day - self.used_today - self.used_this_run)
        return None if not limits else max(0, min(limits))

    def exhausted(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def spend(self, amount: int) -> None:
        self.used_this_run += amount

"""Extra trust anchors (``--ca-bundle``) for the probe's TLS context.

Why apart from :mod:`probe.steps.tls`: checking a bundle needs only :mod:`ssl`, and
the places that check one before anything is measured (``kuzot run``'s options, the
parent of a ``--workers`` run, the control helper's start) should not load the TLS
step's certificate parser (cryptography's X.509) to do it.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def trust_bundle(context: ssl.SSLContext, ca_bundle: str | Path) -> None:
    """Add ``ca_bundle``'s anchors to ``context``: what :func:`probe.steps.tls.make_ssl_context`
    does with it, for a context built before the bundle was known (a worker loads the
    system store, about 50 ms, while it waits for its run's settings)."""
    context.load_verify_locations(cafile=str(ca_bundle))


def check_bundle(ca_bundle: str | Path) -> None:
    """Raise what :func:`probe.steps.tls.make_ssl_context` would raise for a malformed
    ``ca_bundle``, without loading the system store (a parent whose workers measure
    needs no context)."""
    trust_bundle(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), ca_bundle)

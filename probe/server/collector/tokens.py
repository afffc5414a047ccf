"""Probe registration: an opaque id and a bearer token, and nothing about the person.

Only the token's SHA-256 is stored.  A plain hash (no salt, no slow KDF) is enough
because the token is 256 random bits, not a password a person chose: nobody can
guess it from its hash, and a fast hash keeps every upload's look-up cheap.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from probe.records import utc_now
from probe.store import Store
from probe.store.probes import add_probe, probe_id_for_token_hash


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def register_probe(store: Store) -> tuple[str, str]:
    """A new probe's ``(probe_id, token)``; the token is returned once and never stored."""
    token = secrets.token_urlsafe(32)
    probe_id = str(uuid.uuid4())
    add_probe(store, probe_id, token_hash(token), utc_now())
    return probe_id, token


def probe_for_token(store: Store, token: str) -> str | None:
    """The id of the probe this token belongs to, or None for an unknown token."""
    return probe_id_for_token_hash(store, token_hash(token))

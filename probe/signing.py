"""Per-installation ed25519 keys that sign each measurement's content hash.

Why sign at all: a report cites measurements that travelled from a volunteer's laptop
through a collector to a journalist.  The signature lets anyone check that a record is
byte-for-byte what one probe installation produced, and that records signed with one
key came from the same installation.  It does not prove *who* runs the probe (keys are
anonymous on purpose: no name, no IP address), nor that the probe's network is the one
it claims, nor that the clock was right; see docs/evidence.md.

The key is made on first use and kept in the config directory with owner-only
permissions.  What is signed is a fixed prefix and the hex content hash, so a verifier
needs only the canonical record, never our database.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from probe.errors import SetupError
from probe.records import Measurement, canonical_json

#: Signed bytes are this prefix plus the hex content hash: a signature made for a
#: measurement can never be replayed as a signature over anything else.
SIGNING_CONTEXT = b"kuzot-measurement-v1:"
KEY_FILE = "signing-key.pem"
#: A probe proves to a collector that it holds its key by signing this prefix and the
#: probe id the collector gave it: such a proof cannot be replayed for another probe id,
#: nor confused with a measurement's signature.
KEY_PROOF_CONTEXT = b"kuzot-key-holder-v1:"


class SigningKeyError(SetupError):
    """The key file exists but cannot be used (wrong permissions, corrupt)."""


def content_hash_of(record: dict) -> str:
    return hashlib.sha256(canonical_json(record)).hexdigest()


def key_id_of(public_key_b64: str) -> str:
    """A short, stable name for a key: 16 hex digits of the SHA-256 of its raw bytes."""
    return hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey

    # Cached: a run signs every measurement, and the key never changes.
    @cached_property
    def public_key(self) -> str:
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()

    @cached_property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def sign_hash(self, content_hash: str) -> dict[str, str]:
        signature = self.private.sign(SIGNING_CONTEXT + content_hash.encode())
        return {
            "content_hash": content_hash,
            "signature": base64.b64encode(signature).decode(),
            "key_id": self.key_id,
            "public_key": self.public_key,
        }

    def prove(self, probe_id: str) -> dict[str, str]:
        """What ``POST /api/v1/keys`` wants: the public key and a signature over the probe id."""
        proof = self.private.sign(KEY_PROOF_CONTEXT + probe_id.encode())
        return {"public_key": self.public_key, "proof": base64.b64encode(proof).decode()}

    def sign(self, measurement: Measurement) -> dict[str, str]:
        """The envelope the store keeps beside the record."""
        return self.sign_hash(measurement.content_hash())

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())


def load_or_create_key(directory: Path) -> SigningKey:
    """The installation's key, made on first call.  The file is created with mode 0600
    atomically (never world-readable, not even for an instant)."""
    path = directory / KEY_FILE
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SigningKeyError(f"{path} is readable by other users (mode {mode:o}); run: chmod 600 {path}")
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"{path} is not a usable signing key: {exc}") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise SigningKeyError(f"{path} holds a key that is not ed25519")
        return SigningKey(private)
    directory.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    pem = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = directory / f".{KEY_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # never replaces a key another process made meanwhile
    except FileExistsError:
        tmp.unlink()
        return load_or_create_key(directory)
    tmp.unlink()
    return key


@cache
def _libsodium_verifier() -> Callable[[bytes, bytes, bytes], bool] | None:
    """libsodium's ed25519 check (PyNaCl, the ``collector`` extra), or None without it.

    Why a second implementation: a collector verifies every uploaded measurement, and
    libsodium's verify takes half the time of OpenSSL's (0.08 against 0.15 ms here),
    which was the largest single cost of accepting a batch.  Both check the same
    standard signatures; libsodium also refuses small-order keys and non-canonical
    signatures, which no probe makes.  Volunteers' installs need neither.
    """
    try:
        from nacl.exceptions import BadSignatureError
        from nacl.signing import VerifyKey
    except ImportError:
        return None

    def verify(raw_key: bytes, signature: bytes, signed: bytes) -> bool:
        try:
            VerifyKey(raw_key).verify(signed, signature)
        except BadSignatureError:
            return False
        return True

    return verify


def _verify(key_b64: str, signature_b64: str, signed: bytes, *, what: str, mismatch: str) -> str | None:
    """The one verify path: ``None`` when ``signature_b64`` is the key's signature over
    ``signed``, else why not, in words (``what`` names the signature in the malformed case)."""
    try:
        raw_key = base64.b64decode(key_b64, validate=True)
        signature = base64.b64decode(signature_b64, validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw_key)
    except (ValueError, TypeError) as exc:
        return f"malformed key or {what} ({exc})"
    if len(signature) != 64:  # both libraries then say "invalid", in their own ways
        return mismatch
    libsodium = _libsodium_verifier()
    if libsodium is not None:
        return None if libsodium(raw_key, signature, signed) else mismatch
    try:
        public.verify(signature, signed)
    except InvalidSignature:
        return mismatch
    return None


def verify_signature(content_hash: str, signature_b64: str, public_key_b64: str) -> str | None:
    """``None`` when the signature is good, else why not, in words."""
    return _verify(
        public_key_b64,
        signature_b64,
        SIGNING_CONTEXT + content_hash.encode(),
        what="signature",
        mismatch="signature does not match the content hash",
    )


def verify_envelope(record: dict | None, envelope: dict, *, content_hash: str | None = None) -> list[str]:
    """Every problem with a stored or uploaded (record, envelope) pair, in words: the
    content hash recomputed from the record, then the signature over that hash.
    ``content_hash`` is the record's hash when the caller has just computed it from
    the record's canonical bytes (then ``record`` is not needed)."""
    problems: list[str] = []
    actual = content_hash if content_hash is not None else content_hash_of(record or {})
    claimed = envelope.get("content_hash")
    if claimed is not None and claimed != actual:
        problems.append(
            f"content hash {claimed[:12]}… does not match the record (it hashes to {actual[:12]}…)"
        )
    signature, public_key = envelope.get("signature"), envelope.get("public_key")
    if signature or public_key:
        if not (signature and public_key):
            problems.append("signature or public key missing")
        else:
            why = verify_signature(actual, signature, public_key)
            if why is not None:
                problems.append(why)
            key_id = envelope.get("key_id")
            try:
                actual_id = key_id_of(public_key)
            except (ValueError, TypeError):
                actual_id = None  # a malformed key is reported above, once
            if key_id and actual_id is not None and key_id != actual_id:
                problems.append(f"key id {key_id} does not belong to the public key")
    return problems


def verify_key_proof(public_key_b64: str, probe_id: str, proof_b64: str) -> str | None:
    """``None`` when ``proof_b64`` shows the holder of the key signed ``probe_id``, else why not."""
    return _verify(
        public_key_b64,
        proof_b64,
        KEY_PROOF_CONTEXT + probe_id.encode(),
        what="proof",
        mismatch="the proof is not this key's signature over this probe's id",
    )

"""Signing keys: made once with owner-only permissions, and every stored measurement signed."""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest

from probe.records import Measurement
from probe.signing import (
    KEY_FILE,
    SigningKey,
    SigningKeyError,
    content_hash_of,
    load_or_create_key,
    verify_envelope,
)
from probe.store.record_codec import decode_record


def test_key_is_created_once_with_owner_only_mode(tmp_path):
    key = load_or_create_key(tmp_path)
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(tmp_path).public_key == key.public_key


def test_a_key_readable_by_others_is_refused(tmp_path):
    load_or_create_key(tmp_path)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_or_create_key(tmp_path)


def test_corrupt_key_is_a_clear_error(tmp_path):
    (tmp_path / KEY_FILE).write_text("not a key")
    os.chmod(tmp_path / KEY_FILE, 0o600)
    with pytest.raises(SigningKeyError, match="not a usable signing key"):
        load_or_create_key(tmp_path)


def test_envelope_names_a_changed_record_and_a_bad_signature():
    key = SigningKey.generate()
    record = {"id": "m1", "url": "https://kloop.kg/", "value": 1}
    envelope = key.sign_hash(content_hash_of(record))
    assert verify_envelope(record, envelope) == []
    changed = {**record, "value": 2}
    problems = verify_envelope(changed, envelope)
    assert any("content hash" in p for p in problems)
    assert any("signature does not match" in p for p in problems)
    other = SigningKey.generate().sign_hash(content_hash_of(record))
    forged = {**envelope, "signature": other["signature"]}
    assert verify_envelope(record, forged) == ["signature does not match the content hash"]


def test_run_signs_every_measurement(matrix_run):
    db = matrix_run["db"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT record, content_hash, signature, key_id, public_key FROM measurements"
        ).fetchall()
    assert rows
    assert len({row[3] for row in rows}) == 1, "one installation, one key"
    for record, content_hash, signature, key_id, public_key in rows:
        data = json.loads(decode_record(record))
        assert Measurement.from_dict(data).content_hash() == content_hash
        envelope = {
            "content_hash": content_hash,
            "signature": signature,
            "key_id": key_id,
            "public_key": public_key,
        }
        assert verify_envelope(data, envelope) == []


@pytest.mark.parametrize("libsodium", [True, False], ids=["libsodium", "openssl"])
def test_both_ed25519_implementations_give_the_same_verdicts(libsodium, monkeypatch):
    """The collector checks with libsodium when PyNaCl is installed, everyone else with
    OpenSSL: a good, a tampered, a truncated and a foreign signature read the same."""
    import base64

    from probe import signing

    if libsodium:
        pytest.importorskip("nacl")
    else:
        monkeypatch.setattr(signing, "_libsodium_verifier", lambda: None)
    key, stranger = signing.SigningKey.generate(), signing.SigningKey.generate()
    good = key.sign_hash("ab" * 32)
    assert signing.verify_signature("ab" * 32, good["signature"], good["public_key"]) is None
    mismatch = "signature does not match the content hash"
    assert signing.verify_signature("cd" * 32, good["signature"], good["public_key"]) == mismatch
    short = base64.b64encode(base64.b64decode(good["signature"])[:63]).decode()
    assert signing.verify_signature("ab" * 32, short, good["public_key"]) == mismatch
    assert signing.verify_signature("ab" * 32, good["signature"], stranger.public_key) == mismatch
    assert signing.verify_signature("ab" * 32, "not base64!", good["public_key"]).startswith("malformed")

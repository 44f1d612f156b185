"""Token hashing and sealing of secrets at rest."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from coffer.security import Sealer, hash_token, load_or_create_key, new_token


def test_tokens_are_random_and_hashes_stable() -> None:
    a, b = new_token(), new_token()
    assert a != b and len(a) >= 40
    assert hash_token(a) == hash_token(a) != hash_token(b)
    assert a not in hash_token(a)


def test_sealing_round_trips_and_hides_the_plaintext() -> None:
    sealer = Sealer(os.urandom(32))
    sealed = sealer.seal(b"hunter2-password")
    assert b"hunter2" not in sealed.encode()
    assert sealer.open(sealed) == b"hunter2-password"
    assert sealer.seal(b"x") != sealer.seal(b"x"), "fresh nonce each time"


def test_tampering_and_wrong_keys_are_detected() -> None:
    sealer = Sealer(os.urandom(32))
    sealed = sealer.seal(b"secret")
    raw = bytearray(base64.urlsafe_b64decode(sealed))
    raw[-1] ^= 0x01
    flipped = base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(InvalidTag):
        sealer.open(flipped)
    with pytest.raises(InvalidTag):
        Sealer(os.urandom(32)).open(sealed)


def test_master_key_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(path) == key
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="32-byte"):
        load_or_create_key(path)

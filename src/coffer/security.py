"""Tokens, hashing and sealing of secrets at rest.

API and host tokens are random 256-bit strings; only their SHA-256 is stored. Anything
secret that must be stored for later (a password inside a queued agent command or a
workflow's input) is sealed with AES-256-GCM under the deployment master key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


def new_token() -> str:
    """256 random bits as hex: safe in headers, URLs and command lines (never starts
    with '-', which argument parsers would take for an option)."""
    return secrets.token_hex(32)


def new_password() -> str:
    """128 random bits as hex, acceptable to every engine's password rules and shells."""
    return secrets.token_hex(16)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)


class Sealer:
    """Seals small secrets with AES-256-GCM; output is URL-safe text."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes) -> str:
        nonce = os.urandom(_NONCE)
        return base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, plaintext, None)).decode()

    def open(self, sealed: str) -> bytes:
        raw = base64.urlsafe_b64decode(sealed.encode())
        return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], None)


def load_or_create_key(path: Path) -> bytes:
    """Read the master key at ``path``, creating it (mode 0600) on first use."""
    if path.exists():
        key = path.read_bytes()
        if len(key) != 32:
            raise ValueError(f"{path} does not hold a 32-byte key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = AESGCM.generate_key(bit_length=256)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key
